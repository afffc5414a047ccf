"""What ``kuzot run`` imports before it measures: none of the analyst or server stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

#: Packages a probe run does not need at start-up (the analysis, report, web and
#: collector stacks, and Alembic when the schema is current).
HEAVY = ("pandas", "matplotlib", "alembic", "jinja2", "babel", "starlette", "hypercorn", "polars", "duckdb")


def _imported_after(code: str, cwd: Path) -> list[str]:
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd, check=True, timeout=120
    )
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    return sorted(loaded.intersection(HEAVY))


def test_run_summary_judging_imports_no_pandas(tmp_path: Path) -> None:
    """If `kuzot run` judges its run for the summary, then pandas is not imported (45 MiB of its peak RSS)."""
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from analysis.fingerprints import load_fingerprints\nfrom analysis.verdicts import judge_all\n"
        "judge_all([], fingerprints=load_fingerprints())"
    )
    assert "pandas" not in _imported_after(code, tmp_path)
    assert "numpy" not in _imported_after(code, tmp_path)


def test_run_parser_imports_no_heavy_stack(tmp_path: Path) -> None:
    """If `kuzot run`'s options are parsed, then no analysis, web, collector or migration package is imported."""
    code = f"import sys; sys.path.insert(0, {str(REPO)!r})\nfrom probe.cli import build_parser\nbuild_parser(['run'])"
    assert _imported_after(code, tmp_path) == []


def test_current_store_opens_without_alembic(tmp_path: Path) -> None:
    """If a SQLite database is new or its schema is already current, then opening it does not import Alembic."""
    url = f"sqlite:///{tmp_path / 'probe.db'}"
    prefix = f"import sys; sys.path.insert(0, {str(REPO)!r})\nfrom probe.store import Store\n"
    assert _imported_after(prefix + f"Store.open({url!r}).close()", tmp_path) == []  # new: from the models
    assert _imported_after(prefix + f"Store.open({url!r}).close()", tmp_path) == []


def test_script_head_is_alembics_head() -> None:
    """If the bundled migrations are read from their files, then the head found is the one Alembic finds."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from probe.store.database import MIGRATIONS, _script_head

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert _script_head() == ScriptDirectory.from_config(config).get_current_head()


def test_run_parser_imports_no_database_or_network_code(tmp_path: Path) -> None:
    """If `kuzot run`'s options are parsed, then neither SQLAlchemy nor trio nor httpx is
    imported yet: with --workers the children start right after parsing, and the
    parent's half second of importing them should overlap the children's start-up, not
    precede it."""
    code = f"import sys; sys.path.insert(0, {str(REPO)!r})\nfrom probe.cli import build_parser\nbuild_parser(['run'])"
    heavy = ("sqlalchemy", "probe.store", "trio", "httpx")
    script = f"{code}\nprint(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r} or m == 'probe.store'))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"


#: What `kuzot run` imports to get to its first measurement: the command, the session,
#: the run, the worker pool and the deferred store.
_RUN_PATH = (
    "from probe.cli.commands import run\n"
    "from probe.volunteer import session\n"
    "import probe.run, probe.workers, probe.store.deferred, probe.store.writer\n"
    "from probe.control.choice import ControlChoice\n"
    "ControlChoice().check()\n"
)


def _loaded(code: str, names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` (modules, or packages by their top name) ``code`` imports."""
    script = f"{code}import json, sys\nprint(json.dumps(sorted(n for n in {names!r} if n in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_kuzot_run_loads_no_database_code_before_it_measures() -> None:
    """If `kuzot run` gets to its first measurement, then it has loaded no SQLAlchemy or
    models: about 0.4 s of CPU, which now overlaps the first measurements (probe/store/deferred.py)."""
    names = ("sqlalchemy", "alembic", "probe.store.database", "probe.store.models")
    assert _loaded(_RUN_PATH, names) == []


def test_a_parent_with_workers_loads_no_measuring_stack() -> None:
    """If `kuzot run --workers` gets to its first measurement, then its parent, which hands
    every target to a child, has loaded none of httpx, the HTTP and TLS steps or
    cryptography's X.509 parser (about a fifth of a second of CPU on the run's critical path)."""
    names = ("httpx", "httpcore", "h11", "probe.measure", "probe.steps.http", "probe.steps.tls",
             "cryptography.x509", "probe.control.doh", "probe.upload.uploader")
    assert _loaded(_RUN_PATH, names) == []
