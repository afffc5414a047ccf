"""Settings precedence, and scheduled runs installed into a temporary home."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from probe.cli import main
from probe.volunteer.config import ConfigError, load_config, parse_value
from probe.volunteer.consent import record_consent


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KUZOT_CONFIG_DIR", str(tmp_path / "config"))
    log = tmp_path / "calls.log"
    table = tmp_path / "crontab.txt"
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(f'#!/bin/sh\necho "systemctl $*" >> {log}\n')
    crontab = tmp_path / "crontab"
    crontab.write_text(
        "#!/bin/sh\n"
        f'echo "crontab $*" >> {log}\n'
        f'if [ "$1" = "-l" ]; then [ -f {table} ] && cat {table} || {{ echo "no crontab for x" >&2; exit 1; }}; '
        f"else cat > {table}; fi\n"
    )
    for exe in (systemctl, crontab):
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("KUZOT_SYSTEMCTL", str(systemctl))
    monkeypatch.setenv("KUZOT_CRONTAB", str(crontab))
    return tmp_path


def test_config_precedence(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """If a setting is in the file, then it beats the default, and a command-line value beats both."""
    assert main(["config", "set", "concurrency", "4"]) == 0
    config = load_config()
    assert config.get("concurrency") == 4 and config.source("concurrency") == "file"
    assert config.get("probe_cc") == "KG" and config.source("probe_cc") == "default"
    assert config.merged_with({"concurrency": 9})["concurrency"] == 9
    assert config.merged_with({"concurrency": None})["concurrency"] == 4
    assert main(["config", "unset", "concurrency"]) == 0
    assert load_config().source("concurrency") == "default"


def test_config_rejects_bad_values(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """If a value is invalid, then the error names the key and what is allowed, and nothing is written."""
    assert main(["config", "set", "upload", "maybe"]) == 2
    assert "upload" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="schedule"):
        parse_value("schedule", "often")
    assert not (home / "config" / "config.toml").exists()


def test_schedule_needs_consent(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """If consent was never given, then scheduling refuses (a timer never accepts for the volunteer)."""
    monkeypatch.setenv("KUZOT_SCHEDULER", "cron")
    assert main(["schedule", "--every", "6h"]) == 3
    assert "consent" in capsys.readouterr().err


def test_systemd_timer_install_and_remove(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If systemd is used, then a service and a timer with a random delay are written, enabled, and removed again."""
    monkeypatch.setenv("KUZOT_SCHEDULER", "systemd")
    record_consent("test")
    assert main(["schedule", "--every", "6h"]) == 0
    units = home / "home" / ".config" / "systemd" / "user"
    timer = (units / "kuzot.timer").read_text()
    assert "OnUnitActiveSec=21600s" in timer and "RandomizedDelaySec=" in timer
    assert " run --quiet" in (units / "kuzot.service").read_text()
    calls = (home / "calls.log").read_text()
    assert "--user daemon-reload" in calls and "--user enable --now kuzot.timer" in calls
    assert main(["schedule", "--remove"]) == 0
    assert not (units / "kuzot.timer").exists()
    assert "--user disable --now kuzot.timer" in (home / "calls.log").read_text()


def test_cron_install_keeps_other_lines_and_removes_cleanly(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If cron is used, then one managed block with a random offset is added beside the user's lines and removed alone."""
    monkeypatch.setenv("KUZOT_SCHEDULER", "cron")
    (home / "crontab.txt").write_text("0 3 * * * backup\n")
    record_consent("test")
    assert main(["schedule", "--every", "6h"]) == 0
    table = (home / "crontab.txt").read_text()
    assert "backup" in table and "# BEGIN kuzot" in table and "*/6 * * *" in table and "sleep " in table
    assert main(["schedule", "--every", "12h"]) == 0  # reinstall replaces, never duplicates
    assert (home / "crontab.txt").read_text().count("# BEGIN kuzot") == 1
    assert main(["schedule", "--remove"]) == 0
    assert (home / "crontab.txt").read_text() == "0 3 * * * backup\n"
    os.environ.pop("KUZOT_SCHEDULER", None)


def test_scheduled_runs_upload_when_configured(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If upload is on with a collector URL, then the scheduled command is a `kuzot run --upload URL` that parses."""
    import shlex

    from probe.cli import build_parser

    monkeypatch.setenv("KUZOT_SCHEDULER", "systemd")
    record_consent("test")
    assert main(["config", "set", "collector_url", "https://collector.example.org"]) == 0
    assert main(["config", "set", "upload", "true"]) == 0
    assert main(["schedule", "--every", "6h"]) == 0
    service = (home / "home" / ".config" / "systemd" / "user" / "kuzot.service").read_text()
    exec_line = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    words = shlex.split(exec_line.removeprefix("ExecStart="))
    args = build_parser().parse_args(words[words.index("run") :])
    assert args.upload == "https://collector.example.org" and args.quiet
    assert main(["schedule", "--remove"]) == 0
