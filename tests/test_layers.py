"""The layer rule: measuring and judging stay apart, so verdicts can be recomputed anywhere.

- ``analysis`` imports from ``probe`` only the archival records, the failure
  vocabulary (judging is pure and runs wherever the data is) and the gettext loader
  ``probe.catalogs`` (one way to read every domain's catalog).
- ``probe.records`` and ``probe.failures`` import nothing else of the project.
- only the CLI layer (``probe.cli``, ``probe.commands``) and the Explorer (``probe.web``,
  a presentation layer like the CLI) import ``analysis``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_analysis_imports_only_records_and_failures_from_probe() -> None:
    """If an analysis module imports the probe, then only probe.records, probe.failures or probe.catalogs."""
    allowed = {"probe", "probe.records", "probe.failures", "probe.catalogs"}
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in _modules("analysis")
        for name in _imports(path)
        if (name == "probe" or name.startswith("probe.")) and name not in allowed
    }
    assert not offenders, sorted(offenders)


def test_archival_format_depends_on_nothing_else() -> None:
    """If the record or failure modules import project code, then only each other."""
    for name in ("records.py", "failures.py", "catalogs.py"):
        project = {i for i in _imports(ROOT / "probe" / name) if i.startswith(("probe", "analysis"))}
        assert project <= {"probe.failures", "probe.records"}, (name, project)


def test_only_the_cli_layer_imports_analysis() -> None:
    """If a probe module imports analysis, then it is the CLI, a subcommand or the Explorer."""
    offenders = set()
    for path in _modules("probe"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(("probe/commands/", "probe/cli.py", "probe/web/")):
            continue
        if any(i == "analysis" or i.startswith("analysis.") for i in _imports(path)):
            offenders.add(rel)
    assert not offenders, sorted(offenders)
