"""The evidence bundle of an episode: the site's signed report folder, zipped.

Why the report folder and not a new format: ``kuzot verify`` already checks it (the
manifest of every file, each measurement's content hash and signature), so whoever
downloads a bundle can check it without trusting this server.  The folder covers the
episode's outer bounds (last accessible before to first accessible after), with a day
either side when a bound is unknown.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from datetime import timedelta
from pathlib import Path

import pandas as pd

from analysis.report import build_report


def folder_name(domain: str, episode_id: str) -> str:
    return f"kuzot-evidence-{domain}-{episode_id}"


def build_bundle(read_url: str, episode: dict, orders: pd.DataFrame) -> bytes:
    """A zip holding one folder, ``kuzot-evidence-<domain>-<episode>/``, as ``kuzot report`` writes it."""
    start = pd.Timestamp(episode["last_accessible_before"] or episode["first_blocked"])
    end = pd.Timestamp(episode["first_accessible_after"] or episode["last_blocked"])
    if episode["last_accessible_before"] is None:
        start -= timedelta(days=1)
    end += timedelta(seconds=1) if episode["first_accessible_after"] else timedelta(days=1)
    name = folder_name(episode["domain"], episode["episode_id"])
    with tempfile.TemporaryDirectory(prefix="kuzot-bundle-") as tmp:
        out = Path(tmp) / name
        build_report(
            read_url,
            episode["domain"],
            out,
            orders=orders,
            since=start.to_pydatetime(),
            until=end.to_pydatetime(),
        )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(out.rglob("*")):
                if path.is_file():
                    archive.write(path, f"{name}/{path.relative_to(out).as_posix()}")
        return buffer.getvalue()
