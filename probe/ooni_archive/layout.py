"""Where OONI keeps its raw measurements, and what an object's key says about it.

Why a module of its own: the bucket layout is a fact about OONI's archive, not about
downloading, and it changed twice over the years.  These facts are the ones OONI's own
``oonidata`` client relies on:

- bucket ``ooni-data-eu-fra``, ``raw/YYYYMMDD/HH/CC/<test>/YYYYMMDDHH_CC_<test>.nN.I.jsonl.gz``:
  one gzipped JSON Lines file per hour, country and test (from 2020-10-21 on; ``<test>``
  is the test name without underscores, ``webconnectivity``).  The same hour is also
  published as a ``.tar.gz`` "postcan" (one ``.post`` file per measurement); the
  JSON Lines file is the one we read, the postcan is only read when that is all there is.
- bucket ``ooni-data-eu-fra``, ``jsonl/<test>/CC/YYYYMMDD/...jsonl.gz``: the reprocessed
  JSON Lines of the years before 2020-10-21.
- the older "canned" archives, ``canned/YYYY-MM-DD/``: ``<test>.N.tar.lz4`` (no
  country in the name) and per-report ``...-CC-ASN-<test>-....json.lz4``, in the legacy
  bucket ``ooni-data`` up to 2020-06-01 and in ``ooni-data-eu-fra`` from 2020-06-02
  to 2020-10-21.  Read only with ``--cans``, and only when the ``lz4`` package is there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

BUCKET = "ooni-data-eu-fra"
LEGACY_BUCKET = "ooni-data"
#: The first day of the hourly ``raw/`` layout.
RAW_SINCE = date(2020, 10, 21)
#: The canned archives in the new bucket start here (before: the legacy bucket).
NEW_CANS_SINCE = date(2020, 6, 2)
FIRST_CAN = date(2012, 12, 5)

#: File kinds we can read, longest suffix first.
EXTENSIONS = ("jsonl.gz", "tar.gz", "json.lz4", "tar.lz4", "jsonl", "json")


def test_dir_name(test_name: str) -> str:
    """``web_connectivity`` -> ``webconnectivity``, as the archive names its folders."""
    return test_name.lower().replace("_", "")


def extension(name: str) -> str | None:
    for ext in EXTENSIONS:
        if name.endswith("." + ext):
            return ext
    return None


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One object in the archive, as listed, with what its key tells."""

    bucket: str
    key: str
    size: int
    etag: str
    hour: datetime
    probe_cc: str | None
    test: str
    ext: str

    @property
    def is_can(self) -> bool:
        return self.ext in ("tar.gz", "tar.lz4", "json.lz4")

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def _hour(stamp: str) -> datetime:
    if len(stamp) == 8:  # some older names have the day only
        stamp += "00"
    return datetime.strptime(stamp, "%Y%m%d%H").replace(tzinfo=UTC)


def parse_key(bucket: str, key: str, size: int, etag: str) -> ArchiveFile | None:
    """What a key says (time, country, test, kind); ``None`` for keys we do not read
    (index files, unknown kinds, names that do not follow the layout)."""
    name = key.rsplit("/", 1)[-1]
    ext = extension(name)
    if ext is None or ext == "json.gz":
        return None
    etag = etag.strip('"')
    try:
        if key.startswith("canned/"):
            day = datetime.strptime(key.split("/")[1], "%Y-%m-%d").replace(tzinfo=UTC)
            if ext == "tar.lz4":
                return ArchiveFile(bucket, key, size, etag, day, None, test_dir_name(name.split(".")[0]), ext)
            parts = name.split("-")
            if ext == "json.lz4" and len(parts) > 3:
                return ArchiveFile(
                    bucket, key, size, etag, day, parts[1].upper(), test_dir_name(parts[3]), ext
                )
            return None
        parts = name.split("_")
        if len(parts) < 3:
            return None
        return ArchiveFile(
            bucket, key, size, etag, _hour(parts[0]), parts[1].upper(), parts[2].split(".")[0].lower(), ext
        )
    except ValueError:
        return None


def days(since: date, until: date) -> Iterator[date]:
    """Every day from ``since`` up to, not including, ``until``."""
    day = since
    while day < until:
        yield day
        day += timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Prefix:
    bucket: str
    prefix: str


def prefixes(
    ccs: list[str], tests: list[str], since: date, until: date, *, cans: bool = False
) -> list[Prefix]:
    """The listing prefixes that cover the period for these countries and tests.

    Hourly prefixes (``raw/DAY/HH/CC/TEST/``) keep listings small: a day of the whole
    world's ``raw/DAY/`` holds tens of thousands of objects, one country's hour a few.
    """
    out: list[Prefix] = []
    dirs = [test_dir_name(t) for t in tests]
    if cans:
        for day in days(max(since, FIRST_CAN), min(until, RAW_SINCE)):
            bucket = BUCKET if day >= NEW_CANS_SINCE else LEGACY_BUCKET
            out.append(Prefix(bucket, f"canned/{day:%Y-%m-%d}/"))
    else:
        for day in days(since, min(until, RAW_SINCE)):
            for test in dirs:
                for cc in ccs:
                    out.append(Prefix(BUCKET, f"jsonl/{test}/{cc}/{day:%Y%m%d}/"))
    for day in days(max(since, RAW_SINCE), until):
        for hour in range(24):
            for cc in ccs:
                for test in dirs:
                    out.append(Prefix(BUCKET, f"raw/{day:%Y%m%d}/{hour:02d}/{cc}/{test}/"))
    return out


def wanted(entries: list[ArchiveFile], ccs: list[str], tests: list[str]) -> list[ArchiveFile]:
    """The files to fetch: matching country and test, and for each hour the JSON Lines
    files rather than the postcans that repeat them."""
    dirs = {test_dir_name(t) for t in tests}
    cc_set = {c.upper() for c in ccs}
    matching = [
        e
        for e in entries
        if (e.test in dirs or not dirs) and (e.probe_cc is None or not cc_set or e.probe_cc in cc_set)
    ]
    hours_with_jsonl = {(e.hour, e.probe_cc, e.test) for e in matching if e.ext == "jsonl.gz"}
    return [
        e
        for e in matching
        if not (
            e.ext == "tar.gz"
            and e.key.startswith("raw/")
            and (e.hour, e.probe_cc, e.test) in hours_with_jsonl
        )
    ]
