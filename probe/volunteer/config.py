"""The volunteer's settings: one TOML file in the config directory.

Precedence is the usual one, so nobody is surprised: a value given on the command line
wins over the file, which wins over the built-in default.  The file is flat
``key = value`` TOML, written by ``kuzot config set`` (atomically) and readable by hand.

A hand-edited file may be anything: not UTF-8, not TOML, a 5,000-digit number, a
table where a number belongs.  Each is one line naming the key (:class:`ConfigError`),
never a traceback; and ``config set`` checks values exactly as the command-line
options do, and never writes a file it cannot read back.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.errors import InputError
from probe.i18n import N_
from probe.i18n import gettext as _
from probe.volunteer.paths import config_dir


class ConfigError(InputError, ValueError):
    """A bad key or value; the message names the key and what is allowed."""


def _duration(text: str) -> str:
    if not re.fullmatch(r"\d+[mhd]", text):
        raise ValueError(_("a duration like 30m, 6h or 1d"))
    return text


def _bool(text: str) -> bool:
    lowered = str(text).lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError(_("true or false"))


def _whole(text: str) -> int:
    cleaned = str(text).strip()
    if not (cleaned.isascii() and cleaned.isdigit()) or len(cleaned) > 18:
        raise ValueError(_("a whole number"))
    return int(cleaned)


def _positive(text: str) -> int:
    try:
        value = _whole(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(_("a whole number of at least 1"))
    return value


def _asn(text: str) -> int:
    cleaned = str(text).strip().upper().removeprefix("AS")
    if not (cleaned.isascii() and cleaned.isdigit()) or not 0 < int(cleaned[:12]) < 2**32:
        raise ValueError(_("an AS number from 1 to 4294967295, as 12345 or AS12345"))
    return int(cleaned)


def _text(text: str) -> str:
    """Free text (a path, a URL): printable, so the file always reads back."""
    value = str(text)
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError(_("text without control characters"))
    return value


def _cc(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z]{2}", text):
        raise ValueError(_("a two-letter country code"))
    return text.upper()


def _choice(text: str, allowed: tuple[str, ...]) -> str:
    if text not in allowed:
        raise ValueError(_either(allowed))
    return text


def _either(choices: tuple[str, ...] | list[str]) -> str:
    """``a or b or c``, each "or" from the catalog (one message, so a translator words it)."""
    text = choices[0]
    for choice in choices[1:]:
        text = _("{first} or {second}").format(first=text, second=choice)
    return text


def _list(text: str) -> list[str]:
    return [_text(item.strip()) for item in str(text).split(",") if item.strip()]


#: key -> (default, parser from text, description); the description stays English in
#: ``kuzot config`` output (scripts read it) and is translated in error messages.
SETTINGS: dict[str, tuple[Any, Any, str]] = {
    "targets": (None, _text, N_("path of a test list (Citizen Lab format)")),
    "resolvers": ([], _list, N_("comma-separated DNS resolvers, IP[:PORT]")),
    "collector_url": (None, _text, N_("collector to upload to")),
    "upload": (False, _bool, N_("upload after each measurement: true or false")),
    "schedule": ("6h", _duration, N_("how often scheduled runs happen: 30m, 6h, 1d")),
    "max_bytes": (None, _positive, N_("byte cap per run")),
    "max_bytes_per_day": (None, _positive, N_("byte cap per day")),
    "concurrency": (16, _positive, N_("targets measured at once")),
    "db": (None, _text, N_("database URL")),
    "probe_asn": (None, _asn, N_("your network's AS number")),
    "probe_cc": ("KG", _cc, N_("your country code")),
    "language": ("en", lambda t: _choice(t, ("en", "ru", "ky")), N_("en, ru or ky")),
}


def parse_value(key: str, text: str) -> Any:
    if key not in SETTINGS:
        raise ConfigError(
            _("unknown setting {key}; known: {known}").format(key=repr(key), known=", ".join(SETTINGS))
        )
    try:
        return SETTINGS[key][1](text)
    except ValueError as exc:
        raise ConfigError(
            _("{key}: {value} is not valid ({why})").format(
                key=key, value=repr(text), why=exc or _(SETTINGS[key][2])
            )
        ) from None


@dataclass
class Config:
    path: Path
    values: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        return self.values.get(key, SETTINGS[key][0])

    def source(self, key: str) -> str:
        return "file" if key in self.values else "default"

    def merged_with(self, cli: dict[str, Any]) -> dict[str, Any]:
        """Every setting: the command line's value when given, else the file's, else the default."""
        merged = {key: self.get(key) for key in SETTINGS}
        for key, value in cli.items():
            if value is not None and value != []:
                merged[key] = value
        return merged


def config_path(directory: Path | None = None) -> Path:
    return (directory or config_dir()) / "config.toml"


#: TOML types each setting may be written as (by hand or by ``config set``).
_TOML_TYPES: dict[str, tuple[type, ...]] = {
    "resolvers": (list, str),
    "upload": (bool, str),
    "max_bytes": (int, str),
    "max_bytes_per_day": (int, str),
    "concurrency": (int, str),
    "probe_asn": (int, str),
}

_TOML_NAMES = {str: N_("a string"), int: N_("a number"), bool: N_("true or false"), list: N_("a list"),
               float: N_("a number"), dict: N_("a table")}


def _toml_name(value: Any) -> str:
    name = _TOML_NAMES.get(type(value))
    return _(name) if name else type(value).__name__


def load_config(directory: Path | None = None) -> Config:
    path = config_path(directory)
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return Config(path)
    except OSError as exc:
        raise ConfigError(
            _("{path}: cannot be read ({reason})").format(path=path, reason=exc.strerror or exc)
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            _("{path}: not UTF-8 text (byte {byte}); fix it or delete it").format(path=path, byte=exc.start)
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            _("{path}: not valid TOML ({error}); fix it or delete it").format(path=path, error=exc)
        ) from None
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits, say
        raise ConfigError(
            _("{path}: not readable ({error}); fix it or delete it").format(path=path, error=str(exc)[:100])
        ) from None
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in SETTINGS:
            raise ConfigError(_("{path}: unknown setting {key}").format(path=path, key=repr(key)))
        allowed = _TOML_TYPES.get(key, (str,))
        if type(value) not in allowed or (
            isinstance(value, list) and not all(isinstance(item, str) for item in value)
        ):
            wanted = _either([_(_TOML_NAMES[t]) for t in allowed])
            raise ConfigError(
                _("{path}: {key} must be {wanted}, not {got} ({meaning})").format(
                    path=path, key=key, wanted=wanted, got=_toml_name(value), meaning=_(SETTINGS[key][2])
                )
            )
        text = ",".join(value) if isinstance(value, list) else str(value)
        try:
            values[key] = parse_value(key, text)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return Config(path, values)


def save_config(config: Config) -> None:
    """Write the file atomically, after checking that it reads back to the same values."""
    import tomli_w

    ordered = {key: config.values[key] for key in SETTINGS if key in config.values}
    text = "# Kuzot settings (kuzot config set KEY VALUE)\n" + tomli_w.dumps(ordered)
    try:
        again = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError):
        again = None
    if again != ordered:
        raise ConfigError(_("these settings would not read back from config.toml; nothing was written"))
    config.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=config.path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, config.path)
