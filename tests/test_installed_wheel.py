"""Kuzot as users install it: the built wheel, in a fresh venv, run from an empty folder.

``.ci/run`` builds the wheel into ``dist/`` (or ``$KUZOT_WHEEL`` names it) before the
suite runs.  These tests install it, without the checkout on any path, and run the main
commands against the loopback lab, so a data file left out of the wheel, a dependency
missing from pyproject or code that finds files through a checkout fails CI.
Without a wheel they skip, except under ``CI=true``, where a missing wheel is a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import probe
from probe.lab.loopback import LoopbackLab
from tests.conftest import REPO

#: Files of the source packages that are not meant to be in a wheel.
NOT_SHIPPED = {".keep"}


def _wheel() -> Path | None:
    named = os.environ.get("KUZOT_WHEEL")
    if named:
        return Path(named)
    built = sorted((REPO / "dist").glob(f"kuzot-{probe.__version__}-*.whl"), key=lambda p: p.stat().st_mtime)
    return built[-1] if built else None


@pytest.fixture(scope="session")
def wheel() -> Path:
    path = _wheel()
    if path is None or not path.is_file():
        message = "no wheel of this version in dist/ (build it: python3 -m pip wheel --no-deps -w dist .)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must test the installed package: {message}")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A fresh venv (no system site-packages) with the wheel and the lab extra installed."""
    root = tmp_path_factory.mktemp("installed")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"{wheel}[lab]"],
        capture_output=True, text=True, timeout=1500, cwd=root, env=_clean_env(root),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    work = root / "work"
    work.mkdir()
    yield {"root": root, "python": python, "kuzot": env_dir / "bin" / "kuzot", "work": work}


def _clean_env(root: Path) -> dict[str, str]:
    """The user's environment without anything pointing into the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "KUZOT_TARGETS"}}
    env.update(
        KUZOT_CONFIG_DIR=str(root / "config"),
        KUZOT_DATA_DIR=str(root / "data"),
        KUZOT_ACCEPT_RISKS="1",
        KUZOT_DOH_CONTROL="off",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def _kuzot(installed: dict[str, Path], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(installed["kuzot"]), *args],
        capture_output=True, text=True, timeout=timeout,
        cwd=installed["work"], env=_clean_env(installed["root"]),
    )  # fmt: skip


def _ok(installed: dict[str, Path], *args: str) -> str:
    result = _kuzot(installed, *args)
    assert result.returncode == 0, (args, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, (args, result.stderr[-3000:])
    return result.stdout


def test_the_wheel_ships_every_data_file_of_the_packages(wheel: Path) -> None:
    """If a file under probe/ or analysis/ (templates, catalogs, CSV, migrations) is not in the wheel, then this names it."""
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = []
    for package in ("probe", "analysis"):
        for path in sorted((REPO / package).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix in {".pyc", ".pyo"}:
                continue
            if path.name in NOT_SHIPPED:
                continue
            relative = path.relative_to(REPO).as_posix()
            if relative not in names:
                missing.append(relative)
    assert missing == [], "add these to [tool.setuptools.package-data] in pyproject.toml"
    assert any(n.endswith("licenses/LICENSE") for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: GPL-3.0-or-later" in text
    assert f"Version: {probe.__version__}" in text


def test_installed_package_is_not_the_checkout(installed: dict[str, Path]) -> None:
    """If the installed venv imports probe and analysis, then both come from its site-packages, not this checkout."""
    result = subprocess.run(
        [str(installed["python"]), "-c", "import probe, analysis; print(probe.__file__); print(analysis.__file__)"],
        capture_output=True, text=True, cwd=installed["work"], env=_clean_env(installed["root"]),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for line in result.stdout.split():
        assert Path(line).is_relative_to(installed["root"]), line
        assert not Path(line).is_relative_to(REPO), line


def test_main_commands_work_from_an_empty_folder(installed: dict[str, Path], matrix_lab: LoopbackLab) -> None:
    """If the wheel is installed in a fresh venv, then run, verdicts, episodes, orders, report, verify, export, import-ooni and lab status work outside the checkout."""
    work = installed["work"]
    assert _ok(installed, "--version").strip() == f"kuzot {probe.__version__}"
    db = f"sqlite:///{work / 'kuzot.db'}"
    urls: list[str] = []
    for name in ("honest", "dns_blockpage", "sni_reset"):
        urls += ["--url", matrix_lab.targets[name].url]
    blocked_domain = matrix_lab.targets["dns_blockpage"].scenario.domain
    for _ in range(2):  # two rounds: an episode needs consecutive verdicts
        summary = json.loads(
            _ok(installed, "run", "--db", db, *urls, *matrix_lab.probe_args(), "--probe-asn", "64500",
                "--probe-cc", "KG", "--json")
        )  # fmt: skip
        assert summary["measured"] == 3
    verdicts = json.loads(_ok(installed, "verdicts", "--db", db, "--format", "json"))
    by_domain = {v["domain"]: v["status"] for v in verdicts}
    assert by_domain[blocked_domain] == "blocked"
    assert by_domain[matrix_lab.targets["honest"].scenario.domain] == "accessible"
    episodes = json.loads(_ok(installed, "episodes", "--db", db, "--format", "json"))
    assert any(e["domain"] == blocked_domain.removeprefix("www.") for e in episodes), episodes
    json.loads(_ok(installed, "orders", "--db", db, "--format", "json"))  # the shipped orders file loads
    sources = json.loads(_ok(installed, "fingerprints", "list", "--json"))["sources"]
    assert sources and all(Path(s["path"]).is_relative_to(installed["root"]) for s in sources)
    report = work / "report"
    _ok(installed, "report", "--db", db, "--domain", blocked_domain, "--out", str(report))
    assert (report / "index.html").is_file()
    _ok(installed, "verify", str(report))
    exported = work / "export.jsonl"
    _ok(installed, "export", "--db", db, "--format", "ooni", str(exported))
    assert len(exported.read_text().splitlines()) >= 6
    imported = json.loads(
        _ok(installed, "import-ooni", str(exported), "--db", f"sqlite:///{work / 'ooni.db'}", "--json")
    )
    assert imported, imported
    assert json.loads(_ok(installed, "lab", "status", "--json")) is not None
    assert _ok(installed, "targets", "check", str(_packaged(installed, "probe/data/kg.csv")), "--json")
    assert {p.name for p in work.iterdir()} >= {"export.jsonl", "kuzot.db", "ooni.db", "report"}


def _packaged(installed: dict[str, Path], relative: str) -> Path:
    """Where the installed venv keeps one of the package's files."""
    result = subprocess.run(
        [str(installed["python"]), "-c",
         "import sys; from importlib import resources; package, _, rest = sys.argv[1].partition('/');"
         " print(resources.files(package).joinpath(rest))", relative],
        capture_output=True, text=True, cwd=installed["work"], env=_clean_env(installed["root"]),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


if __name__ == "__main__":  # pragma: no cover - a hint for people who run the file directly
    sys.exit("run with pytest after building the wheel: python3 -m pip wheel --no-deps -w dist .")
