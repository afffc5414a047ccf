"""Hostile files a volunteer or a journalist may be handed: a report bundle to verify,
a hand-edited config.toml.  Each gets a clear error naming the line or key, never a
traceback, and ``kuzot config set`` never writes a file it cannot read back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from probe.cli import main
from probe.volunteer.config import load_config
from tests.conftest import kuzot
from tests.test_store import make_measurement


def _bundle(directory: Path, lines: list[bytes]) -> Path:
    """A minimal report bundle: one evidence file and its sha256sum manifest."""
    evidence = directory / "evidence"
    evidence.mkdir(parents=True)
    (evidence / "measurements.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    digest = hashlib.sha256((evidence / "measurements.jsonl").read_bytes()).hexdigest()
    (evidence / "MANIFEST.sha256").write_text(f"{digest}  evidence/measurements.jsonl\n")
    return directory


def _honest_line() -> bytes:
    m = make_measurement()
    return json.dumps({"id": m.id, "record": m.to_dict(), "content_hash": m.content_hash()}).encode()


@pytest.mark.parametrize(
    ("hostile", "words"),
    [
        (b'{"id": "x", "record": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (b'{"id": "x", "record": {"id": "x", "n": ' + b"9" * 5000 + b"}}", "not readable JSON"),
        (b'{"id": "x", "record": {"id": "\\ud800"}, "content_hash": "00"}', "lone surrogate"),
        (b'{"id": "\\udfff", "record": {"id": "\\udfff"}}', "lone surrogate"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_verify_names_the_hostile_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hostile: bytes, words: str, as_json: bool
) -> None:
    """If an evidence line is deeply nested, holds a lone surrogate or a huge number, then verify says FAILED at file:line (and --json stays JSON)."""
    bundle = _bundle(tmp_path / "r", [_honest_line(), hostile, _honest_line()])
    status = main(["verify", str(bundle), *(["--json"] if as_json else [])])
    out = capsys.readouterr().out
    assert status == 1
    if as_json:
        data = json.loads(out)
        assert data["ok"] is False and data["measurements_checked"] >= 2
        assert any(p["line"] == 2 and words in p["message"] for p in data["problems"]), data["problems"]
    else:
        assert "evidence/measurements.jsonl:2:" in out and words in out
        assert "FAILED" in out


def test_verify_refuses_a_symlinked_manifest(tmp_path: Path) -> None:
    """If MANIFEST.sha256 is a symbolic link to a file outside the folder, then verify refuses it."""
    bundle = _bundle(tmp_path / "r", [_honest_line()])
    outside = tmp_path / "elsewhere.sha256"
    manifest = bundle / "evidence" / "MANIFEST.sha256"
    outside.write_bytes(manifest.read_bytes())
    manifest.unlink()
    manifest.symlink_to(outside)
    result = kuzot("verify", str(bundle), "--json")
    data = json.loads(result.stdout)
    assert result.returncode != 0 and data["ok"] is False
    assert any("symbolic link" in p["message"] for p in data["problems"])


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUZOT_CONFIG_DIR", str(tmp_path / "config"))
    (tmp_path / "config").mkdir()
    return tmp_path / "config"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'concurrency = 4\ntargets = "\xff\xfe"\n', "not UTF-8"),
        (b"max_bytes = " + b"9" * 5000 + b"\n", "config.toml"),
        (b"max_bytes = 99999999999999999999999999\n", "max_bytes"),
        (b"concurrency = {a = 1}\n", "concurrency must be"),
        (b"concurrency = 2.5\n", "concurrency must be"),
        (b'targets = ["a", "b"]\n', "targets must be"),
        (b"upload = 3\n", "upload must be"),
        (b"resolvers = [1, 2]\n", "resolvers must be"),
        (b"probe_asn = -5\n", "probe_asn"),
        (b'collector_url = "http://a\\u0000b/"\n', "collector_url"),
    ],
)
def test_hostile_config_is_one_line_naming_the_key(
    config_dir: Path, capsys: pytest.CaptureFixture[str], content: bytes, words: str
) -> None:
    """If config.toml is not UTF-8, holds a huge number or a wrong type, then every command says so in one line naming the key."""
    (config_dir / "config.toml").write_bytes(content)
    assert main(["config", "--json"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], lines


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("probe_asn", "-5"),
        ("probe_asn", "AS0"),
        ("probe_asn", "99999999999"),
        ("concurrency", "0"),
        ("concurrency", "²"),
        ("collector_url", "http://a\nb/"),
        ("targets", "list\x00.csv"),
        ("db", "sqlite:///x\x1b[31m.db"),
        ("resolvers", "1.1.1.1,\t\x7f"),
    ],
)
def test_config_set_refuses_what_would_not_read_back(
    config_dir: Path, capsys: pytest.CaptureFixture[str], key: str, value: str
) -> None:
    """If config set gets a value the options would refuse or one with control characters, then it refuses naming the key and writes nothing."""
    assert main(["config", "set", key, value]) == 2
    assert key in capsys.readouterr().err
    assert not (config_dir / "config.toml").exists()


def test_config_set_round_trips_awkward_text(config_dir: Path) -> None:
    """If a value holds quotes, backslashes and non-ASCII letters, then config set writes a file that reads back the same."""
    url = 'https://коллектор.example/"quoted"\\path'
    assert main(["config", "set", "collector_url", url]) == 0
    assert main(["config", "set", "probe_asn", "AS8449"]) == 0
    config = load_config()
    assert config.get("collector_url") == url and config.get("probe_asn") == 8449


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_malformed_ca_bundle_is_refused_before_the_run(tmp_path: Path, workers: str) -> None:
    """If --ca-bundle is not a PEM bundle, then `kuzot run` exits with status 2 and one
    line naming the file, and opens no database (with or without workers): it used to end
    in an ssl.SSLError traceback with a run row left behind as interrupted."""
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    db = tmp_path / "k.db"
    # 127.0.0.1 port 9 (discard): nothing is ever sent, the options are refused first.
    args = ["run", "--db", f"sqlite:///{db}", "--url", "https://127.0.0.1:9/", "--ca-bundle", str(bundle)]
    done = kuzot(*args, "--no-canaries", "--no-system-resolver", "--quiet", "--workers", workers)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"--ca-bundle {bundle}: not a PEM certificate bundle" in done.stderr
    assert not db.exists()  # refused with the options: no database, no run row


def test_the_control_helper_refuses_a_malformed_ca_bundle_at_start(tmp_path: Path) -> None:
    """If `kuzot control serve` is given a --ca-bundle that is not PEM, then it exits with
    status 2 and one line before it listens, instead of failing each request later."""
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(b"\x00\x01 not a certificate")
    done = kuzot("control", "serve", "--ca-bundle", str(bundle), timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"--ca-bundle {bundle}: not a PEM certificate bundle" in done.stderr
