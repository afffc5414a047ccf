"""Fingerprint loading, matching and downloading.

The download test runs a real HTTP server on 127.0.0.1 in a thread (nothing leaves
loopback).  OONI's own files are read from the shared data directory when present and
never copied into the repository: their licence is unknown.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from analysis.bundled import fingerprint_dir
from analysis.fingerprints import (
    COLUMNS,
    FingerprintError,
    download_fingerprints,
    load_fingerprints,
    parse_fingerprints,
)
from probe.records import HttpObservation

REPO = Path(__file__).resolve().parents[1]
OONI_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ooni-blocking-fingerprints"
HEADER = ",".join(COLUMNS)
ELCAT = '<p class="error">Access to the requested website has been blocked by judicial decision!</p>'
HOMELINE = "http://homeline.kg/access/blockpage.html"


def response(
    *, body: bytes = b"", headers: list[tuple[str, str]] | None = None, truncated: bool = False
) -> HttpObservation:
    return HttpObservation(
        "http/0",
        "http://news.kg/",
        "127.0.0.1",
        0.0,
        0.1,
        status_code=200,
        headers=headers or [],
        body_length=len(body),
        body_sample=body,
        body_truncated=truncated,
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- our own files ---------------------------------------------------------------------------


def test_default_set_is_our_own_files() -> None:
    """If no paths are given, then our own shipped fingerprint files are loaded with every row named."""
    fps = load_fingerprints()
    assert {"kuzot.kg_elcat", "kuzot.kg_homeline", "kuzot.lab_blockpage", "kuzot.lab_dns"} <= fps.names()
    assert fingerprint_dir() / "http.csv" in fps.sources


def test_elcat_body_matches() -> None:
    """If a page contains ElCat's sentence, then the ElCat fingerprint matches and confirms."""
    fp = load_fingerprints().match_http(response(body=f"<html><body>{ELCAT}</body></html>".encode()))
    assert fp is not None and fp.name == "kuzot.kg_elcat" and fp.confirms
    assert fp.expected_countries == ("KG",)


def test_elcat_body_in_legacy_charset_matches() -> None:
    """If the blockpage is served in windows-1251 with the charset declared, then the body still matches."""
    body = ("<p>Доступ ограничен</p>" + ELCAT).encode("cp1251")
    obs = response(body=body, headers=[("Content-Type", "text/html; charset=windows-1251")])
    fp = load_fingerprints().match_http(obs)
    assert fp is not None and fp.name == "kuzot.kg_elcat"


def test_homeline_location_matches_exactly() -> None:
    """If a redirect's Location is Homeline's blockpage, then the Homeline fingerprint matches; a longer URL does not."""
    fps = load_fingerprints()
    hit = fps.match_http(response(headers=[("location", HOMELINE)]))
    assert hit is not None and hit.name == "kuzot.kg_homeline"
    assert fps.match_http(response(headers=[("Location", HOMELINE + "?x=1")])) is None


def test_lab_markers_match() -> None:
    """If a page carries the lab marker or DNS answers the lab address, then the lab fingerprints match."""
    fps = load_fingerprints()
    page = fps.match_http(response(body=b"<!-- KUZOT-LAB-BLOCKPAGE -->"))
    assert page is not None and page.name == "kuzot.lab_blockpage" and page.scope == "lab"
    address = fps.match_dns("127.66.66.66")
    assert address is not None and address.name == "kuzot.lab_dns" and address.expected_countries == ("ZZ",)
    assert fps.match_dns("127.66.66.67") is None


def test_honest_page_matches_nothing() -> None:
    """If a page is an ordinary news page, then no fingerprint matches."""
    body = b"<html><title>24.kg news</title><p>Access to the archive is free.</p></html>"
    assert load_fingerprints().match_http(response(body=body, headers=[("Server", "nginx")])) is None


# --- loader errors --------------------------------------------------------------------------


def test_wrong_column_count_names_file_and_line(tmp_path: Path) -> None:
    """If a row has too few columns, then the error names the file and that row's line."""
    path = write(tmp_path, "bad.csv", f"{HEADER}\nok.1,isp,,dns,full,192.0.2.1,5,KG,me,,\nbad.2,isp,dns\n")
    with pytest.raises(FingerprintError, match=r"bad\.csv:3: expected 11 columns, found 3"):
        load_fingerprints([path])


def test_unknown_pattern_type_names_line(tmp_path: Path) -> None:
    """If a row has an unknown pattern_type, then the error names its line and the fingerprint."""
    path = write(tmp_path, "bad.csv", f"{HEADER}\nx.1,isp,,body,glob,*blocked*,5,,,,\n")
    with pytest.raises(FingerprintError, match=r"bad\.csv:2: pattern_type 'glob'.*x\.1"):
        load_fingerprints([path])


def test_bad_location_confidence_and_regexp_name_line(tmp_path: Path) -> None:
    """If location, confidence or regular expression is invalid, then each error names the line."""
    cases = {
        "x.1,isp,,cookie,contains,a,5,,,,": r":2: location_found 'cookie'",
        "x.1,isp,,body,contains,a,high,,,,": r":2: confidence_no_fp 'high'",
        "x.1,isp,,body,regexp,(unclosed,5,,,,": r":2: invalid regular expression",
        "x.1,isp,,body,contains,,5,,,,": r":2: empty pattern",
    }
    for row, message in cases.items():
        with pytest.raises(FingerprintError, match=message):
            parse_fingerprints(f"{HEADER}\n{row}\n", "case.csv")


def test_wrong_header_and_empty_file(tmp_path: Path) -> None:
    """If the header is wrong or the file is empty, then the error says so at line 1."""
    with pytest.raises(FingerprintError, match=r"h\.csv:1: the header must be"):
        load_fingerprints([write(tmp_path, "h.csv", "name,pattern\n")])
    with pytest.raises(FingerprintError, match=r"e\.csv:1: empty file"):
        load_fingerprints([write(tmp_path, "e.csv", "")])


def test_multiline_quoted_row_keeps_line_numbers(tmp_path: Path) -> None:
    """If a quoted pattern spans lines, then it parses and later errors still point at the right line."""
    text = f'{HEADER}\nx.1,isp,,body,contains,"two\nlines",5,,,,\nx.2,isp,,body\n'
    with pytest.raises(FingerprintError, match=r"m\.csv:4:"):
        load_fingerprints([write(tmp_path, "m.csv", text)])


def test_missing_file_and_non_utf8(tmp_path: Path) -> None:
    """If a file is missing or not UTF-8, then the error names it."""
    with pytest.raises(FingerprintError, match=r"nope\.csv: cannot read"):
        load_fingerprints([tmp_path / "nope.csv"])
    raw = tmp_path / "latin.csv"
    raw.write_bytes(f"{HEADER}\nx.1,isp,,body,contains,".encode() + b"caf\xe9,5,,,,\n")
    with pytest.raises(FingerprintError, match=r"latin\.csv:2: not UTF-8"):
        load_fingerprints([raw])


def test_scopes_rank_matches(tmp_path: Path) -> None:
    """If a page matches a vague word, a false-positive pattern and a real blockpage, then the real one is reported."""
    text = (
        f"{HEADER}\n"
        "f.1,fp,,body,contains,Service Unavailable,5,,,,\n"
        "v.1,vbw,,body,contains,Access denied,5,,,,\n"
        "r.1,isp,,body,regexp,blocked by .* decision,5,,,,\n"
    )
    fps = load_fingerprints([write(tmp_path, "s.csv", text)])
    both = fps.match_http(response(body=b"Access denied: Service Unavailable"))
    assert both is not None and both.name == "v.1" and not both.confirms
    only_fp = fps.match_http(response(body=b"503 Service Unavailable"))
    assert only_fp is not None and only_fp.is_false_positive
    real = fps.match_http(response(body=b"Access denied, blocked by court decision. Service Unavailable"))
    assert real is not None and real.name == "r.1" and real.confirms


def test_full_body_pattern_ignores_truncated_body(tmp_path: Path) -> None:
    """If a full-body pattern meets a truncated body, then it does not match (the rest is unknown)."""
    fps = load_fingerprints([write(tmp_path, "f.csv", f"{HEADER}\nb.1,isp,,body,full,<html></html>,5,,,,\n")])
    assert fps.match_http(response(body=b"<html></html>")) is not None
    assert fps.match_http(response(body=b"<html></html>", truncated=True)) is None


def test_directory_path_loads_its_csv_files(tmp_path: Path) -> None:
    """If a directory is given, then all its CSV files are loaded."""
    write(tmp_path, "a.csv", f"{HEADER}\nd.1,isp,,dns,full,::FFFF:192.0.2.7,5,,,,\n")
    write(tmp_path, "b.csv", f"{HEADER}\nh.1,isp,,header.server,prefix,FilterBox,5,,,,\n")
    fps = load_fingerprints([tmp_path])
    assert len(fps) == 2
    assert fps.match_dns("192.0.2.7") is not None
    assert fps.match_http(response(headers=[("Server", "FilterBox/2.1")])) is not None


# --- OONI's published files --------------------------------------------------------------------


@pytest.mark.skipif(not OONI_DATA.is_dir(), reason=f"OONI blocking-fingerprints not present at {OONI_DATA}")
def test_ooni_files_load_and_match_kyrgyz_entries() -> None:
    """If OONI's files are present, then they load and their Kyrgyz entries match ElCat and Homeline."""
    fps = load_fingerprints([OONI_DATA / "fingerprints_dns.csv", OONI_DATA / "fingerprints_http.csv"])
    assert len(fps.dns) > 100 and len(fps.http) > 1000
    homeline = fps.match_http(response(headers=[("Location", HOMELINE)]))
    assert homeline is not None and homeline.name == "ooni.kg_0"
    elcat = fps.match_http(response(body=f"<html>{ELCAT}</html>".encode()))
    assert elcat is not None and elcat.name == "cp.c_isp_kg_elcat"
    assert fps.match_dns("8.7.198.45") is not None  # a published poison address, as a DNS sanity check


# --- downloading from a local server ------------------------------------------------------------


class _Files(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        data = self.files.get(self.path)
        self.send_response(200 if data is not None else 404)
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()
        self.wfile.write(data or b"")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def file_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    files: ClassVar[dict[str, bytes]] = {}
    handler = type("Handler", (_Files,), {"files": files})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fp", files
    finally:
        server.shutdown()
        server.server_close()


def test_download_writes_both_files(tmp_path: Path, file_server: tuple[str, dict[str, bytes]]) -> None:
    """If the server has both valid files, then both are written and load as fingerprints."""
    base, files = file_server
    files["/fp/fingerprints_dns.csv"] = f"{HEADER}\nt.d,isp,,dns,full,192.0.2.9,5,,,,\n".encode()
    files["/fp/fingerprints_http.csv"] = f"{HEADER}\nt.h,isp,,body,contains,blocked!,5,,,,\n".encode()
    written = download_fingerprints(tmp_path / "fingerprints", base_url=base)
    assert [p.name for p in written] == ["fingerprints_dns.csv", "fingerprints_http.csv"]
    assert load_fingerprints(written).names() == {"t.d", "t.h"}


def test_download_with_given_client_keeps_it_open(
    tmp_path: Path, file_server: tuple[str, dict[str, bytes]]
) -> None:
    """If a client is passed, then it is used and left open for the caller."""
    base, files = file_server
    files["/fp/fingerprints_dns.csv"] = f"{HEADER}\n".encode()
    files["/fp/fingerprints_http.csv"] = f"{HEADER}\n".encode()
    with httpx.Client(trust_env=False) as client:
        download_fingerprints(tmp_path, client=client, base_url=base)
        assert not client.is_closed


def test_download_refuses_invalid_file_and_keeps_old_copy(
    tmp_path: Path, file_server: tuple[str, dict[str, bytes]]
) -> None:
    """If a downloaded file does not parse, then nothing is overwritten and the error names the URL and line."""
    base, files = file_server
    old = write(tmp_path, "fingerprints_dns.csv", f"{HEADER}\nold.d,isp,,dns,full,192.0.2.1,5,,,,\n")
    files["/fp/fingerprints_dns.csv"] = f"{HEADER}\nnew.d,isp,,dns,full,192.0.2.2,5,,,,\n".encode()
    files["/fp/fingerprints_http.csv"] = f"{HEADER}\nbroken,isp\n".encode()
    with pytest.raises(FingerprintError, match=r"fingerprints_http\.csv:2: expected 11 columns"):
        download_fingerprints(tmp_path, base_url=base)
    assert "old.d" in old.read_text(encoding="utf-8")
    assert not list(tmp_path.glob("*.tmp"))


def test_download_http_error_raises(tmp_path: Path, file_server: tuple[str, dict[str, bytes]]) -> None:
    """If the server answers 404, then an httpx error is raised and nothing is written."""
    base, _files = file_server
    with pytest.raises(httpx.HTTPStatusError):
        download_fingerprints(tmp_path / "out", base_url=base)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("override", [None, "moved-data"])
def test_download_dir_follows_the_volunteer_paths_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, override: str | None
) -> None:
    """If KUZOT_DATA_DIR is set or not, then analysis puts OONI's files where probe.volunteer.paths says.

    analysis may not import the volunteer layer, so it computes the directory itself;
    this keeps the two rules from drifting apart."""
    from analysis.fingerprints import user_fingerprint_dir
    from probe.volunteer.paths import DATA_DIR_ENV, fingerprints_dir

    if override is None:
        monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    else:
        monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / override))
    assert user_fingerprint_dir() == fingerprints_dir()
