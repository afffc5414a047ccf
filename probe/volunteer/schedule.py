"""Periodic runs on a volunteer's machine: a systemd user timer, else a cron line.

Why jitter: if every volunteer's probe starts on the hour, a censor (or the collector)
sees synchronised bursts, and a volunteer's measurements all fall at the same minute
of the day.  systemd gets ``RandomizedDelaySec``; cron gets a random minute offset.

Everything that touches the system is injectable (home directory, the ``systemctl``
and ``crontab`` executables, which scheduler to use) so that tests install into a
temporary home with stand-in executables.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from probe.errors import SetupError

BEGIN = "# BEGIN kuzot (managed by `kuzot schedule`)"
END = "# END kuzot"


class ScheduleError(SetupError, RuntimeError):
    """Scheduling failed; the message says what to check."""


def parse_every(text: str) -> int:
    """``30m``, ``6h``, ``1d`` -> seconds."""
    match = re.fullmatch(r"(\d+)([mhd])", text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not an interval like 30m, 6h or 1d")
    return int(match.group(1)) * {"m": 60, "h": 3600, "d": 86400}[match.group(2)]


@dataclass
class Scheduler:
    home: Path
    systemctl: str
    crontab: str
    kind: str  # "systemd" or "cron"

    @classmethod
    def detect(cls, env: dict[str, str] | None = None) -> Scheduler:
        env = dict(os.environ if env is None else env)
        home = Path(env.get("HOME") or Path.home())
        systemctl = env.get("KUZOT_SYSTEMCTL") or shutil.which("systemctl") or "systemctl"
        crontab = env.get("KUZOT_CRONTAB") or shutil.which("crontab") or "crontab"
        kind = env.get("KUZOT_SCHEDULER")
        if kind not in ("systemd", "cron"):
            kind = "systemd" if Path(f"/run/user/{os.getuid()}/systemd").is_dir() else "cron"
        return cls(home=home, systemctl=systemctl, crontab=crontab, kind=kind)

    @property
    def unit_dir(self) -> Path:
        return self.home / ".config" / "systemd" / "user"

    def _run(self, *args: str, stdin: str | None = None) -> str:
        try:
            done = subprocess.run(
                list(args), input=stdin, capture_output=True, text=True, timeout=30, check=False
            )
        except OSError as exc:
            raise ScheduleError(f"cannot run {args[0]}: {exc.strerror}") from exc
        if done.returncode != 0 and not (args[-1] == "-l" and "no crontab" in done.stderr.lower()):
            raise ScheduleError(f"`{' '.join(args)}` failed: {done.stderr.strip() or done.returncode}")
        return done.stdout

    # --- install -------------------------------------------------------------------

    def install(self, command: list[str], every_seconds: int, rng: random.Random | None = None) -> str:
        rng = rng or random.Random()
        jitter = max(60, min(every_seconds // 4, 3600))
        if self.kind == "systemd":
            self.unit_dir.mkdir(parents=True, exist_ok=True)
            (self.unit_dir / "kuzot.service").write_text(
                "[Unit]\nDescription=Kuzot censorship measurement run\n"
                "Wants=network-online.target\nAfter=network-online.target\n\n"
                f"[Service]\nType=oneshot\nExecStart={' '.join(command)}\nNice=10\n"
            )
            (self.unit_dir / "kuzot.timer").write_text(
                "[Unit]\nDescription=Periodic Kuzot measurement runs\n\n"
                f"[Timer]\nOnBootSec=10min\nOnUnitActiveSec={every_seconds}s\n"
                f"RandomizedDelaySec={jitter}s\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n"
            )
            self._run(self.systemctl, "--user", "daemon-reload")
            self._run(self.systemctl, "--user", "enable", "--now", "kuzot.timer")
            return f"systemd user timer every {every_seconds}s (random delay up to {jitter}s)"
        minute = rng.randrange(60)
        hours = max(1, every_seconds // 3600)
        spec = f"{minute} */{hours} * * *" if hours < 24 else f"{minute} {rng.randrange(24)} * * *"
        if every_seconds < 3600:
            spec = f"*/{max(1, every_seconds // 60)} * * * *"
        line = f"{spec} sleep {rng.randrange(jitter)} && {' '.join(command)}"
        self._write_cron([*self._cron_without_block(), BEGIN, line, END])
        return f"cron: {line}"

    def remove(self) -> bool:
        removed = False
        if self.kind == "systemd":
            timer = self.unit_dir / "kuzot.timer"
            if timer.exists():
                self._run(self.systemctl, "--user", "disable", "--now", "kuzot.timer")
                removed = True
            for name in ("kuzot.timer", "kuzot.service"):
                (self.unit_dir / name).unlink(missing_ok=True)
            if removed:
                self._run(self.systemctl, "--user", "daemon-reload")
            return removed
        lines = self._cron_lines()
        kept = self._cron_without_block()
        if kept != lines:
            self._write_cron(kept)
            removed = True
        return removed

    def show(self) -> str | None:
        if self.kind == "systemd":
            timer = self.unit_dir / "kuzot.timer"
            return timer.read_text() if timer.exists() else None
        lines = self._cron_lines()
        if BEGIN not in lines:
            return None
        return "\n".join(lines[lines.index(BEGIN) + 1 : lines.index(END)])

    # --- cron plumbing -------------------------------------------------------------------

    def _cron_lines(self) -> list[str]:
        return self._run(self.crontab, "-l").splitlines()

    def _cron_without_block(self) -> list[str]:
        out, inside = [], False
        for line in self._cron_lines():
            if line == BEGIN:
                inside = True
            elif line == END:
                inside = False
            elif not inside:
                out.append(line)
        return out

    def _write_cron(self, lines: list[str]) -> None:
        self._run(self.crontab, "-", stdin="\n".join(lines) + "\n")


def next_scheduled_run() -> str | None:
    """The next run from the systemd user timer or the crontab line; None when unscheduled."""
    systemctl = shutil.which("systemctl")
    if systemctl:
        try:
            out = subprocess.run(
                [systemctl, "--user", "list-timers", "kuzot.timer", "--no-legend"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            return out.splitlines()[0]
    crontab = shutil.which("crontab")
    if crontab:
        try:
            out = subprocess.run(
                [crontab, "-l"], capture_output=True, text=True, timeout=5, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            if "kuzot" in line and not line.lstrip().startswith("#"):
                return f"cron: {line.strip()}"
    return None
