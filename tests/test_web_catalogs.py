"""The Explorer's 'web' gettext catalogs: every message of its templates has ru and ky translations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

WEB = Path(__file__).resolve().parents[1] / "probe" / "web"
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _messages() -> set[str | tuple[str, ...]]:
    method_map = [("**/templates/**.html", "jinja2"), ("**/templates/**.atom", "jinja2")]
    options = {"**/templates/**": {"extensions": "jinja2.ext.i18n"}}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(WEB), method_map=method_map, options_map=options
    ):
        found.add(message)
    return found


@pytest.mark.parametrize("lang", ["ru", "ky"])
def test_every_message_is_translated(lang):
    """If a template says a message, then the language's catalog translates it, keeping its placeholders."""
    path = WEB / "locale" / lang / "LC_MESSAGES" / "web.po"
    with open(path, "rb") as f:
        catalog = read_po(f, locale=lang)
    missing, broken = [], []
    for message in _messages():
        key = message[0] if isinstance(message, tuple) else message
        entry = catalog.get(key)
        if (
            entry is None
            or not entry.string
            or any(not s for s in entry.string if isinstance(entry.string, tuple))
        ):
            missing.append(key)
            continue
        wanted = set(_PLACEHOLDER.findall(key))
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        if any(set(_PLACEHOLDER.findall(s)) != wanted for s in strings):
            broken.append(key)
    assert not missing, missing
    assert not broken, broken
