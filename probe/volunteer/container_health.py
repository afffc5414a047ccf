"""The Docker image's HEALTHCHECK: is the server this container runs answering?

Why a module and not ``curl`` in the Dockerfile: the slim image has no curl, and the
same image runs one-shot commands (``kuzot run``), which have nothing to check.  It
reads the container's command from ``/proc/1/cmdline``; for ``kuzot serve`` (the
collector) or ``kuzot control serve`` it asks ``/api/v1/health`` on the ``--listen``
address, over loopback only.  Exit status 0 healthy, 1 not.
"""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path

DEFAULT_LISTEN = {"serve": "127.0.0.1:8080", "control": "127.0.0.1:8787"}


def health_url(argv: Sequence[str]) -> str | None:
    """The health endpoint of the server ``argv`` starts, or ``None`` when it starts none."""
    args = list(argv)
    # Skip to what follows the program: ".../kuzot" (the entry point, maybe run by its
    # interpreter) or "-m probe".
    for i, arg in enumerate(args):
        if Path(arg).name == "kuzot" or (arg == "probe" and i and args[i - 1] == "-m"):
            args = args[i + 1 :]
            break
    else:
        return None
    if not args or args[0] not in DEFAULT_LISTEN:
        return None
    if args[0] == "control" and args[1:2] != ["serve"]:
        return None
    listen = DEFAULT_LISTEN[args[0]]
    for i, arg in enumerate(args):
        if arg == "--listen" and i + 1 < len(args):
            listen = args[i + 1]
        elif arg.startswith("--listen="):
            listen = arg.split("=", 1)[1]
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/api/v1/health"


def main() -> int:
    try:
        argv = Path("/proc/1/cmdline").read_bytes().split(b"\0")
    except OSError:
        return 0
    url = health_url([a.decode(errors="replace") for a in argv if a])
    if url is None:
        return 0
    try:
        with urllib.request.urlopen(url, timeout=4) as response:  # loopback only
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
