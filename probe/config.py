"""The volunteer's settings: one TOML file in the config directory.

Precedence is the usual one, so nobody is surprised: a value given on the command line
wins over the file, which wins over the built-in default.  The file is flat
``key = value`` TOML, written by ``kuzot config set`` (atomically) and readable by hand.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.consent import config_dir


class ConfigError(ValueError):
    """A bad key or value; the message names the key and what is allowed."""


def _duration(text: str) -> str:
    if not re.fullmatch(r"\d+[mhd]", text):
        raise ValueError("a duration like 30m, 6h or 1d")
    return text


def _bool(text: str) -> bool:
    lowered = str(text).lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError("true or false")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("a whole number of at least 1")
    return value


def _asn(text: str) -> int:
    return int(str(text).upper().removeprefix("AS"))


def _cc(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z]{2}", text):
        raise ValueError("a two-letter country code")
    return text.upper()


def _choice(text: str, allowed: tuple[str, ...]) -> str:
    if text not in allowed:
        raise ValueError(" or ".join(allowed))
    return text


def _list(text: str) -> list[str]:
    return [item.strip() for item in str(text).split(",") if item.strip()]


#: key -> (default, parser from text, description)
SETTINGS: dict[str, tuple[Any, Any, str]] = {
    "targets": (None, str, "path of a test list (Citizen Lab format)"),
    "resolvers": ([], _list, "comma-separated DNS resolvers, IP[:PORT]"),
    "collector_url": (None, str, "collector to upload to"),
    "upload": (False, _bool, "upload after each measurement: true or false"),
    "schedule": ("6h", _duration, "how often scheduled runs happen: 30m, 6h, 1d"),
    "max_bytes": (None, _positive, "byte cap per run"),
    "max_bytes_per_day": (None, _positive, "byte cap per day"),
    "concurrency": (16, _positive, "targets measured at once"),
    "db": (None, str, "database URL"),
    "probe_asn": (None, _asn, "your network's AS number"),
    "probe_cc": ("KG", _cc, "your country code"),
    "language": ("en", lambda t: _choice(t, ("en", "ru", "ky")), "en, ru or ky"),
}


def parse_value(key: str, text: str) -> Any:
    if key not in SETTINGS:
        raise ConfigError(f"unknown setting {key!r}; known: {', '.join(SETTINGS)}")
    try:
        return SETTINGS[key][1](text)
    except ValueError as exc:
        raise ConfigError(f"{key}: {text!r} is not valid ({exc or SETTINGS[key][2]})") from None


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


def load_config(directory: Path | None = None) -> Config:
    path = config_path(directory)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Config(path)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix it or delete it") from None
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in SETTINGS:
            raise ConfigError(f"{path}: unknown setting {key!r}")
        values[key] = parse_value(key, ",".join(value) if isinstance(value, list) else str(value))
    return Config(path, values)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def save_config(config: Config) -> None:
    config.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = "# Kuzot settings (kuzot config set KEY VALUE)\n"
    text += "".join(f"{key} = {_toml(config.values[key])}\n" for key in SETTINGS if key in config.values)
    fd, tmp = tempfile.mkstemp(dir=config.path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, config.path)
