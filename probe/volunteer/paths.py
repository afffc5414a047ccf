"""Where Kuzot keeps its files, and every environment variable it reads.

Why one module: a volunteer who asks "what does Kuzot leave on my computer, and how do
I move or delete it?" should get the answer from one place, and so should a container
image that mounts its volumes.  Directories are computed here and nowhere else; the
other variables are named here (as constants) and read where they take effect.

=========================  =====================================================
``KUZOT_CONFIG_DIR``       :func:`config_dir`: consent.json, config.toml, the
                           signing key, the collector tokens
``KUZOT_DATA_DIR``         :func:`data_dir`: kuzot.db (:func:`default_db_url`),
                           downloaded target lists, the OONI archive cache, OONI's
                           fingerprint files (analysis.fingerprints reads the same
                           variable: analysis imports nothing of the volunteer layer)
``KUZOT_TARGETS``          the default target list (:mod:`probe.targets`)
``KUZOT_ACCEPT_RISKS``     ``1`` accepts the informed consent (containers,
                           automation; :mod:`probe.volunteer.consent`)
``KUZOT_LANG``             the language of messages (:mod:`probe.i18n`)
``KUZOT_DOH_CONTROL``      the DNS-over-HTTPS control of ``kuzot run``
``KUZOT_SCHEDULER``,       which scheduler ``kuzot schedule`` uses, and the
``KUZOT_SYSTEMCTL``,       programs it calls (:mod:`probe.volunteer.schedule`)
``KUZOT_CRONTAB``
``KUZOT_ASN_DB``           the ASN database of the analysis and the control helper
``KUZOT_OONI_S3_ENDPOINT`` an S3-compatible server instead of OONI's bucket
=========================  =====================================================

This module imports nothing of the project, so every layer may ask it where things
are (tests/test_layers.py places it with the vocabulary).
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_DIR_ENV = "KUZOT_CONFIG_DIR"
DATA_DIR_ENV = "KUZOT_DATA_DIR"
TARGETS_ENV = "KUZOT_TARGETS"
ACCEPT_RISKS_ENV = "KUZOT_ACCEPT_RISKS"
LANG_ENV = "KUZOT_LANG"
DOH_CONTROL_ENV = "KUZOT_DOH_CONTROL"
SCHEDULER_ENV = "KUZOT_SCHEDULER"
SYSTEMCTL_ENV = "KUZOT_SYSTEMCTL"
CRONTAB_ENV = "KUZOT_CRONTAB"
ASN_DB_ENV = "KUZOT_ASN_DB"
OONI_S3_ENDPOINT_ENV = "KUZOT_OONI_S3_ENDPOINT"


def config_dir() -> Path:
    """The volunteer's settings and secrets (``$KUZOT_CONFIG_DIR``, else the platform's)."""
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir("kuzot"))


def data_dir() -> Path:
    """Measurements and caches (``$KUZOT_DATA_DIR``, else the platform's data directory)."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("kuzot"))


def default_db_url() -> str:
    """The probe's own database when no ``--db`` is given."""
    return f"sqlite:///{data_dir() / 'kuzot.db'}"


def targets_cache_dir() -> Path:
    """Where ``kuzot targets`` keeps the lists it downloads."""
    return data_dir() / "targets"


def ooni_cache_dir() -> Path:
    """Where ``kuzot ooni sync`` keeps OONI's archive files."""
    return data_dir() / "ooni-archive"


def fingerprints_dir() -> Path:
    """Where OONI's fingerprint files are downloaded to."""
    return data_dir() / "fingerprints"
