"""The one exception tree: everything Kuzot raises for a person to act on.

Why a tree: the CLI catches :class:`KuzotError` once and exits with the error's
``exit_status``, instead of each subcommand translating its own exceptions.  A library
caller (a notebook, a script) can catch one base too, or one branch of it.

What is *not* here: a measurement that fails (a reset, a timeout, a forged answer) is
data, recorded as a failure string from :mod:`probe.failures`, never raised.

Exit statuses: 1 setup (the machine or a service cannot do it now), 2 input (something
the user gave is malformed or unusable), 3 consent required.  Classes marked ``*`` are
defined where they are used and keep their old standard base too (``ValueError``,
``RuntimeError``), so ``except ValueError`` around them keeps working::

    KuzotError (1)
    ├── InputError (2)
    │   ├── ConfigError*        probe.volunteer.config config.toml / `kuzot config set`
    │   ├── TargetsError*       probe.targets         targets file or URLs
    │   ├── ScenarioError*      probe.lab.scenarios   lab scenario file
    │   ├── OoniFormatError*    probe.formats.ooni    one OONI line not importable
    │   ├── SourceError*        probe.web.source      the Explorer's database URL
    │   ├── FingerprintError*   analysis.fingerprints fingerprint files
    │   └── OrdersFileError*    analysis.orders       orders file
    ├── SetupError (1)
    │   ├── StoreError*         probe.store.database  the database cannot be used
    │   ├── SigningKeyError*    probe.signing         the signing key file
    │   ├── ScheduleError*      probe.volunteer.schedule cron / systemd
    │   ├── LabError*           probe.lab.netns       the namespace lab
    │   ├── ArchiveError*       probe.ooni_archive.s3 OONI's S3 archive
    │   │   └── Verification*   probe.ooni_archive.s3
    │   └── AsnDatabaseError*   analysis.asn          the ASN database
    ├── ConsentRequired (3)     (re-exported by probe.volunteer.consent)
    ├── UploadError (2)         (re-exported by probe.upload)  collector URL or credentials
    ├── ReportError (1)         (re-exported by analysis.report)
    │   └── EvidenceError*      analysis.evidence     the evidence files of a report
    └── CommandError (given)    probe.cli.commands    a CLI option the user must change

This module imports nothing of the project, so every layer (``analysis`` included, see
tests/test_layers.py) may raise from it.
"""

from __future__ import annotations


class KuzotError(Exception):
    """A failure the user can act on; the CLI prints the message, no traceback."""

    #: The ``kuzot`` command's exit status for this error.
    exit_status: int = 1


class InputError(KuzotError):
    """Something the user gave (a file, an option, a URL) is malformed or unusable."""

    exit_status = 2


class SetupError(KuzotError):
    """The machine or a service cannot do this now (database, key, lab, archive)."""

    exit_status = 1


class ConsentRequired(KuzotError):
    """No consent on record and no way to ask; the message says what to do."""

    exit_status = 3


class UploadError(KuzotError):
    """Uploading cannot start or go on; says why and what to do."""

    exit_status = 2


class ReportError(KuzotError):
    """Nothing to report (no measurements match), mixed real and simulated data, or the
    output folder is unusable."""

    exit_status = 1


__all__ = ["ConsentRequired", "InputError", "KuzotError", "ReportError", "SetupError", "UploadError"]


def first_error(exc: BaseException) -> BaseException:
    """The first plain exception inside nested exception groups: trio wraps a task's
    error once per nursery it crosses, and a person (or a record) needs only the
    innermost one."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
