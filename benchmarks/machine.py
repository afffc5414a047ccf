"""The machine line every benchmark prints beside its figures.

The development VMs change type between sessions (an AMD EPYC one day, an Intel Xeon the
next, at about twice the speed per core), so a figure without its CPU model cannot be
compared with the one before it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """Cores, CPU model, Python and kernel, as RESULTS.md's "Machine:" lines give them."""
    return (
        f"{os.cpu_count()} CPUs (nproc, {cpu_model()}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
