"""Print rows as JSON, JSON Lines, CSV or a table: one place, same shapes everywhere."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, TextIO

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
