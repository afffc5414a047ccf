"""Every command a script may call answers in JSON with ``--json``.

Scripts and notebooks must never parse sentences meant for people, so each command
is run here the way a script would, and its standard output must be one JSON
document (the servers, ``control serve`` and ``serve``, are the exception: they log).
"""

from __future__ import annotations

import argparse
import json
import stat
from pathlib import Path

import pytest

from probe.bundled import default_targets_file
from probe.cli import build_parser
from probe.cli.commands import COMMANDS
from tests.conftest import kuzot

#: Commands that run until stopped and so have no single answer to give.
SERVERS = {"control", "serve"}


def _json(*args: str, env: dict[str, str] | None = None, status: int = 0) -> dict | list:
    result = kuzot(*args, env=env)
    assert result.returncode == status, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, str]:
    """A throwaway home, config directory and fake systemctl for the schedule."""
    systemctl = tmp_path / "systemctl"
    systemctl.write_text("#!/bin/sh\nexit 0\n")
    systemctl.chmod(systemctl.stat().st_mode | stat.S_IEXEC)
    return {
        "HOME": str(tmp_path / "home"),
        "KUZOT_CONFIG_DIR": str(tmp_path / "config"),
        "KUZOT_SCHEDULER": "systemd",
        "KUZOT_SYSTEMCTL": str(systemctl),
    }


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_command_offers_json() -> None:
    """If any command other than the servers is parsed, then it (or each of its actions) has a --json option."""
    missing = []
    for name, parser in _subparsers(build_parser()).items():
        if name in SERVERS:
            continue
        for leaf_name, leaf in (_subparsers(parser) or {"": parser}).items():
            if "--json" not in leaf._option_string_actions:
                missing.append(f"{name} {leaf_name}".strip())
    assert missing == []
    assert {m.replace("_", "-") for m in COMMANDS} <= set(_subparsers(build_parser()))


def test_consent_and_schedule_json(sandbox: dict[str, str]) -> None:
    """If consent and schedule are driven with --json, then each step answers a JSON object with the state it left."""
    assert _json("consent", "--json", env=sandbox) == {"accepted": False}
    accepted = _json("consent", "--accept", "--json", env=sandbox)
    assert accepted["accepted"] is True and accepted["at"]
    assert set(_json("consent", "--show", "--json", env=sandbox)["texts"]) == {"en", "ru", "ky"}
    installed = _json("schedule", "--every", "6h", "--json", env=sandbox)
    assert (
        installed["scheduled"] is True
        and installed["every_seconds"] == 21600
        and "run" in installed["command"]
    )
    assert _json("schedule", "--show", "--json", env=sandbox)["scheduled"] is True
    assert _json("schedule", "--remove", "--json", env=sandbox) == {"removed": True}
    assert _json("consent", "--withdraw", "--json", env=sandbox) == {"accepted": False, "withdrawn": True}


def test_database_and_list_commands_json(tmp_path: Path) -> None:
    """If db, targets, fingerprints, import-ooni, export and the tables are asked for JSON, then they answer it, with no database URL echoed."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    upgraded = _json("db", "upgrade", "--db", db, "--json")
    assert upgraded["changed"] is True and upgraded["before"] is None and upgraded["after"]
    assert _json("db", "current", "--db", db, "--json") == {"revision": upgraded["after"]}
    checked = _json("targets", "check", str(default_targets_file()), "--json")
    assert checked["valid"] is True and checked["urls"] >= 6
    sources = _json("fingerprints", "list", "--json")["sources"]
    assert any(s["path"].endswith(".csv") and s["fingerprints"] > 0 for s in sources)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("not json\n")
    imported = _json("import-ooni", str(empty), "--db", db, "--json", status=1)
    assert imported["imported"] == 0 and imported["skipped_lines"] and ":1" in imported["skipped_lines"][0]
    exported = _json("export", str(tmp_path / "out.jsonl"), "--db", db, "--json")
    assert exported == {"written": 0, "format": "ooni", "file": str(tmp_path / "out.jsonl")}
    for table in ("show", "verdicts", "episodes"):
        assert _json(table, "--db", db, "--json") == []


def test_chart_json(history_db: dict, tmp_path: Path) -> None:
    """If a chart is drawn with --json, then the answer lists the files written."""
    out = tmp_path / "heat"
    answer = _json("chart", "heatmap", "--db", history_db["db"], "--out", str(out), "--json")
    assert answer["kind"] == "heatmap" and sorted(Path(f).suffix for f in answer["files"]) == [".png", ".svg"]
    assert all(Path(f).stat().st_size > 0 for f in answer["files"])


def test_lab_status_json() -> None:
    """If no namespace lab runs, then `kuzot lab status --json` says so as an empty list."""
    result = kuzot("lab", "status", "--json")
    if result.returncode != 0:
        pytest.skip(f"lab status unavailable here: {result.stderr.strip()}")
    assert isinstance(json.loads(result.stdout)["labs"], list)
