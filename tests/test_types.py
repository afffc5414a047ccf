"""The type checker runs with the tests, so the README's one test command covers it.

The configuration (strict on the measuring and judging core, the default elsewhere)
is in pyproject.toml under ``[tool.mypy]``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_no_errors_in_probe_and_analysis() -> None:
    """If mypy checks probe/ and analysis/ with the project's configuration, then it reports no error."""
    if importlib.util.find_spec("mypy") is None:
        if os.environ.get("CI"):
            pytest.fail("mypy is in the test extra: pip install -e '.[test]'")
        pytest.skip("mypy is not installed (it is in the test extra)")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--cache-dir", str(ROOT / ".mypy_cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout + result.stderr
