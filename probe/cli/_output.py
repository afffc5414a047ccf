"""Print rows as JSON, JSON Lines, CSV or a table: one place, same shapes everywhere."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TextIO

from probe.i18n import gettext as _
from probe.i18n import ngettext

if TYPE_CHECKING:
    from probe.records import Measurement
    from probe.upload import UploadResult

FORMATS = ("json", "jsonl", "csv", "table")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        from probe.records import format_time

        return format_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _clean(value: Any) -> Any:
    """pandas' missing values become JSON null, never NaN or NaT."""
    try:
        import pandas as pd

        if value is pd.NaT or (not isinstance(value, list | dict | str) and pd.isna(value)):
            return None
        if isinstance(value, pd.Timestamp):
            return value.to_pydatetime()
    except (TypeError, ValueError, ImportError):
        pass
    return value


def write_rows(
    rows: Iterable[dict[str, Any]],
    fmt: str,
    *,
    columns: Sequence[str] | None = None,
    out: TextIO | None = None,
    title: str | None = None,
) -> None:
    out = out or sys.stdout
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps({k: _clean(v) for k, v in row.items()}, default=_json_default) + "\n")
        return
    rows = list(rows)
    if fmt == "json":
        json.dump(
            [{k: _clean(v) for k, v in row.items()} for row in rows],
            out,
            default=_json_default,
            indent=2,
            ensure_ascii=False,
        )
        out.write("\n")
        return
    columns = list(columns or (rows[0].keys() if rows else []))
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    for row in rows:
        table.add_row(*[_cell(row.get(c), short=True) for c in columns])
    # On a terminal, fit the screen; in a pipe or file, never fold a word in two
    # (people grep tables).
    width = max(120, Console().width) if out.isatty() else 1000
    Console(file=out, width=width).print(table)


def _cell(value: Any, *, short: bool = False) -> str:
    """Text for one cell; ``short`` is for people reading a table: times to the minute."""
    value = _clean(value)
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") if short else _json_default(value)
    if isinstance(value, list | dict):
        return json.dumps(value, default=_json_default, ensure_ascii=False)
    return str(value)


def step_summary(m: Measurement) -> dict[str, str]:
    """What each step did, in a word: ``ok``, a failure string, or ``-`` (not reached)."""

    def word(observations: list, *, purpose: str | None = None) -> str:
        chosen = [o for o in observations if purpose is None or getattr(o, "purpose", None) == purpose]
        if not chosen:
            return "-"
        if any(o.failure is None for o in chosen):
            return "ok"
        return str(chosen[0].failure)

    http = "-"
    if m.http:
        last = m.http[-1]
        http = str(last.failure) if last.failure else f"{last.status_code} ({len(m.http)} hop)"
    elif "failure" in m.annotations:  # the measurement itself failed (probe.run.failed_measurement)
        http = f"{m.annotations['failure']} ({m.annotations.get('exception', '?')})"
    return {
        "url": m.url,
        "dns": word(m.dns),
        "tcp": word(m.tcp),
        "tls": word(m.tls, purpose="target"),
        "http": http,
    }


def describe_upload(result: UploadResult) -> str:
    """One paragraph for a person: what arrived, what did not and why, what to do."""
    if result.error and not result.acknowledged:
        text = _("Could not upload to {collector}: {error}.").format(
            collector=result.collector, error=result.error
        )
    else:
        text = ngettext(
            "Uploaded {n} measurement to {collector} ({new} new, {duplicate} already there).",
            "Uploaded {n} measurements to {collector} ({new} new, {duplicate} already there).",
            result.acknowledged,
        ).format(
            n=result.acknowledged, collector=result.collector, new=result.stored, duplicate=result.duplicate
        )
        if result.error:
            text += " " + _("Then stopped: {error}.").format(error=result.error)
    if result.rejected:
        n = len(result.rejected)
        text += " " + ngettext("{n} refused by the collector: ", "{n} refused by the collector: ", n).format(
            n=n
        )
        text += "; ".join(f"{r['id']}: {r['error']}" for r in result.rejected[:3])
    if result.remaining:
        text += " " + _(
            "{n} measurements stay queued here; `kuzot upload --to {collector}` sends them later."
        ).format(n=result.remaining, collector=result.collector)
    else:
        text += " " + _("Nothing left to upload.")
    return text
