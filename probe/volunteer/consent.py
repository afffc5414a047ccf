"""Informed consent, asked once, before anything is measured.

Why a gate and not a README paragraph: volunteers in Kyrgyzstan take a personal risk
by running a censorship probe, and most are not programmers.  They must be told, in a
language they read, what is measured, what leaves their machine, what is never kept,
and what the law says, and agree before the first measurement.  Automation and
containers agree with ``--accept-risks`` or ``KUZOT_ACCEPT_RISKS=1``, which are
recorded the same way.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from probe.errors import ConsentRequired
from probe.i18n import LANGUAGES, N_, gettext, language
from probe.volunteer.paths import config_dir

#: Bumped when the text changes in substance: everyone is asked again.
CONSENT_VERSION = 1

#: The consent text, in English; the Russian and Kyrgyz texts are in the probe's
#: gettext catalogs (probe/locale), which a translator edits with standard tools.
CONSENT_MESSAGE = N_("""\
KUZOT — BEFORE YOU START (please read)

What Kuzot does: it connects from your internet connection to the news and other sites
in its list (DNS lookups, TCP, TLS and HTTP connections) and records whether each one
works, is blocked, and how.

What is stored on this computer: the measurements, with your network's AS number and
country. Your IP address is never stored and never uploaded.
What is uploaded (only if you turn uploading on): the same measurements, signed by this
installation's key, to the collector you choose.

The risk: Kyrgyzstan's 2021 law "on protection against false information" lets the
Ministry of Culture block websites without a court, and some of the sites measured are
blocked or declared "extremist". Your internet provider, and anyone watching your
connection, can see that your computer connects to these sites. Running a censorship
measurement tool may be seen as a political act. Decide for yourself whether this is
safe for you; if in doubt, do not run it.

You can stop at any time: `kuzot schedule --remove` stops scheduled runs, `kuzot consent
--withdraw` withdraws this consent, and deleting your Kuzot data folder deletes every
measurement.""")


class _ConsentTexts(Mapping[str, str]):
    """``CONSENT_TEXT[lang]``: the consent text in each language, from the catalogs."""

    def __getitem__(self, lang: str) -> str:
        if lang not in LANGUAGES:
            raise KeyError(lang)
        return gettext(CONSENT_MESSAGE, lang)

    def __iter__(self) -> Iterator[str]:
        return iter(LANGUAGES)

    def __len__(self) -> int:
        return len(LANGUAGES)


CONSENT_TEXT: Mapping[str, str] = _ConsentTexts()

_PROMPT = N_("Type yes / да / ооба to accept, anything else to stop: ")
_YES = {"yes", "y", "да", "ооба"}


def _path(directory: Path | None) -> Path:
    return (directory or config_dir()) / "consent.json"


def consent_record(directory: Path | None = None) -> dict[str, object] | None:
    try:
        data = json.loads(_path(directory).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != CONSENT_VERSION or not data.get("accepted"):
        return None
    return data


def record_consent(how: str, directory: Path | None = None) -> None:
    path = _path(directory)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = {"version": CONSENT_VERSION, "accepted": True, "how": how, "at": datetime.now(UTC).isoformat()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def withdraw_consent(directory: Path | None = None) -> bool:
    try:
        _path(directory).unlink()
    except FileNotFoundError:
        return False
    return True


def require_consent(
    *,
    accept_flag: bool = False,
    env: Mapping[str, str] = os.environ,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stderr,
    config_dir: Path | None = None,
) -> None:
    """Return when consent is on record or given now; raise :class:`ConsentRequired`."""
    if consent_record(config_dir) is not None:
        return
    if accept_flag:
        record_consent("--accept-risks", config_dir)
        return
    if env.get("KUZOT_ACCEPT_RISKS") == "1":
        record_consent("KUZOT_ACCEPT_RISKS=1", config_dir)
        return
    if stdin is not None and stdin.isatty():
        first = language()
        for lang in (first, *(code for code in LANGUAGES if code != first)):
            stdout.write(CONSENT_TEXT[lang] + "\n\n")
        stdout.write(gettext(_PROMPT))
        stdout.flush()
        answer = (stdin.readline() or "").strip().lower()
        if answer in _YES:
            record_consent("interactive", config_dir)
            return
        raise ConsentRequired(gettext(N_("you did not accept the risks; nothing was measured")))
    raise ConsentRequired(
        gettext(
            N_(
                "nothing was measured: Kuzot needs your informed consent first. Read it with "
                "`kuzot consent --show`, then accept with `kuzot consent --accept`, or run with "
                "--accept-risks or KUZOT_ACCEPT_RISKS=1 (for automation and containers)"
            )
        )
    )
