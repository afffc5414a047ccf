"""The evidence report: one folder a journalist can publish from and anyone can verify.

Layout of ``DIR`` (a stable interface; docs/evidence.md explains it to readers)
- ``index.html``: one self-contained page (charts embedded, no network fetches), in
  English; ``index.ru.html`` and ``index.ky.html`` the same in Russian and Kyrgyz.  Pages
  built from simulated or lab data open with a notice saying so in all three languages
  (so does ``citation.txt``), and real and simulated data are never mixed in one report.
- ``citation.txt``: the sentences to quote, in English, Russian and Kyrgyz, each with
  its measurement counts and duration bracket.
- ``episodes.csv``, ``orders.csv``, ``verdicts.csv``: the tables behind the page.
- ``charts/timeline.{png,svg}``, ``charts/heatmap.{png,svg}``.
- ``evidence/measurements.jsonl``: every measurement behind every figure, with its
  content hash and signature; ``evidence/MANIFEST.sha256`` covers every file.

The page comes from Jinja2 templates (``analysis/templates``) and its words from gettext
catalogs (``analysis/locale``); docs/report.md shows a sample report's structure.

Why every figure links to measurements: a figure nobody can trace is an assertion, and
this project's output is cited against governments that will dispute it.

Three modules, so that what a report *says* can be computed, tested and reused (the
Explorer, notebooks) without touching a disk:

- :mod:`analysis.report.compose`: measurements and orders in, a :class:`Report` out; no I/O.
- :mod:`analysis.report.html`: a :class:`Report` rendered as one page (a string).
- :mod:`analysis.report.write`: the one writer: :func:`build_report` reads the
  database and composes; :func:`write_report` draws, writes and seals the folder.
"""

from __future__ import annotations

from analysis.report.compose import (
    GAP_HOURS,
    MIN_CONCLUSIVE,
    PAGE_NAMES,
    NetworkSummary,
    Report,
    compose_report,
    network_labels,
)
from analysis.report.html import render_html
from analysis.report.write import build_report, write_report
from probe.errors import ReportError

__all__ = [
    "GAP_HOURS",
    "MIN_CONCLUSIVE",
    "PAGE_NAMES",
    "NetworkSummary",
    "Report",
    "ReportError",
    "build_report",
    "compose_report",
    "network_labels",
    "render_html",
    "write_report",
]
