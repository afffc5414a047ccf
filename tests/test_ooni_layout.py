"""What OONI's archive keys say, which prefixes a sync lists, the bandwidth cap, and the old lz4 cans."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from probe.ooni_archive import s3
from probe.ooni_archive.importer import Importer
from probe.ooni_archive.layout import BUCKET, LEGACY_BUCKET, parse_key, prefixes, wanted
from probe.store import Store
from tests.test_ooni_format import ooni_line


def test_keys_of_every_layout_are_read() -> None:
    """If keys of the hourly, postcan and canned layouts are parsed, then each gives its hour, country, test and kind."""
    raw = parse_key(BUCKET, "raw/20231031/15/KG/webconnectivity/2023103115_KG_webconnectivity.n1.0.jsonl.gz", 9, '"e"')
    assert raw is not None and raw.hour == datetime(2023, 10, 31, 15, tzinfo=UTC)
    assert (raw.probe_cc, raw.test, raw.ext, raw.etag) == ("KG", "webconnectivity", "jsonl.gz", "e")
    can = parse_key(LEGACY_BUCKET, "canned/2019-11-18/web_connectivity.0.tar.lz4", 9, "e")
    assert can is not None and can.probe_cc is None and can.test == "webconnectivity" and can.is_can
    report = parse_key(
        LEGACY_BUCKET,
        "canned/2019-11-18/20191118T063538Z-KG-AS8449-web_connectivity-20191118T063540Z_AS8449_x-0.2.0-probe.json.lz4",
        9,
        "e",
    )
    assert report is not None and report.probe_cc == "KG" and report.ext == "json.lz4"
    assert parse_key(BUCKET, "canned/2019-11-18/index.json.gz", 1, "e") is None
    assert parse_key(BUCKET, "raw/20231031/15/KG/webconnectivity/README", 1, "e") is None


def test_prefixes_cover_both_layouts_per_hour() -> None:
    """If a period spans 2020-10-21, then the days before list the jsonl/ tree and the days after each hour of raw/."""
    found = prefixes(["KG"], ["web_connectivity"], date(2020, 10, 20), date(2020, 10, 22))
    assert found[0].prefix == "jsonl/webconnectivity/KG/20201020/"
    assert [p.prefix for p in found[1:3]] == [
        "raw/20201021/00/KG/webconnectivity/",
        "raw/20201021/01/KG/webconnectivity/",
    ]
    assert len(found) == 1 + 24
    cans = prefixes(["KG"], ["web_connectivity"], date(2020, 6, 1), date(2020, 6, 3), cans=True)
    assert [(p.bucket, p.prefix) for p in cans] == [
        (LEGACY_BUCKET, "canned/2020-06-01/"),
        (BUCKET, "canned/2020-06-02/"),
    ]


def test_postcans_are_skipped_when_the_hour_has_json_lines() -> None:
    """If an hour has both a .jsonl.gz and a .tar.gz, then only the JSON Lines file is wanted."""
    base = "raw/20231031/15/KG/webconnectivity/2023103115_KG_webconnectivity.n1.0"
    entries = [parse_key(BUCKET, base + ext, 1, "e") for ext in (".jsonl.gz", ".tar.gz")]
    only_can = parse_key(BUCKET, base.replace("/15/", "/16/").replace("15_KG", "16_KG") + ".tar.gz", 1, "e")
    chosen = wanted([e for e in [*entries, only_can] if e], ["KG"], ["web_connectivity"])
    assert [e.ext for e in chosen] == ["jsonl.gz", "tar.gz"] and chosen[1].hour.hour == 16


def test_rate_limit_sleeps_to_hold_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """If 3 MB pass a 1 MB/s cap at once, then the limiter waits about 3 s in all."""
    now = [0.0]
    slept: list[float] = []
    monkeypatch.setattr(s3.time, "sleep", lambda x: (slept.append(x), now.__setitem__(0, now[0] + x)))
    limit = s3.RateLimit(1_000_000, clock=lambda: now[0])
    for _ in range(3):
        limit.take(1_000_000)
    assert sum(slept) == pytest.approx(3.0)
    assert s3.RateLimit(None).take(10**9) is None


def test_missing_boto3_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """If boto3 is not installed, then making a client says which extra to install."""
    import builtins

    real = builtins.__import__

    def fake(name: str, *args, **kw):
        if name.startswith(("boto3", "botocore")):
            raise ImportError(name)
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(s3.ArchiveError, match=r"kuzot\[ooni\]"):
        s3.make_client()


def test_an_old_json_lz4_can_imports(tmp_path: Path) -> None:
    """If a report can is a .json.lz4 of measurements, then they import like JSON Lines."""
    lz4_frame = pytest.importorskip("lz4.frame")
    path = tmp_path / "20221027T060100Z-KG-AS8449-web_connectivity-x-0.2.0-probe.json.lz4"
    path.write_bytes(lz4_frame.compress((json.dumps(ooni_line()) + "\n").encode()))
    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        with Importer(store, workers=1) as importer:
            outcome = importer.import_file(path)
    finally:
        store.close()
    assert outcome.stored == 1 and outcome.error is None
