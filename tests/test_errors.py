"""The exception tree drawn in probe/errors.py is the real one, and the CLI honours it."""

from __future__ import annotations

import importlib

import pytest

import probe.errors
from probe.cli import main
from probe.errors import KuzotError

#: Where each class of the drawing lives when the drawing does not say (the bases).
_HOME = {name: "probe.errors" for name in probe.errors.__all__}
_HOME["CommandError"] = "probe.cli.commands"

def _drawing() -> list[tuple[int, str, str | None, str | None]]:
    """(depth, class name, exit status or None, module) for each line of the drawn tree."""
    doc = probe.errors.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in block.splitlines()[1:]:
        line = line[4:]
        at = line.index("── ")
        words = line[at + 3 :].split()
        name = words[0].rstrip("*")
        status = words[1].strip("()") if len(words) > 1 and words[1].startswith("(") else None
        module = next((w.strip("()") for w in words[1:] if w.startswith(("probe.", "analysis."))), None)
        rows.append((at // 4, name, status, module))
    return rows


def _resolve(name: str, module: str | None) -> type[BaseException]:
    where = module or _HOME[name]
    cls = getattr(importlib.import_module(where), name)
    assert isinstance(cls, type) and issubclass(cls, BaseException), name
    return cls


def test_the_drawn_tree_is_the_class_hierarchy() -> None:
    """If the docstring draws a class under another, then it is a subclass of it with the drawn exit status."""
    rows = _drawing()
    assert len(rows) >= 20
    parents: list[type[BaseException]] = [KuzotError]
    for depth, name, status, module in rows:
        cls = _resolve(name, module)
        del parents[depth + 1 :]
        assert issubclass(cls, parents[depth]), (name, parents[depth])
        assert cls.__bases__[0] is parents[depth], (name, cls.__bases__)
        if status is not None and status.isdigit():
            assert cls.exit_status == int(status), name  # type: ignore[attr-defined]
        parents.append(cls)


def test_old_names_stay_importable_where_they_were() -> None:
    """If code imports an exception from its old module, then it still gets the tree's class."""
    from analysis.report import ReportError
    from probe.upload import UploadError
    from probe.volunteer.consent import ConsentRequired

    assert ConsentRequired is probe.errors.ConsentRequired and ConsentRequired.exit_status == 3
    assert UploadError is probe.errors.UploadError
    assert ReportError is probe.errors.ReportError


def test_old_standard_bases_still_catch() -> None:
    """If a caller catches ValueError or RuntimeError around Kuzot code, then the same errors are still caught."""
    from probe.store import StoreError
    from probe.volunteer.config import ConfigError

    assert issubclass(ConfigError, ValueError) and issubclass(StoreError, RuntimeError)


def test_a_kuzot_error_from_a_library_is_one_line_and_its_status(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """If a library error reaches the CLI, then kuzot prints one line naming the command and exits with the error's status."""
    bad = tmp_path / "targets.csv"
    bad.write_text("no header here\n\x00\n", encoding="utf-8")
    status = main(["targets", "check", str(bad)])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("kuzot targets: ") and "Traceback" not in err
