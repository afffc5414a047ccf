"""Lab scenarios as data: which domains the lab serves, and how the ISP treats each.

The one scenario model of both labs, as httpcore has one interface and several network
backends: a :class:`SiteRule` names a method of :data:`METHODS`, and each backend plays
it its own way, the namespace lab with real daemons (:mod:`probe.lab.daemons`), the
loopback lab with its Python servers (:func:`probe.lab.loopback.scenario_for`).

Why data: the same rows drive both labs' verdict tests, the benchmark and the demo
(each row carries an ``expect`` table with the verdict it must get).  Adding a way of
blocking means adding a method name here and playing it in both backends; adding a
case means a TOML row.

A scenario file (``probe/lab/scenarios/NAME.toml``)::

    name = "matrix"
    description = "one domain per way of blocking"

    [link]              # the volunteer's uplink at the ISP (optional)
    up = true           # false: the ISP side of the link is down (probe_offline)
    delay_ms = 0        # added round-trip time on everything the volunteer sends
    loss_percent = 0.0

    [[site]]
    domain = "www.azattyk.org"
    name = "dns_blockpage"    # optional: the row's name in test ids (default: block)
    block = "dns_blockpage"   # one of METHODS
    scheme = "https"          # the URL the probe measures (http for HTTP injection)
    delay_ms = 0              # "slow" rows: extra delay on the site's replies
    [site.expect]             # the verdict this row must get
    status = "blocked"
    blocking = "dns"
    confirmed = true          # optional
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.bundled import bundled_path
from probe.errors import InputError

#: Where the scenario files ship (package data, see pyproject's ``lab/scenarios/*.toml``).
SCENARIO_DIR = bundled_path("lab", "scenarios")

#: Every way the lab's ISP (or the site itself) can treat a domain, with what it does.
METHODS: dict[str, str] = {
    "none": "served honestly",
    "dns_blockpage": "the ISP resolver answers the blockpage server's address",
    "dns_nxdomain": "the ISP resolver answers NXDOMAIN",
    "ip_reset": "the ISP router resets every TCP connection to the site's address at its first data",
    "ip_blackhole": "the ISP router drops every packet to the site's address",
    "sni_reset": "the ISP router resets a TLS connection whose ClientHello names the domain",
    "http_blockpage_200": "the ISP router sends port 80 to its blockpage server (200 with a blockpage)",
    "http_redirect": "the ISP router sends port 80 to a server redirecting to Homeline's blockpage URL",
    "site_down": "the site refuses connections for everyone, the control included",
    "slow": "the site's replies to the volunteer are delayed by delay_ms",
}

#: Methods only the loopback lab plays: an injector racing a forged reply against the
#: resolver's own lives inside its Python resolver; the namespace lab has none on the path.
LOOPBACK_METHODS: dict[str, str] = {
    "dns_injection": "an on-path injector answers the blockpage server's address before the ISP resolver",
}

#: Methods that act on the site's own address: such a row needs an address of its own.
ADDRESS_METHODS = frozenset(
    {"ip_reset", "ip_blackhole", "http_blockpage_200", "http_redirect", "site_down", "slow"}
)


class ScenarioError(InputError, ValueError):
    """A scenario file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Expect:
    """The verdict a row must get (``kuzot verdicts``): status, blocking method, and
    whether it is confirmed by an artefact (``None``: not asserted)."""

    status: str = "accessible"
    blocking: str | None = None
    confirmed: bool | None = None


@dataclass(frozen=True)
class SiteRule:
    """One domain the lab serves and what the ISP does to it."""

    domain: str
    block: str = "none"
    scheme: str = "https"
    delay_ms: int = 0
    expect: Expect = field(default_factory=Expect)
    notes: str = ""
    #: The row's short name (test ids, the loopback lab's targets); default: the method.
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or ("honest" if self.block == "none" else self.block)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.domain}/"


@dataclass(frozen=True)
class LinkSettings:
    """The volunteer's uplink: up or down, added delay and loss."""

    up: bool = True
    delay_ms: int = 0
    loss_percent: float = 0.0


@dataclass(frozen=True)
class LabScenario:
    """A whole lab configuration: the sites and the volunteer's link."""

    name: str
    sites: tuple[SiteRule, ...]
    link: LinkSettings = field(default_factory=LinkSettings)
    description: str = ""
    #: Serve domains not blocked by address from this many shared addresses (0: one each);
    #: the benchmark's thousand domains need not have a thousand addresses.
    shared_addresses: int = 0
    #: Issue one ``*.PARENT`` certificate for every domain under PARENT instead of one each.
    wildcard_parent: str | None = None

    def site(self, domain: str) -> SiteRule:
        for rule in self.sites:
            if rule.domain == domain:
                return rule
        raise KeyError(domain)

    def by_method(self, *methods: str) -> list[SiteRule]:
        return [s for s in self.sites if s.block in methods]

    @property
    def needs_delay(self) -> bool:
        return bool(self.link.delay_ms or self.link.loss_percent or self.by_method("slow"))


def available_scenarios() -> list[str]:
    """Names of the scenario files shipped with the lab."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def load_scenario(name_or_path: str | Path) -> LabScenario:
    """Load a shipped scenario by name, or any scenario file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIO_DIR / f"{name_or_path}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        known = ", ".join(available_scenarios())
        raise ScenarioError(f"no scenario {name_or_path!r} (known: {known})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    return scenario_from_dict(data, source=str(path), default_name=path.stem)


def scenario_from_dict(
    data: dict[str, Any], *, source: str = "<dict>", default_name: str = ""
) -> LabScenario:
    """Validate a parsed scenario; errors name the source and the offending row."""
    sites: list[SiteRule] = []
    seen: set[str] = set()
    for index, row in enumerate(data.get("site", [])):
        where = f"{source}: site #{index + 1}"
        domain = str(row.get("domain", "")).strip().lower().rstrip(".")
        if not domain or "/" in domain or " " in domain:
            raise ScenarioError(f"{where}: a domain name is required")
        if domain in seen:
            raise ScenarioError(f"{where}: {domain} appears twice")
        seen.add(domain)
        block = row.get("block", "none")
        if block not in METHODS:
            raise ScenarioError(f"{where}: unknown block {block!r} (one of {', '.join(METHODS)})")
        scheme = row.get("scheme", "https")
        if scheme not in ("http", "https"):
            raise ScenarioError(f"{where}: scheme must be http or https")
        expect = row.get("expect", {})
        sites.append(
            SiteRule(
                domain=domain,
                block=block,
                scheme=scheme,
                delay_ms=int(row.get("delay_ms", 300 if block == "slow" else 0)),
                expect=Expect(
                    status=expect.get("status", "accessible"),
                    blocking=expect.get("blocking") or None,
                    confirmed=expect.get("confirmed"),
                ),
                notes=row.get("notes", ""),
                name=str(row.get("name", "")),
            )
        )
    link = data.get("link", {})
    return LabScenario(
        name=data.get("name", default_name),
        description=data.get("description", ""),
        sites=tuple(sites),
        link=LinkSettings(
            up=bool(link.get("up", True)),
            delay_ms=int(link.get("delay_ms", 0)),
            loss_percent=float(link.get("loss_percent", 0.0)),
        ),
        shared_addresses=int(data.get("shared_addresses", 0)),
        wildcard_parent=data.get("wildcard_parent"),
    )
