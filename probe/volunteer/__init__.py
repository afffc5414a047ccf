"""The volunteer's side of the probe: consent, settings, scheduling and where files live.

``consent`` asks once before anything is measured, ``config`` reads and writes the
settings file, ``schedule`` installs and removes periodic runs (cron or systemd), and
``container_health`` is the Docker image's health check.  None of it measures: the
measuring core below never imports it.
"""
