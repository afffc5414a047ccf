"""Blockpage fingerprints: the one loader and the one matcher.

Why fingerprints: a difference between what the probe and the control saw is only a
hint; a page or an address that an ISP is *known* to use for blocking is proof.  OONI
calls a block "confirmed" only with such an artefact, and so do we.

Format: OONI's ``blocking-fingerprints`` CSV (https://github.com/ooni/blocking-fingerprints),
eleven columns ``name,scope,other_names,location_found,pattern_type,pattern,
confidence_no_fp,expected_countries,source,exp_url,notes``.  ``location_found`` is
``dns`` or ``body`` or ``header.<lowercase name>``; ``pattern_type`` is ``full``
(equality), ``prefix``, ``contains`` or ``regexp`` (``re.search``).

Scopes (Citizen Lab's): ``nat``, ``isp``, ``prod``, ``inst`` name real blockpages and
*confirm* a block; ``vbw`` ("vague blocking word") is a hint only; ``fp`` marks pages
known **not** to be blockpages (hosting errors, parked domains) and must never count as
evidence of blocking.  Our own lab fingerprints use scope ``lab``, which confirms.

Where they come from (:func:`load_fingerprints` without ``paths``): our own files in
``analysis/data/fingerprints/*.csv``, written in our own words, plus OONI's files when the user
downloaded them (:func:`download_fingerprints`) into
``platformdirs.user_data_dir("kuzot")/fingerprints``.  OONI's repository carries no
licence, so the project never ships a copy: it fetches them at run time.

Nothing here opens a socket except :func:`download_fingerprints`.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import httpx
import platformdirs

from analysis.bogons import parse_address
from analysis.bundled import fingerprint_dir
from probe.errors import InputError
from probe.records import HttpObservation

#: The header line every fingerprint file must start with, in this order.
COLUMNS = (
    "name",
    "scope",
    "other_names",
    "location_found",
    "pattern_type",
    "pattern",
    "confidence_no_fp",
    "expected_countries",
    "source",
    "exp_url",
    "notes",
)
PATTERN_TYPES = frozenset({"full", "prefix", "contains", "regexp"})
#: Scopes whose match is a hint, not proof.
HINT_SCOPES = frozenset({"vbw"})
#: Scopes that mark pages known not to be blockpages.
FALSE_POSITIVE_SCOPES = frozenset({"fp"})
#: Scopes naming one country's or one ISP's censorship: with no expected country listed
#: they confirm anywhere, as in OONI's pipeline.
CENSOR_SCOPES = frozenset({"nat", "isp"})
#: Our own fingerprints of the labs: they confirm wherever the (labelled) lab runs.
OWN_SCOPES = frozenset({"lab"})

#: Where OONI publishes its files; :func:`download_fingerprints` fetches ``<base>/<file>``.
OONI_BASE_URL = "https://raw.githubusercontent.com/ooni/blocking-fingerprints/main"
OONI_FILES = ("fingerprints_dns.csv", "fingerprints_http.csv")
#: Larger downloads are refused: the real files are well under 1 MB.
MAX_DOWNLOAD_BYTES = 16 * 1024 * 1024



class FingerprintError(InputError, ValueError):
    """A fingerprint file is missing or malformed; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """One row of a fingerprint file."""

    name: str
    scope: str
    location_found: str
    pattern_type: str
    pattern: str
    other_names: tuple[str, ...] = ()
    confidence_no_fp: int | None = None
    expected_countries: tuple[str, ...] = ()
    source: str = ""
    exp_url: str = ""
    notes: str = ""
    #: ``"<file>:<line>"``, so a verdict can say which row matched.
    origin: str = ""
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    @property
    def confirms(self) -> bool:
        """Whether a match is proof of blocking on its own (not a hint, not a known false positive)."""
        return self.scope not in HINT_SCOPES and self.scope not in FALSE_POSITIVE_SCOPES

    @property
    def is_false_positive(self) -> bool:
        return self.scope in FALSE_POSITIVE_SCOPES

    def confirms_in(self, probe_cc: str | None) -> bool:
        """Whether a match is proof of blocking *for a probe in ``probe_cc``*.

        A vendor's product page (scope ``prod``) or an institution's filter (``inst``) is
        sold and installed anywhere, by companies and schools as well as ISPs: it proves a
        block by the state only where the row lists the probe's country.  A national or
        ISP blockpage confirms where its expected countries (if any) include the probe's.
        Our own lab rows always confirm (lab data is labelled as such).
        """
        if not self.confirms:
            return False
        if self.scope in OWN_SCOPES:
            return True
        if self.expected_countries:
            wanted = {c.upper() for c in self.expected_countries}
            return probe_cc is not None and probe_cc.strip().upper() in wanted
        return self.scope in CENSOR_SCOPES

    def matches(self, value: str) -> bool:
        if self.pattern_type == "full":
            return value == self.pattern
        if self.pattern_type == "prefix":
            return value.startswith(self.pattern)
        if self.pattern_type == "contains":
            return self.pattern in value
        return self._regex is not None and self._regex.search(value) is not None


def _rank(fp: Fingerprint) -> int:
    """Which of several matches to report: proof first, then hints, then known false positives."""
    if fp.confirms:
        return 0
    return 2 if fp.is_false_positive else 1


@dataclass(frozen=True)
class FingerprintSet:
    """Every loaded fingerprint, split by where it is looked for."""

    dns: tuple[Fingerprint, ...] = ()
    http: tuple[Fingerprint, ...] = ()
    sources: tuple[Path, ...] = ()

    def __len__(self) -> int:
        return len(self.dns) + len(self.http)

    def names(self) -> set[str]:
        return {fp.name for fp in (*self.dns, *self.http)}

    def match_dns(self, address: str) -> Fingerprint | None:
        """The fingerprint a DNS answer (an address, or a CNAME target) matches, if any.

        Addresses are compared in canonical form, so ``::ffff:1.2.3.4`` and ``1.2.3.4``
        are one address; names ignore case and a trailing dot.
        """
        value = _canonical_dns_value(address)
        found = [fp for fp in self.dns if fp.matches(value) or fp.matches(address)]
        return min(found, key=_rank) if found else None

    def match_http(self, obs: HttpObservation) -> Fingerprint | None:
        """The fingerprint one HTTP response matches, in its body sample or its headers.

        The body is decoded leniently (the declared charset, else UTF-8, bad bytes
        replaced), since blockpages are often served in a legacy Cyrillic charset.  A
        ``full`` body pattern is only compared with a body that was not truncated.
        """
        found = self.match_http_all(obs)
        return min(found, key=_rank) if found else None

    def match_http_all(self, obs: HttpObservation) -> list[Fingerprint]:
        """Every fingerprint one HTTP response matches: a page can match a blockpage row
        and a known-false-positive row at once, and the verdict needs to know both."""
        found: list[Fingerprint] = []
        text: str | None = None
        for fp in self.http:
            if fp.location_found == "body":
                if not obs.body_sample:
                    continue
                if text is None:
                    text = decode_body(obs)
                if fp.pattern_type == "full" and obs.body_truncated:
                    continue
                if fp.matches(text):
                    found.append(fp)
            else:
                header = fp.location_found.removeprefix("header.")
                if any(fp.matches(value) for key, value in obs.headers if key.lower() == header):
                    found.append(fp)
        return found


@lru_cache(maxsize=65536)
def _canonical_dns_value(value: str) -> str:
    # Cached: every answer of every measurement is matched, the same addresses again and again.
    address = parse_address(value)
    if address is not None:
        return str(address)
    return value.strip().rstrip(".").lower()


_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)


def decode_body(obs: HttpObservation) -> str:
    """The body sample as text: the ``Content-Type`` charset when Python knows it, else UTF-8."""
    match = _CHARSET.search(obs.header("content-type") or "")
    if match:
        try:
            return obs.body_sample.decode(match.group(1), errors="replace")
        except LookupError:
            pass
    return obs.body_sample.decode("utf-8", errors="replace")


# --- loading ---------------------------------------------------------------------------


def parse_fingerprints(text: str, origin: str) -> list[Fingerprint]:
    """Parse one file's text; ``origin`` (a path or URL) names it in errors.

    Raises :class:`FingerprintError` naming ``origin`` and the line for a wrong header,
    a row without eleven columns, an unknown ``location_found`` or ``pattern_type``, an
    empty name or pattern, a non-integer confidence or an invalid regular expression.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[Fingerprint] = []
    header_seen = False
    for row in reader:
        line = reader.line_num
        if not header_seen:
            header_seen = True
            if tuple(cell.strip().lstrip("\ufeff") for cell in row) != COLUMNS:
                raise FingerprintError(
                    f"{origin}:{line}: the header must be {','.join(COLUMNS)}; found {','.join(row)!r}"
                )
            continue
        if not row or all(not cell.strip() for cell in row):
            continue
        rows.append(_parse_row(row, f"{origin}:{line}"))
    if not header_seen:
        raise FingerprintError(f"{origin}:1: empty file; expected the header {','.join(COLUMNS)}")
    return rows


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _parse_row(row: list[str], where: str) -> Fingerprint:
    if len(row) != len(COLUMNS):
        raise FingerprintError(f"{where}: expected {len(COLUMNS)} columns, found {len(row)}")
    values = dict(zip(COLUMNS, row, strict=True))
    name, location, pattern_type, pattern = (
        values["name"].strip(),
        values["location_found"].strip().lower(),
        values["pattern_type"].strip().lower(),
        values["pattern"],
    )
    if not name:
        raise FingerprintError(f"{where}: empty name")
    valid_header = location.startswith("header.") and len(location) > len("header.")
    if location not in ("dns", "body") and not valid_header:
        raise FingerprintError(
            f"{where}: location_found {location!r} is not 'dns', 'body' or 'header.<name>' "
            f"(fingerprint {name})"
        )
    if pattern_type not in PATTERN_TYPES:
        raise FingerprintError(
            f"{where}: pattern_type {pattern_type!r} is not one of {sorted(PATTERN_TYPES)} "
            f"(fingerprint {name})"
        )
    if not pattern:
        raise FingerprintError(f"{where}: empty pattern (fingerprint {name})")
    confidence_text = values["confidence_no_fp"].strip()
    try:
        confidence = int(confidence_text) if confidence_text else None
    except ValueError:
        raise FingerprintError(
            f"{where}: confidence_no_fp {confidence_text!r} is not an integer (fingerprint {name})"
        ) from None
    regex = None
    if pattern_type == "regexp":
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise FingerprintError(
                f"{where}: invalid regular expression ({exc}) (fingerprint {name})"
            ) from None
    if location == "dns" and pattern_type == "full":
        pattern = _canonical_dns_value(pattern)
    return Fingerprint(
        name=name,
        scope=values["scope"].strip().lower(),
        location_found=location,
        pattern_type=pattern_type,
        pattern=pattern,
        other_names=_split_list(values["other_names"]),
        confidence_no_fp=confidence,
        expected_countries=_split_list(values["expected_countries"]),
        source=values["source"].strip(),
        exp_url=values["exp_url"].strip(),
        notes=values["notes"].strip(),
        origin=where,
        _regex=regex,
    )


def read_fingerprint_file(path: Path) -> list[Fingerprint]:
    """One file's fingerprints; errors name the file and the line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FingerprintError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise FingerprintError(f"{path}:{line}: not UTF-8 ({exc.reason})") from None
    return parse_fingerprints(text, str(path))


def user_fingerprint_dir() -> Path:
    """Where :func:`download_fingerprints` puts OONI's files by default (``KUZOT_DATA_DIR``
    moves the data directory, as for the database)."""
    override = os.environ.get("KUZOT_DATA_DIR")
    base = Path(override) if override else Path(platformdirs.user_data_dir("kuzot"))
    return base / "fingerprints"


def default_fingerprint_paths() -> list[Path]:
    """Our own files, then any downloaded OONI copies that exist."""
    bundled = fingerprint_dir()
    if not bundled.is_dir():
        raise FingerprintError(
            f"{bundled}: the fingerprints shipped with Kuzot are missing; reinstall kuzot "
            "or pass fingerprint files explicitly"
        )
    paths = sorted(bundled.glob("*.csv"))
    downloaded = user_fingerprint_dir()
    paths += [downloaded / name for name in OONI_FILES if (downloaded / name).is_file()]
    return paths


def load_fingerprints(paths: Iterable[str | os.PathLike[str]] | None = None) -> FingerprintSet:
    """Load fingerprint files (a directory stands for its ``*.csv`` files).

    ``None``: :func:`default_fingerprint_paths`.  Raises :class:`FingerprintError` for a
    missing or malformed file, naming the file and the line.  Order is kept: when two
    fingerprints of the same rank match, the first loaded is reported.
    """
    files: list[Path] = []
    for item in default_fingerprint_paths() if paths is None else paths:
        path = Path(item)
        files.extend(sorted(path.glob("*.csv")) if path.is_dir() else [path])
    dns: list[Fingerprint] = []
    http: list[Fingerprint] = []
    for path in files:
        for fp in read_fingerprint_file(path):
            (dns if fp.location_found == "dns" else http).append(fp)
    return FingerprintSet(dns=tuple(dns), http=tuple(http), sources=tuple(files))


# --- downloading -----------------------------------------------------------------------


def download_fingerprints(
    dest_dir: str | os.PathLike[str] | None = None,
    *,
    client: httpx.Client | None = None,
    base_url: str = OONI_BASE_URL,
    timeout: float = 30.0,
) -> list[Path]:
    """Fetch OONI's ``fingerprints_dns.csv`` and ``fingerprints_http.csv`` into ``dest_dir``
    (default :func:`user_fingerprint_dir`) and return the written paths.

    Both files are downloaded and parsed before either is written, and each is written
    to a temporary file and renamed, so a failed or half-finished download never leaves
    a broken file for :func:`load_fingerprints` to trip on.  Raises ``httpx.HTTPError``
    for network trouble or a non-2xx status, :class:`FingerprintError` for a file that
    does not parse or is larger than :data:`MAX_DOWNLOAD_BYTES`.
    """
    dest = Path(dest_dir) if dest_dir is not None else user_fingerprint_dir()
    own_client = client is None
    http_client = client or httpx.Client(timeout=timeout, follow_redirects=True, trust_env=False)
    contents: dict[str, bytes] = {}
    try:
        for name in OONI_FILES:
            url = f"{base_url.rstrip('/')}/{name}"
            contents[name] = _fetch(http_client, url)
            rows = parse_fingerprints(contents[name].decode("utf-8", errors="strict"), url)
            expected_dns = name == "fingerprints_dns.csv"
            for fp in rows:
                if (fp.location_found == "dns") != expected_dns:
                    raise FingerprintError(f"{fp.origin}: location_found {fp.location_found!r} in {name}")
    except UnicodeDecodeError as exc:
        raise FingerprintError(f"{base_url}: downloaded file is not UTF-8 ({exc.reason})") from None
    finally:
        if own_client:
            http_client.close()
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in contents.items():
        written.append(_write_atomically(dest / name, data))
    return written


def _fetch(client: httpx.Client, url: str) -> bytes:
    with client.stream("GET", url) as response:
        response.raise_for_status()
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_DOWNLOAD_BYTES:
                raise FingerprintError(f"{url}: larger than {MAX_DOWNLOAD_BYTES} bytes; refused")
            chunks.append(chunk)
    return b"".join(chunks)


def _write_atomically(path: Path, data: bytes) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


__all__ = [
    "Fingerprint",
    "FingerprintError",
    "FingerprintSet",
    "decode_body",
    "default_fingerprint_paths",
    "download_fingerprints",
    "load_fingerprints",
    "parse_fingerprints",
    "read_fingerprint_file",
    "user_fingerprint_dir",
]
