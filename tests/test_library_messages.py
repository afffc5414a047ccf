"""Library sentences a CLI user reads: English as data, translated for a person."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import pytest

from probe.i18n import N_, Message, localized
from probe.targets import TargetsError, parse_targets
from probe.verify import verify_report
from probe.volunteer.config import ConfigError, parse_value

HEADER = "url,category_code,category_description,date_added,source,notes\n"


def test_a_refused_row_is_english_in_data_and_translated_on_the_terminal() -> None:
    """If a test-list row is refused, then its reason is English in to_dict and Russian or Kyrgyz when localized."""
    refused: list = []
    parse_targets(HEADER + "https://a.kg/,NEWS,,,,\nftp://b.kg/,XXXX,,,,\n", name="t.csv", refused=refused)
    data = json.dumps([r.to_dict() for r in refused])
    assert "URL must start with http:// or https://" in data
    assert str(refused[0]) == "t.csv:3: URL must start with http:// or https://: 'ftp://b.kg/'"
    assert "URL должен начинаться" in refused[0].localized("ru")
    assert "менен башталышы керек" in refused[0].localized("ky")


def test_a_targets_error_speaks_the_terminals_language(monkeypatch: pytest.MonkeyPatch) -> None:
    """If KUZOT_LANG is ru, then a test-list error raised by the library is in Russian."""
    monkeypatch.setenv("KUZOT_LANG", "ru")
    with pytest.raises(TargetsError, match="в файле нет URL"):
        parse_targets(HEADER, name="t.csv")
    with pytest.raises(ConfigError, match="недопустимое значение"):
        parse_value("concurrency", "x")


def test_verify_json_stays_english_while_its_lines_are_translated(tmp_path: Path) -> None:
    """If a bundle has problems, then to_dict's messages are English and localized lines and summary are Kyrgyz."""
    (tmp_path / "evidence").mkdir()
    (tmp_path / "evidence" / "MANIFEST.sha256").write_text("nonsense\n")
    result = verify_report(tmp_path)
    messages = [p["message"] for p in result.to_dict()["problems"]]
    assert all(type(m) is str for m in messages)
    assert any(m.startswith("not a sha256sum line") for m in messages)
    assert "sha256sum сабы эмес" in result.problems[0].localized("ky")
    assert result.summary("en").startswith("FAILED: ")
    assert result.summary("ky").startswith("ӨТКӨН ЖОК: ")


def test_a_message_survives_copying_and_pickling() -> None:
    """If a Message is deep-copied or pickled, then it is still translatable, nested values included."""
    inner = Message(N_("invalid port"))
    outer = Message(N_("{reason}: {url}"), reason=inner, url="'x'")
    for again in (copy.deepcopy(outer), pickle.loads(pickle.dumps(outer))):
        assert again == "invalid port: 'x'"
        assert localized(again, "ru") == "недопустимый порт: 'x'"
