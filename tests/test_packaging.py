"""How Kuzot is packaged: pyproject's package data, the licence, the Docker image."""

from __future__ import annotations

import re
import tomllib

import pytest

from probe.volunteer.container_health import health_url
from tests.conftest import REPO


def test_every_package_data_pattern_matches_a_real_file() -> None:
    """If pyproject lists package data, then every pattern names at least one file that exists."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = config["tool"]["setuptools"]["package-data"]
    empty = [
        f"{package}: {pattern}"
        for package, patterns in package_data.items()
        for pattern in patterns
        if not any(p.is_file() for p in (REPO / package).glob(pattern))
    ]
    assert empty == []


def test_licence_file_is_the_gpl_3_named_in_pyproject() -> None:
    """If the project says GPL-3.0-or-later, then LICENSE holds the GPL version 3 text and the wheel ships it."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert config["project"]["license"] == "GPL-3.0-or-later"
    assert config["project"]["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 3, 29 June 2007" in text
    assert "END OF TERMS AND CONDITIONS" in text


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def test_docker_image_installs_the_wheel_as_a_non_root_user() -> None:
    """If the Dockerfile is read, then it builds a wheel in one stage, installs it non-editable in another, runs as a non-root user and has a health check."""
    steps = _instructions((REPO / "Dockerfile").read_text(encoding="utf-8"))
    froms = [rest for word, rest in steps if word == "FROM"]
    assert len(froms) >= 2 and " AS " in froms[0].upper()
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert "pip wheel" in runs and "pip install" in runs
    assert not re.search(r"pip install[^;&]*\s-e\s", runs), "no editable install"
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(word == "HEALTHCHECK" and "probe.volunteer.container_health" in rest for word, rest in steps)
    assert ("ENTRYPOINT", '["kuzot"]') in steps
    copied = [rest for word, rest in steps if word == "COPY"]
    assert not any("targets" in c for c in copied), "data ships inside the wheel"


@pytest.mark.parametrize(
    ("argv", "url"),
    [
        (["/usr/local/bin/python", "/usr/local/bin/kuzot", "serve", "--db", "x", "--listen", "0.0.0.0:8080"],
         "http://127.0.0.1:8080/api/v1/health"),
        (["/usr/local/bin/python", "/usr/local/bin/kuzot", "serve"], "http://127.0.0.1:8080/api/v1/health"),
        (["python", "-m", "probe", "control", "serve", "--listen=[::]:9000"], "http://[::1]:9000/api/v1/health"),
        (["/usr/local/bin/python", "/usr/local/bin/kuzot", "run", "--url", "serve"], None),
        (["/usr/local/bin/python", "/usr/local/bin/kuzot", "control"], None),
        (["/bin/sh"], None),
    ],
)  # fmt: skip
def test_container_health_check_asks_only_servers(argv: list[str], url: str | None) -> None:
    """If the container runs a server, then the health check asks its /api/v1/health on loopback; otherwise nothing."""
    assert health_url(argv) == url
