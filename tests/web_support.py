"""``kuzot web`` in a subprocess over a database of real lab runs and a synthetic history."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]

#: A page title a hostile (or careless) site could serve: it must reach readers as text.
HOSTILE_TITLE = '<script>window.kuzotPwned = 1; alert("pwned")</script><img src=x onerror=alert(2)>'
HOSTILE_DOMAIN = "hostile-title.kg"


def hostile_page(host: str) -> bytes:
    return (
        f"<!DOCTYPE html><html><head><title>{HOSTILE_TITLE}</title></head>"
        f"<body><p>{host} serves a title with markup in it.</p></body></html>"
    ).encode()


class WebProcess:
    """``kuzot web --json`` in a subprocess; its output goes to files in ``directory``."""

    def __init__(self, db_url: str, directory: Path, *extra: str) -> None:
        self.db_url = db_url
        self.directory = directory
        self.extra = extra
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []
        directory.mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = 240) -> WebProcess:
        out = open(self.directory / "web.out", "wb")  # noqa: SIM115 - kept open while the server runs
        err = open(self.directory / "web.err", "wb")  # noqa: SIM115
        self._files = [out, err]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "probe", "web", "--db", self.db_url, "--listen", "127.0.0.1:0", "--json",
             *self.extra],
            cwd=REPO,
            stdout=out,
            stderr=err,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            printed = (self.directory / "web.out").read_text(errors="replace").strip()
            if printed:
                self.url = json.loads(printed.splitlines()[0])["url"].rstrip("/")
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"kuzot web exited {self.proc.returncode}: {self.logs()[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"kuzot web did not start: {self.logs()[-3000:]}")

    def logs(self) -> str:
        return "".join((self.directory / name).read_text(errors="replace") for name in ("web.out", "web.err"))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for f in self._files:
            f.close()
        self._files = []
