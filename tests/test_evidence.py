"""The evidence bundle and `kuzot verify`, on measurements the real probe took and signed."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

import analysis.evidence as evidence
import probe.verify
from analysis.evidence import EvidenceError, write_evidence, write_manifest
from probe.records import canonical_json
from probe.signing import content_hash_of
from probe.store.record_codec import decode_record
from probe.verify import verify_report
from tests.conftest import kuzot

JSONL = "evidence/measurements.jsonl"


def _stored(db: str) -> list[tuple]:
    """(id, started_at, record) for every measurement, straight from SQLite."""
    with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
        rows = conn.execute("SELECT id, started_at, record FROM measurements").fetchall()
    return [(mid, at, decode_record(record)) for mid, at, record in rows]


def _make_report(db: str, out: Path) -> list[str]:
    """What `kuzot report` produces, in miniature: pages, a chart, evidence, manifest last."""
    ids = [row[0] for row in _stored(db)]
    (out / "charts").mkdir(parents=True)
    (out / "index.html").write_text("<h1>Blocking in Kyrgyzstan</h1>\n", encoding="utf-8")
    (out / "citation.txt").write_text("Kuzot measurements, AS64500, 2024.\n", encoding="utf-8")
    (out / "charts" / "timeline.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    write_evidence(db, ids, out)
    write_manifest(out)
    return ids


@pytest.fixture
def report(matrix_run: dict, tmp_path: Path) -> Path:
    out = tmp_path / "report"
    _make_report(matrix_run["db"], out)
    return out


def _lines(report: Path) -> list[bytes]:
    return (report / JSONL).read_bytes().splitlines(keepends=True)


def _line_of(report: Path, number: int) -> dict:
    return json.loads(_lines(report)[number - 1])


def _rewrite_line(report: Path, number: int, new: bytes) -> None:
    lines = _lines(report)
    lines[number - 1] = new
    (report / JSONL).write_bytes(b"".join(lines))


def test_evidence_lines_hold_the_stored_record_byte_for_byte(matrix_run: dict, report: Path) -> None:
    """If evidence is written, then each line has the envelope fields and the stored record verbatim, sorted by (started_at, id)."""
    stored = _stored(matrix_run["db"])
    lines = _lines(report)
    assert len(lines) == len(stored) > 5
    assert [json.loads(line)["id"] for line in lines] == [
        mid for _, mid in sorted((s, i) for i, s, _ in stored)
    ]
    records = {mid: record for mid, _, record in stored}
    for line in lines:
        entry = json.loads(line)
        assert list(entry) == ["id", "source", "content_hash", "signature", "key_id", "public_key", "record"]
        spliced = line[line.index(b',"record":') + len(b',"record":') : -2]
        assert spliced == records[entry["id"]].encode() == canonical_json(entry["record"])
        assert content_hash_of(entry["record"]) == entry["content_hash"]
        assert entry["signature"] and entry["source"] == "kuzot"


def test_manifest_is_sha256sum_format_and_sha256sum_accepts_it(report: Path) -> None:
    """If the manifest is untouched, then it lists every other file, sorted, and `sha256sum -c` accepts it."""
    manifest = (report / "evidence" / "MANIFEST.sha256").read_text()
    paths = [line.split("  ", 1)[1] for line in manifest.splitlines()]
    assert paths == ["charts/timeline.png", "citation.txt", JSONL, "index.html"]
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum not installed")
    check = subprocess.run(
        ["sha256sum", "-c", "evidence/MANIFEST.sha256"], cwd=report, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == 4


def test_untouched_report_verifies(report: Path) -> None:
    """If nothing changed, then `kuzot verify` exits 0 with one OK line, and --json says ok with the counts."""
    n = len(_lines(report))
    result = kuzot("verify", str(report))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"OK: 4 files, {n} measurements, {n} signatures verified (0 unsigned)\n"
    data = json.loads(kuzot("verify", str(report), "--json").stdout)
    assert data["ok"] is True and data["problems"] == []
    assert (data["files_checked"], data["measurements_checked"], data["signatures_checked"]) == (4, n, n)


def test_one_changed_byte_names_the_file_line_and_measurement(report: Path) -> None:
    """If one byte of one record changes, then verify names the evidence file's manifest mismatch and that line's measurement (hash and signature), nothing else."""
    number = 3
    line = _lines(report)[number - 1]
    mid = json.loads(line)["id"]
    at = line.index(b'"probe_asn":64500', line.index(b',"record":')) + len(b'"probe_asn":6450')
    _rewrite_line(report, number, line[:at] + b"1" + line[at + 1 :])

    result = kuzot("verify", str(report))
    assert result.returncode == 1
    out = result.stdout.splitlines()
    assert any(p.startswith(f"{JSONL}: changed since the manifest was written") for p in out), out
    assert any(p.startswith(f"{JSONL}:{number}: measurement {mid}: content hash") for p in out), out
    assert f"{JSONL}:{number}: measurement {mid}: signature does not match the content hash" in out
    assert out[-1].startswith("FAILED: 3 problem(s)")

    problems = verify_report(report).problems
    assert {(p.path, p.line, p.measurement_id) for p in problems} == {
        (JSONL, None, None),
        (JSONL, number, mid),
    }


def test_a_swapped_signature_is_caught_even_after_the_manifest_is_remade(report: Path) -> None:
    """If a line's signature is replaced by another real one and the manifest rewritten, then verify names that measurement's signature alone."""
    victim, donor = _line_of(report, 2), _line_of(report, 5)
    forged = {**victim, "signature": donor["signature"]}
    _rewrite_line(report, 2, json.dumps(forged, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
    write_manifest(report)  # whoever forges can also recompute plain hashes

    result = kuzot("verify", str(report))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{JSONL}:2: measurement {victim['id']}: signature does not match the content hash",
        f"FAILED: 1 problem(s); checked 4 files, {len(_lines(report))} measurements, "
        f"{len(_lines(report))} signatures (0 unsigned)",
    ]


def test_deleted_and_extra_files_are_named(report: Path) -> None:
    """If a listed file is deleted and an unlisted one added, then verify names both."""
    (report / "charts" / "timeline.png").unlink()
    (report / "charts" / "extra.png").write_bytes(b"not in the manifest")
    result = kuzot("verify", str(report))
    assert result.returncode == 1
    out = result.stdout.splitlines()
    assert "charts/timeline.png: listed in the manifest but missing" in out
    assert any(p.startswith("charts/extra.png: not listed in the manifest") for p in out), out
    assert len(out) == 3


def test_missing_manifest_or_directory_exits_2_with_a_clear_message(report: Path, tmp_path: Path) -> None:
    """If the manifest or the directory is missing, then verify exits 2 and says so on stderr."""
    (report / "evidence" / "MANIFEST.sha256").unlink()
    result = kuzot("verify", str(report))
    assert result.returncode == 2 and result.stdout == ""
    assert (
        result.stderr
        == f"kuzot verify: {report}: no evidence/MANIFEST.sha256, so nothing can be checked (is this a directory written by kuzot report?)\n"
    )
    data = json.loads(kuzot("verify", str(report), "--json").stdout)
    assert data["ok"] is False and data["manifest_found"] is False
    gone = kuzot("verify", str(tmp_path / "nowhere"))
    assert gone.returncode == 2 and "no such directory" in gone.stderr


def test_malformed_lines_are_named_and_do_not_stop_the_check(report: Path) -> None:
    """If evidence and manifest lines are garbage, ambiguous or mismatched, then each is named by line and the rest still checked."""
    entry = _line_of(report, 4)
    _rewrite_line(report, 1, b'{"id": "x", "record": {\n')
    wrong_id = {**entry, "record": {**entry["record"], "id": "someone-else"}}
    _rewrite_line(report, 4, json.dumps(wrong_id).encode() + b"\n")
    line6 = _lines(report)[5]
    _rewrite_line(report, 6, line6[:-3] + b',"id":"dup"}}\n')  # a key twice in the record
    write_manifest(report)
    manifest = report / "evidence" / "MANIFEST.sha256"
    manifest.write_text(manifest.read_text() + "nonsense\n" + "0" * 64 + "  ../outside.txt\n")

    result = verify_report(report)
    by_line: dict[tuple, str] = {}
    for p in result.problems:
        by_line[(p.path, p.line)] = by_line.get((p.path, p.line), "") + f"{p.measurement_id}: {p.message}\n"
    assert "not valid JSON" in by_line[(JSONL, 1)]
    assert f"{entry['id']}: the record's own id is 'someone-else'" in by_line[(JSONL, 4)]
    assert "key 'id' appears twice" in by_line[(JSONL, 6)]
    assert "not a sha256sum line" in by_line[("evidence/MANIFEST.sha256", 5)]
    assert "outside the report directory" in by_line[("evidence/MANIFEST.sha256", 6)]
    assert result.files_checked == 4 and result.measurements_checked == len(_lines(report)) - 2


def test_unsigned_measurements_are_counted_not_failed(report: Path) -> None:
    """If a line carries no signature (e.g. imported data), then it is hash-checked and counted as unsigned."""
    entry = {**_line_of(report, 1), "signature": None, "key_id": None, "public_key": None}
    _rewrite_line(report, 1, json.dumps(entry).encode() + b"\n")
    write_manifest(report)
    result = verify_report(report)
    assert result.ok, result.problems
    assert result.unsigned == 1 and result.signatures_checked == result.measurements_checked - 1


def test_chunked_reads_give_the_same_file(
    matrix_run: dict, report: Path, tmp_path: Path, monkeypatch
) -> None:
    """If ids are read two at a time, then the evidence file is byte-identical (sorting spans chunks)."""
    monkeypatch.setattr(evidence, "CHUNK", 2)
    ids = [row[0] for row in _stored(matrix_run["db"])]
    path = write_evidence(matrix_run["db"], reversed(ids + ids[:3]), tmp_path / "again")
    assert path.read_bytes() == (report / JSONL).read_bytes()


def test_unknown_ids_are_refused_and_no_file_is_left(matrix_run: dict, tmp_path: Path) -> None:
    """If a cited measurement is not in the database, then write_evidence names it and writes nothing."""
    with pytest.raises(EvidenceError, match="not-a-measurement"):
        write_evidence(matrix_run["db"], ["not-a-measurement"], tmp_path)
    assert list((tmp_path / "evidence").iterdir()) == []
    for bad in ("notes.json", "../x.jsonl", ".hidden.jsonl"):
        with pytest.raises(EvidenceError, match="plain file name"):
            write_evidence(matrix_run["db"], [], tmp_path, name=bad)


def test_probe_and_analysis_agree_on_the_layout() -> None:
    """If either side moves the evidence directory or manifest, then this fails (they cannot import each other)."""
    assert (evidence.EVIDENCE_DIR, evidence.MANIFEST_NAME) == (
        probe.verify.EVIDENCE_DIR,
        probe.verify.MANIFEST_NAME,
    )


def test_the_by_hand_recipe_in_docs_checks_hash_and_signature(report: Path, tmp_path: Path) -> None:
    """If a reader follows docs/evidence.md with awk, sha256sum, jq and OpenSSL, then line 1's hash and signature check out."""
    if not all(shutil.which(tool) for tool in ("awk", "sha256sum", "jq", "openssl", "base64")):
        pytest.skip("needs awk, sha256sum, jq, openssl and base64")
    script = r"""
set -eu
f=evidence/measurements.jsonl; n=1; w="$1"
LC_ALL=C awk -v n=$n 'NR==n { i = index($0, ",\"record\":"); printf "%s", substr($0, i + 10, length($0) - i - 10) }' $f | sha256sum | cut -d' ' -f1
hash=$(sed -n "${n}p" $f | jq -r .content_hash)
printf 'kuzot-measurement-v1:%s' "$hash" > "$w/signed.bin"
sed -n "${n}p" $f | jq -r .signature | base64 -d > "$w/signature.bin"
key=$(sed -n "${n}p" $f | jq -r .public_key)
printf -- '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA%s\n-----END PUBLIC KEY-----\n' "$key" > "$w/key.pem"
openssl pkeyutl -verify -pubin -inkey "$w/key.pem" -rawin -in "$w/signed.bin" -sigfile "$w/signature.bin"
"""
    done = subprocess.run(
        ["sh", "-c", script, "sh", str(tmp_path)], cwd=report, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        _line_of(report, 1)["content_hash"],
        "Signature Verified Successfully",
    ]
