"""Target lists in Citizen Lab's test-list format.

Why this format: it is what OONI and Citizen Lab already maintain per country, so a
volunteer can point the probe at the upstream list (``kuzot targets update``) or at our
own selection without conversion.  The lint rules below are the ones the upstream
repository enforces; a bad file is rejected whole, with the line named, before
anything is measured.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

HEADER = ["url", "category_code", "category_description", "date_added", "source", "notes"]

#: Citizen Lab's category codes (lists/00-LEGEND-new_category_codes.csv).
CATEGORY_CODES = frozenset(
    [
        "ALDR",
        "REL",
        "PORN",
        "PROV",
        "POLR",
        "HUMR",
        "ENV",
        "MILX",
        "HATE",
        "NEWS",
        "XED",
        "PUBH",
        "GMB",
        "ANON",
        "DATE",
        "GRP",
        "LGBT",
        "FILE",
        "HACK",
        "COMT",
        "MMED",
        "HOST",
        "SRCH",
        "GAME",
        "CULTR",
        "ECON",
        "GOVT",
        "COMM",
        "CTRL",
        "IGO",
        "MISC",
    ]
)

_HOST_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
)


class TargetsError(ValueError):
    """A targets file that cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    category_code: str | None = None
    category_description: str = ""
    date_added: str = ""
    source: str = ""
    notes: str = ""

    @property
    def hostname(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme


def check_url(url: str) -> str | None:
    """Why ``url`` is not a valid test-list URL, or None when it is."""
    if url != url.strip() or any(ch.isspace() for ch in url):
        return "URL contains whitespace"
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "http://[::1": an unclosed IPv6 bracket
        return f"URL cannot be read ({exc})"
    if parts.scheme not in ("http", "https"):
        return "URL must start with http:// or https://"
    host = parts.hostname or ""
    if not host:
        return "URL has no host"
    if not _HOST_RE.match(host) and not _looks_like_ip(host):
        return f"invalid host name {host!r}"
    if not parts.path:
        return "URL must have a path (add a trailing slash: https://example.org/)"
    try:
        _ = parts.port
    except ValueError:
        return "invalid port"
    return None


def _looks_like_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_targets(text: str, *, name: str = "<targets>") -> list[Target]:
    """Parse and lint a whole test list; raise :class:`TargetsError` on the first problem."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise TargetsError(f"{name}: file is empty (expected header {','.join(HEADER)})") from None
    except csv.Error as exc:
        raise TargetsError(f"{name}:1: {exc}") from None
    if [h.strip().lstrip("\ufeff") for h in header] != HEADER:
        raise TargetsError(f"{name}:1: header must be {','.join(HEADER)}; got {','.join(header)}")
    targets: list[Target] = []
    seen: dict[str, int] = {}
    line_number = 1
    try:
        for row in reader:
            line_number = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(HEADER):
                raise TargetsError(f"{name}:{line_number}: expected {len(HEADER)} columns, found {len(row)}")
            url, code, description, added, source, notes = row
            problem = check_url(url)
            if problem:
                raise TargetsError(f"{name}:{line_number}: {problem}: {url!r}")
            if code not in CATEGORY_CODES:
                raise TargetsError(f"{name}:{line_number}: unknown category code {code!r}")
            if added:
                try:
                    date.fromisoformat(added)
                except ValueError:
                    raise TargetsError(
                        f"{name}:{line_number}: date_added must be YYYY-MM-DD, got {added!r}"
                    ) from None
            if url in seen:
                raise TargetsError(f"{name}:{line_number}: duplicate URL {url} (first on line {seen[url]})")
            seen[url] = line_number
            targets.append(Target(url, code, description, added, source, notes))
    except csv.Error as exc:
        raise TargetsError(f"{name}:{line_number}: {exc}") from None
    if not targets:
        raise TargetsError(f"{name}: no URLs in the file")
    return targets


def load_targets(path: str | Path) -> list[Target]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TargetsError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise TargetsError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise TargetsError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_targets(text, name=str(path))


def targets_from_urls(urls: list[str]) -> list[Target]:
    targets = []
    for url in urls:
        problem = check_url(url)
        if problem:
            raise TargetsError(f"--url {url!r}: {problem}")
        targets.append(Target(url))
    return targets


def default_targets_path() -> Path:
    """The project's own list, next to the packages in a checkout or an installed share dir."""
    import os

    override = os.environ.get("KUZOT_TARGETS")
    if override:
        return Path(override)
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "targets" / "kg.csv", Path.cwd() / "targets" / "kg.csv"):
        if candidate.exists():
            return candidate
    return here.parent / "targets" / "kg.csv"
