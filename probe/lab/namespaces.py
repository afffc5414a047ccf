"""The namespace lab's host side: running things inside a namespace, and tearing a lab
down from its state file (which works from any process, so ``kuzot lab down`` can
remove a lab another process built).

Why apart from :mod:`probe.lab.netns`: these are the few functions that touch the
host (``setns``, ``ip netns``, ``/run``, pids), kept small enough to review on their own.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from probe.errors import SetupError

#: One entry per running lab (a symlink to its state directory), for ``kuzot lab status|down``.
REGISTRY = Path("/run/kuzot-lab")
STATE_FILE = "state.json"
REQUIRED_TOOLS = ("ip", "dnsmasq", "nginx", "nft", "iptables")
ROLES = ("vol", "isp", "net", "ctl")

T = TypeVar("T")


class LabError(SetupError, RuntimeError):
    """The lab cannot be built or run here; the message says why."""


def environment_problem() -> str | None:
    """Why the namespace lab cannot run on this machine, or ``None`` when it can."""
    if sys.platform != "linux":
        return f"the namespace lab needs Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "the namespace lab needs root (ip netns, nftables)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return (
            f"missing {', '.join(missing)} (apt-get install dnsmasq nginx-light nftables iptables iproute2)"
        )
    if not Path("/dev/net/tun").exists():
        return "no /dev/net/tun (the delay line needs it)"
    if importlib.util.find_spec("trustme") is None:
        return "the lab's test CA needs the 'lab' extra: pip install 'kuzot[lab]'"
    return None


# --- running things in a namespace -------------------------------------------------------------

_CLONE_NEWNET = 0x40000000


def in_netns(namespace: str, fn: Callable[[], T]) -> T:
    """Call ``fn`` in a thread that has entered ``namespace``.

    Why a thread: ``setns`` moves only the calling thread, so the caller's own sockets
    stay in the host namespace; a fresh thread is discarded afterwards.
    """
    result: list[Any] = []
    libc = ctypes.CDLL(None, use_errno=True)

    def target() -> None:
        try:
            with open(f"/run/netns/{namespace}") as handle:
                if libc.setns(handle.fileno(), _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {namespace}")
            result.append((True, fn()))
        except BaseException as exc:
            result.append((False, exc))

    thread = threading.Thread(target=target, name=f"netns-{namespace}")
    thread.start()
    thread.join()
    ok, value = result[0]
    if not ok:
        raise value
    return value


def _port_open(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((ip, port)) == 0


def _run(argv: Sequence[str], *, stdin: str | None = None, check: bool = True) -> str:
    result = subprocess.run(list(argv), input=stdin, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")
    return result.stdout


# --- teardown from a state file (works from any process) ---------------------------------------


def _process_is_ours(pid: int, state_dir: Path) -> bool:
    """True when ``pid`` still runs a lab daemon: its command line names the state dir.
    Why: a pid recorded long ago may belong to someone else's process by now."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return str(state_dir) in cmdline


def _stop_pid(pid: int, state_dir: Path, grace: float = 2.0) -> None:
    if not _process_is_ours(pid, state_dir):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _process_is_ours(pid, state_dir):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)
    if _process_is_ours(pid, state_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def teardown(state_dir: Path) -> list[str]:
    """Remove the lab recorded in ``state_dir``: daemons, namespaces (and with them the
    veths), ``/etc/netns`` entries, registry entry, and the directory if the lab made it.
    Returns what could not be removed (empty when all went)."""
    problems: list[str] = []
    state_path = state_dir / STATE_FILE
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError) as exc:
        return [f"no lab state in {state_dir}: {exc}"]
    for pid in state.get("pids", {}).values():
        _stop_pid(int(pid), state_dir)
    for namespace in state.get("namespaces", []):
        if Path(f"/run/netns/{namespace}").exists():
            result = subprocess.run(["ip", "netns", "del", namespace], capture_output=True, text=True)
            if result.returncode != 0:
                problems.append(f"ip netns del {namespace}: {result.stderr.strip()}")
        shutil.rmtree(f"/etc/netns/{namespace}", ignore_errors=True)
    with contextlib.suppress(OSError):
        (REGISTRY / state["suffix"]).unlink()
    if state.get("owns_state_dir"):
        shutil.rmtree(state_dir, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            state_path.unlink()
    return problems


def running_labs() -> list[Path]:
    """State directories of the labs registered on this machine."""
    if not REGISTRY.is_dir():
        return []
    return sorted(p.resolve() for p in REGISTRY.iterdir() if (p / STATE_FILE).exists())
