"""Target lists in Citizen Lab's test-list format.

Why this format: it is what OONI and Citizen Lab already maintain per country, so a
volunteer can point the probe at the upstream list (``kuzot targets update``) or at our
own selection without conversion.  The lint rules below are the ones the upstream
repository enforces.  ``kuzot targets check`` reports every bad row with its line;
``kuzot run`` measures the good rows and records each bad one as refused input with its
reason (:class:`RefusedInput`), so one bad URL never ends a run.

Internationalised host names (``https://яндекс.рф/``) are accepted and measured under
their A-labels (IDNA 2008 with UTS 46 mapping, as browsers and OONI do); the URL as
written is kept in :attr:`Target.original_url` and in the measurement's annotations.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import idna

from probe.errors import InputError
from probe.i18n import N_, Message, localized, reason

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


class TargetsError(InputError, ValueError):
    """A targets file that cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    category_code: str | None = None
    category_description: str = ""
    date_added: str = ""
    source: str = ""
    notes: str = ""
    #: The URL as written when it differs from ``url`` (an internationalised host name
    #: converted to A-labels); empty otherwise.
    original_url: str = ""

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


@dataclass(frozen=True, slots=True)
class RefusedInput:
    """One input that was not measured, and why (kept with the run, never silently dropped)."""

    url: str
    reason: str
    source: str = ""
    line: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {"url": self.url, "reason": str(self.reason), "source": self.source, "line": self.line}

    def __str__(self) -> str:
        return self.localized("en")

    def localized(self, lang: str | None = None) -> str:
        """The refusal for a person, in ``lang`` (else the terminal's); the data keeps English."""
        why = localized(self.reason, lang)
        if repr(self.url) not in self.reason:
            why = f"{why}: {self.url!r}"
        if self.line is not None:
            return f"{self.source}:{self.line}: {why}"
        return f"{self.source}: {why}" if self.source else why


def ascii_url(url: str) -> str:
    """``url`` with an internationalised host name in A-labels (IDNA 2008 with UTS 46
    mapping, so ``Яндекс.рф`` and ``яндекс.рф`` are one name); raises :class:`ValueError`
    with a readable reason when the name cannot be converted.  ASCII URLs are returned
    unchanged."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or host.isascii():
        return url
    try:
        converted = idna.encode(host, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(
            Message(N_("invalid internationalised host name {host} ({error})"), host=repr(host), error=exc)
        ) from None
    try:
        port = parts.port
    except ValueError:
        raise ValueError(Message(N_("invalid port"))) from None
    userinfo, _, _ = parts.netloc.rpartition("@")
    hostport = converted if port is None else f"{converted}:{port}"
    netloc = f"{userinfo}@{hostport}" if userinfo else hostport
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def make_target(url: str, *args: str | None) -> Target:
    """A :class:`Target` for ``url`` (converted with :func:`ascii_url`, the original kept);
    raises :class:`ValueError` with the reason when the URL is not valid."""
    if url != url.strip() or any(ch.isspace() for ch in url):
        raise ValueError(Message(N_("URL contains whitespace")))
    converted = ascii_url(url)
    problem = check_url(converted)
    if problem:
        raise ValueError(problem)
    return Target(converted, *args, original_url=url if converted != url else "")  # type: ignore[arg-type,misc]  # args: the optional fields after url, as strings


def check_url(url: str) -> Message | str | None:
    """Why ``url`` is not a valid test-list URL, or None when it is (internationalised
    host names are valid: they are checked in their A-label form)."""
    if url != url.strip() or any(ch.isspace() for ch in url):
        return Message(N_("URL contains whitespace"))
    try:
        url = ascii_url(url)
    except ValueError as exc:
        return reason(exc)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return Message(N_("URL must start with http:// or https://"))
    host = parts.hostname or ""
    if not host:
        return Message(N_("URL has no host"))
    if not _HOST_RE.match(host) and not _looks_like_ip(host):
        return Message(N_("invalid host name {host}"), host=repr(host))
    if not parts.path:
        return Message(N_("URL must have a path (add a trailing slash: https://example.org/)"))
    try:
        _ = parts.port
    except ValueError:
        return Message(N_("invalid port"))
    return None


def _looks_like_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_targets(
    text: str, *, name: str = "<targets>", refused: list[RefusedInput] | None = None
) -> list[Target]:
    """Parse and lint a whole test list.

    Without ``refused``, raise :class:`TargetsError` on the first problem.  With it, a bad
    row is appended there (with its line and reason) and skipped, so the good rows are
    still measured; only a file that cannot be read as a list at all (no header, not
    CSV) still raises.
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise TargetsError(
            _t(N_("{name}: file is empty (expected header {header})"), name=name, header=",".join(HEADER))
        ) from None
    except csv.Error as exc:
        raise TargetsError(f"{name}:1: {exc}") from None
    if [h.strip().lstrip("\ufeff") for h in header] != HEADER:
        raise TargetsError(
            _t(N_("{where}: header must be {header}; got {got}"),
               where=f"{name}:1", header=",".join(HEADER), got=",".join(header))
        )
    targets: list[Target] = []
    seen: dict[str, int] = {}
    line_number = 1
    try:
        for row in reader:
            line_number = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            problem, target = _parse_row(row, seen, line_number)
            if problem is not None:
                if refused is None:
                    raise TargetsError(f"{name}:{line_number}: {localized(problem)}")
                refused.append(RefusedInput(row[0] if row else "", problem, name, line_number))
                continue
            assert target is not None
            seen[target.url] = line_number
            targets.append(target)
    except csv.Error as exc:
        raise TargetsError(f"{name}:{line_number}: {exc}") from None
    if not targets and not (refused and refused[-1].source == name):
        raise TargetsError(_t(N_("{name}: no URLs in the file"), name=name))
    return targets


def _parse_row(
    row: list[str], seen: dict[str, int], line_number: int
) -> tuple[Message | None, Target | None]:
    """One row's problem (the message, naming the value; English in data, translated
    when shown), or its target."""
    if len(row) != len(HEADER):
        wrong = Message(
            N_("expected {expected} columns, found {found}"), expected=len(HEADER), found=len(row)
        )
        return wrong, None
    url, code, description, added, source, notes = row
    try:
        target = make_target(url, code, description, added, source, notes)
    except ValueError as exc:
        return Message(N_("{reason}: {url}"), reason=reason(exc), url=repr(url)), None
    if code not in CATEGORY_CODES:
        return Message(N_("unknown category code {code}"), code=repr(code)), None
    if added:
        try:
            date.fromisoformat(added)
        except ValueError:
            return Message(N_("date_added must be YYYY-MM-DD, got {value}"), value=repr(added)), None
    if target.url in seen:
        return Message(N_("duplicate URL {url} (first on line {line})"), url=url, line=seen[target.url]), None
    return None, target


def load_targets(path: str | Path, *, refused: list[RefusedInput] | None = None) -> list[Target]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TargetsError(_t(N_("{path}: no such file"), path=path)) from None
    except UnicodeDecodeError as exc:
        raise TargetsError(
            _t(
                N_("{path}: not UTF-8 text ({reason} at byte {byte})"),
                path=path, reason=exc.reason, byte=exc.start,
            )
        ) from None
    except OSError as exc:
        raise TargetsError(_t(N_("{path}: cannot read ({reason})"), path=path, reason=exc.strerror)) from None
    return parse_targets(text, name=str(path), refused=refused)


def targets_from_urls(urls: list[str], *, refused: list[RefusedInput] | None = None) -> list[Target]:
    """Targets for URLs given on the command line; a bad one raises :class:`TargetsError`,
    or, with ``refused``, is recorded there and skipped."""
    targets = []
    for url in urls:
        try:
            targets.append(make_target(url))
        except ValueError as exc:
            if refused is None:
                raise TargetsError(f"--url {url!r}: {localized(reason(exc))}") from None
            refused.append(RefusedInput(url, reason(exc), "--url"))
    return targets


def _t(msgid: str, **params: object) -> str:
    """A message for a person only (an error raised to the terminal), translated now."""
    return Message(msgid, **params).localized()


def default_targets_path() -> Path:
    """``$KUZOT_TARGETS``, or our own list shipped in the package (``probe/data/kg.csv``)."""
    import os

    override = os.environ.get("KUZOT_TARGETS")
    if override:
        return Path(override)
    from probe.bundled import default_targets_file

    return default_targets_file()
