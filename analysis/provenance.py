"""Where an imported measurement came from, as a link anyone can open.

Why: a journalist's figure must be traceable to raw measurements.  For a measurement
imported from OONI, the public copy is its page on OONI Explorer; the annotations the
importer keeps (``ooni.measurement_uid``, ``ooni.report_id``) are enough to build it.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, urlencode

EXPLORER = "https://explorer.ooni.org"


def ooni_explorer_url(annotations: Mapping[str, str] | None, url: str | None = None) -> str | None:
    """The OONI Explorer page of an imported OONI measurement; ``None`` for others.

    ``https://explorer.ooni.org/m/<measurement_uid>`` when OONI's uid is known;
    otherwise the older form by report id and input (``url``, the measured URL, or
    the annotation ``ooni.input``), ``/measurement/<report_id>?input=<url>``.
    """
    if not annotations:
        return None
    uid = (annotations.get("ooni.measurement_uid") or "").strip()
    if uid:
        return f"{EXPLORER}/m/{quote(uid, safe='')}"
    report_id = (annotations.get("ooni.report_id") or "").strip()
    if not report_id:
        return None
    page = f"{EXPLORER}/measurement/{quote(report_id, safe='')}"
    target = url or annotations.get("ooni.input")
    return f"{page}?{urlencode({'input': target})}" if target else page


__all__ = ["EXPLORER", "ooni_explorer_url"]
