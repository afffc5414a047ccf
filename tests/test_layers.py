"""The layer rule: measuring and judging stay apart, so verdicts can be recomputed anywhere.

- ``analysis`` imports from ``probe`` only the archival records, the failure vocabulary,
  the exception tree (judging is pure and runs wherever the data is) and the gettext loader
  ``probe.catalogs`` (one way to read every domain's catalog).  One exception: the
  analysis modules named for I/O (:data:`ANALYSIS_IO`) may import
  :data:`STORE_READERS`, and nothing else of ``probe.store``, because all SQL lives in
  ``probe/store/`` (the schema is known in one package) while analysis must still read
  any database by URL; that module opens a plain engine and returns stored records.
- ``probe.records``, ``probe.failures`` and ``probe.errors`` import nothing else of the
  project (``probe.errors`` and ``probe.catalogs`` nothing at all).
- only the CLI layer (``probe.cli`` and its ``commands``) and the Explorer (``probe.web``,
  a presentation layer like the CLI) import ``analysis``.
- ``probe`` is layered bottom-up (:data:`PROBE_LAYERS`, drawn in docs/architecture.md);
  no module imports a layer above its own, and the measuring core never imports a server,
  a lab, the archive, the Explorer or the CLI.
- ``analysis`` touches the database, files or the network only in the modules named for
  it (:data:`ANALYSIS_IO`); everything else is pure computation on data it is given.

Imports inside functions count as much as those at the top: a lazy import is still a
dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: ``probe`` bottom-up: a module may import its own layer and those below, never above.
#: A module is placed by its longest listed prefix.
PROBE_LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("vocabulary", ("probe", "probe.errors", "probe.failures", "probe.records", "probe.bundled",
                    "probe.extras", "probe.i18n", "probe.catalogs", "probe.volunteer.paths")),
    ("measuring core", ("probe.steps", "probe.settings", "probe.targets", "probe.context", "probe.measure",
                        "probe.bandwidth", "probe.store", "probe.signing", "probe.formats",
                        "probe.run", "probe.workers", "probe.worker_start", "probe.control")),
    ("volunteer", ("probe.volunteer", "probe.upload", "probe.verify")),
    ("servers, labs, archive", ("probe.server", "probe.lab",
                                "probe.ooni_archive")),
    ("Explorer", ("probe.web",)),
    ("CLI", ("probe.cli", "probe.__main__")),
]

#: Known upward imports, each with the move that will remove it (issue 14's layout).
UPWARD_EXCEPTIONS: dict[tuple[str, str], str] = {}

#: The measuring core: what a volunteer's run executes.
MEASURING_CORE = ("probe.steps", "probe.context", "probe.measure", "probe.run", "probe.records", "probe.failures")

#: What the measuring core must never import: servers, labs, the archive, presentation.
NOT_FROM_CORE = (
    "probe.server",
    "probe.control.doh",
    "probe.lab",
    "probe.ooni_archive",
    "probe.web",
    "probe.cli",
    "analysis",
)

#: The analysis modules allowed I/O, and which.  Any other module is pure.
ANALYSIS_IO: dict[str, str] = {
    "analysis/data.py": "reads measurements from the database",
    "analysis/verdict_cache.py": "reads and writes the verdict cache in the database",
    "analysis/evidence.py": "writes a report's evidence files and manifest from the database",
    "analysis/report/write.py": "writes the report folder (the one writer; compose.py and html.py are pure)",
    "analysis/charts.py": "saves chart images",
    "analysis/fingerprints.py": "reads fingerprint files; downloads OONI's",
    "analysis/orders.py": "reads an orders file",
    "analysis/asn.py": "opens the ASN database",
    "analysis/bundled.py": "finds package data",
    "analysis/networks.py": "reads the bundled networks table",
    "analysis/verdicts/__main__.py": "regenerates the rule table in docs/verdicts.md",
    "analysis/i18n.py": "reads the bundled gettext catalogs",
}

#: The one module of ``probe.store`` the analysis I/O modules may import (read-only,
#: by database URL): all SQL lives in ``probe/store/``, analysis asks it for rows.
STORE_READERS = "probe.store.readers"
#: The analysis I/O modules that read the database, hence may import :data:`STORE_READERS`.
READS_THE_STORE = ("analysis/data.py", "analysis/evidence.py", "analysis/verdict_cache.py")

#: Modules whose import means database, network or process I/O.
IO_MODULES = (
    "sqlalchemy",
    "httpx",
    "httpcore",
    "socket",
    "ssl",
    "urllib.request",
    "http.client",
    "requests",
    "boto3",
    "psycopg",
    "sqlite3",
    "subprocess",
    "shutil",
    "tempfile",
    "maxminddb",
    "trio",
)

#: Calls that read or write files (``open(...)``, ``path.write_text(...)``, ``df.to_csv(...)``).
IO_CALLS = frozenset(
    {
        "open",
        "fdopen",
        "read_text",
        "write_text",
        "read_bytes",
        "write_bytes",
        "savefig",
        "to_csv",
        "to_parquet",
        "read_csv",
        "read_parquet",
        "read_sql",
        "mkdir",
        "unlink",
        "rmtree",
        "create_engine",
    }
)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # ``from probe.control import client`` imports probe.control.client.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _project_imports(path: Path) -> set[str]:
    """Imported project modules (a ``from a import b`` adds ``a.b`` only when it is a module)."""
    found = set()
    for name in _imports(path):
        if not name.startswith(("probe", "analysis")):
            continue
        if name.split(".")[0] not in ("probe", "analysis"):
            continue
        as_path = ROOT.joinpath(*name.split("."))
        if name.count(".") and not (as_path.with_suffix(".py").is_file() or as_path.is_dir()):
            parent = name.rsplit(".", 1)[0]
            parent_path = ROOT.joinpath(*parent.split("."))
            if parent_path.with_suffix(".py").is_file() or parent_path.is_dir():
                continue  # ``from x import some_name``: the module ``x`` is listed on its own
        found.add(name)
    return found


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _layer(name: str) -> int:
    best, level = -1, -1
    for index, (_, prefixes) in enumerate(PROBE_LAYERS):
        for prefix in prefixes:
            if _within(name, prefix) and len(prefix) > best:
                best, level = len(prefix), index
    assert level >= 0, f"{name} is in no layer: add it to PROBE_LAYERS (and docs/architecture.md)"
    return level


def test_analysis_imports_only_records_failures_and_errors_from_probe() -> None:
    """If an analysis module imports the probe, then only records, failures, errors, catalogs (and, in an I/O module, the store's readers)."""
    allowed = {"probe", "probe.records", "probe.failures", "probe.errors", "probe.catalogs"}
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in _modules("analysis")
        for name in _project_imports(path)
        if _within(name, "probe")
        and name not in allowed
        and not (name == STORE_READERS and path.relative_to(ROOT).as_posix() in READS_THE_STORE)
    }
    assert not offenders, sorted(offenders)


def test_the_store_readers_import_only_the_models() -> None:
    """If the store's readers import project code, then only the table models and the record codec (analysis stays free of the writer, the volunteer layer and the servers)."""
    project = _project_imports(ROOT / "probe" / "store" / "readers.py")
    assert project <= {"probe.store.models", "probe.store.record_codec"}, project
    assert set(READS_THE_STORE) <= set(ANALYSIS_IO)


def test_archival_format_depends_on_nothing_else() -> None:
    """If the record, failure or error modules import project code, then only each other (errors: nothing)."""
    for name, allowed in (
        ("records.py", {"probe.failures", "probe.records"}),
        ("failures.py", {"probe.failures", "probe.records"}),
        ("errors.py", set()),
        ("catalogs.py", set()),
    ):
        project = _project_imports(ROOT / "probe" / name)
        assert project <= allowed, (name, project)


def test_only_the_cli_layer_imports_analysis() -> None:
    """If a probe module imports analysis, then it is the CLI, a subcommand or the Explorer."""
    offenders = set()
    for path in _modules("probe"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(("probe/cli/", "probe/web/")):
            continue
        if any(_within(i, "analysis") for i in _project_imports(path)):
            offenders.add(rel)
    assert not offenders, sorted(offenders)


def test_every_probe_module_has_a_layer() -> None:
    """If a probe module is added, then it belongs to one of the listed layers."""
    for path in _modules("probe"):
        _layer(_module_name(path))


def test_no_probe_module_imports_upwards() -> None:
    """If a probe module imports another, then the other is in the same layer or below (known exceptions listed)."""
    offenders = set()
    for path in _modules("probe"):
        here = _module_name(path)
        for name in _project_imports(path):
            if not _within(name, "probe"):
                continue
            if _layer(name) > _layer(here) and (here, name) not in UPWARD_EXCEPTIONS:
                offenders.add(
                    f"{here} ({PROBE_LAYERS[_layer(here)][0]}) imports {name} ({PROBE_LAYERS[_layer(name)][0]})"
                )
    assert not offenders, sorted(offenders)


def test_upward_exceptions_are_still_needed() -> None:
    """If a listed upward import is gone, then its exception is removed from the list too."""
    for here, name in UPWARD_EXCEPTIONS:
        path = ROOT.joinpath(*here.split(".")).with_suffix(".py")
        assert name in _project_imports(path), (here, name)


def test_commands_do_not_import_each_other() -> None:
    """If a subcommand module imports project code, then never another subcommand (what they share is in probe/cli/_*.py or the library)."""
    offenders = set()
    for path in _modules("probe/cli/commands"):
        here = _module_name(path)
        for name in _project_imports(path):
            if _within(name, "probe.cli.commands") and here != "probe.cli.commands" and name != here:
                offenders.add(f"{here}: {name}")
    assert not offenders, sorted(offenders)


def test_the_measuring_core_imports_no_server_lab_or_presentation() -> None:
    """If a measuring-core module imports project code, then never a server, a lab, the archive, the Explorer or the CLI."""
    offenders = set()
    for path in _modules("probe"):
        here = _module_name(path)
        if not any(_within(here, core) for core in MEASURING_CORE):
            continue
        for name in _project_imports(path):
            if any(_within(name, banned) for banned in NOT_FROM_CORE):
                offenders.add(f"{here}: {name}")
    assert not offenders, sorted(offenders)


def _io_uses(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    uses = {f"import {name}" for name in _imports(path) if any(_within(name, io) for io in IO_MODULES)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if called in IO_CALLS:
            uses.add(f"{called}() at line {node.lineno}")
        elif (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "os"
            and func.attr in {"replace", "rename", "remove", "open", "makedirs", "fsync"}
        ):
            uses.add(f"os.{func.attr}() at line {node.lineno}")
    return uses


def test_analysis_does_io_only_in_its_named_modules() -> None:
    """If an analysis module opens a file, a database or a connection, then it is one of the modules named for I/O."""
    offenders = {
        f"{path.relative_to(ROOT).as_posix()}: {use}"
        for path in _modules("analysis")
        if path.relative_to(ROOT).as_posix() not in ANALYSIS_IO
        for use in _io_uses(path)
    }
    assert not offenders, sorted(offenders)


def test_named_io_modules_exist() -> None:
    """If a module is named for I/O, then it exists (a stale name would hide a new module's I/O)."""
    missing = [name for name in ANALYSIS_IO if not (ROOT / name).is_file()]
    assert not missing, missing


#: What writing SQL outside the store looks like: building a query, or a statement's text.
SQL_NAMES = frozenset({"text", "select", "insert", "update", "delete", "Session", "inspect"})
SQL_WORDS = ("SELECT ", "INSERT INTO ", "DELETE FROM ", "UPDATE ", " WHERE ")


def test_the_explorer_writes_no_sql() -> None:
    """If an Explorer module queries the database, then through probe.store (its queries are in probe/store/explorer_reads.py)."""
    offenders = set()
    for path in _modules("probe/web"):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sqlalchemy"):
                offenders.update(f"{rel}: imports {a.name}" for a in node.names if a.name in SQL_NAMES)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and any(
                word in node.value for word in SQL_WORDS
            ):
                offenders.add(f"{rel}: SQL text at line {node.lineno}")
    assert not offenders, sorted(offenders)
