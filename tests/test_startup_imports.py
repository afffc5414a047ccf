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
