"""Informed consent gates every run."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from probe.volunteer.consent import CONSENT_TEXT, ConsentRequired, consent_record, require_consent
from tests.conftest import kuzot


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_terminal_no_flag_refuses(tmp_path: Path) -> None:
    """If there is no consent, no flag and no terminal, then ConsentRequired says what to do."""
    with pytest.raises(ConsentRequired, match="KUZOT_ACCEPT_RISKS=1"):
        require_consent(env={}, stdin=io.StringIO(), config_dir=tmp_path)
    assert consent_record(tmp_path) is None


def test_flag_and_environment_record_consent(tmp_path: Path) -> None:
    """If --accept-risks or KUZOT_ACCEPT_RISKS=1 is given, then consent is recorded once and reused."""
    require_consent(accept_flag=True, env={}, config_dir=tmp_path / "a")
    assert consent_record(tmp_path / "a")["how"] == "--accept-risks"
    require_consent(env={"KUZOT_ACCEPT_RISKS": "1"}, config_dir=tmp_path / "b")
    assert consent_record(tmp_path / "b")["how"] == "KUZOT_ACCEPT_RISKS=1"
    require_consent(env={}, stdin=io.StringIO(), config_dir=tmp_path / "b")  # already on record


@pytest.mark.parametrize(("answer", "accepted"), [("ооба\n", True), ("да\n", True), ("no\n", False)])
def test_interactive_screen(tmp_path: Path, answer: str, accepted: bool) -> None:
    """If asked on a terminal, then the text is shown in three languages and only yes/да/ооба accepts."""
    out = io.StringIO()
    if accepted:
        require_consent(env={}, stdin=_Tty(answer), stdout=out, config_dir=tmp_path)
        assert consent_record(tmp_path) is not None
    else:
        with pytest.raises(ConsentRequired):
            require_consent(env={}, stdin=_Tty(answer), stdout=out, config_dir=tmp_path)
    assert "IP address" in out.getvalue() and "IP-адрес" in out.getvalue() and "IP дарег" in out.getvalue()


def test_every_language_names_the_ip_address_and_the_law() -> None:
    """If the consent text is read in any language, then it says the IP address is never stored and names the 2021 law."""
    for text in CONSENT_TEXT.values():
        assert "IP" in text and "2021" in text


def test_run_without_consent_measures_nothing(tmp_path: Path) -> None:
    """If kuzot run has no consent and no terminal, then it exits non-zero, says why, and creates no database."""
    db = tmp_path / "k.db"
    env = {"KUZOT_ACCEPT_RISKS": "0", "KUZOT_CONFIG_DIR": str(tmp_path / "cfg")}
    result = kuzot(
        "run", "--db", f"sqlite:///{db}", "--url", "https://127.0.0.1:9/", "--no-canaries", env=env
    )
    assert result.returncode == 3
    assert "consent" in result.stderr
    assert not db.exists()
    shown = kuzot("consent", "--show", "--lang", "ky", env=env)
    assert "Тобокелдик" in shown.stdout
