"""The control helper's server (``kuzot control serve``, or beside the collector).

``app`` measures a URL on a probe's behalf from an uncensored network, and
``geolookup`` tells a probe its own network (AS number and country only).  The probe's
side stays with the probe: :mod:`probe.control.client` asks the helper, and
:mod:`probe.control.doh` asks a public DNS-over-HTTPS resolver when there is no helper.
"""
