r"""The loopback censorship lab: a whole small "internet" and a censoring ISP on 127/8.

One :class:`LoopbackLab` holds, on a fresh ``127.X.Y.0/24``:
- an honest resolver (what the control helper asks) and an "ISP" resolver (what the
  probe asks) that lies per domain;
- one web site per domain at its own address, honest to everyone except the probe's
  source address (127.0.0.1), which gets the site's censorship behaviour;
- a blockpage server at 127.66.66.66 with a certificate from a CA the probe does not
  trust (where the lying resolver points, as an ISP's DNS redirection does);
- a canary site every network reaches, to tell a dead link from blocking;
- a control helper (the real ASGI app on Hypercorn's trio worker) whose traffic leaves
  from 127.0.0.99, so the sites treat it as the uncensored vantage.

Scenarios are data: the rows of :mod:`probe.lab.scenarios` (the namespace lab's model
too) become this lab's :class:`Scenario`\ s through :func:`scenario_for`; tests that need
a behaviour no scenario file names (a hostile server, an OONI QA case) build a
:class:`Scenario` directly.  The same rows drive tests, benchmarks and the demo.
Everything runs in a :class:`~probe.lab.runner.LabThread`, so both an in-process
probe and a ``kuzot`` subprocess can use the lab.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from probe.lab.certs import LabCA
from probe.lab.dns_server import Behaviour as DnsBehaviour
from probe.lab.dns_server import LabResolver, LabZone
from probe.lab.runner import LabThread
from probe.lab.scenarios import (
    Expect,
    LabScenario,
    ScenarioError,
    SiteRule,
    load_scenario,
)
from probe.lab.web_servers import PROBE_SOURCE, LabSite, SitePolicy, WebLab, serve_site
from probe.lab.web_servers import Behaviour as WebBehaviour
from probe.settings import ProbeSettings, Timeouts

#: Where the lying resolver sends blocked names; ``analysis/data/fingerprints/dns.csv`` knows it.
BLOCKPAGE_IP = "127.66.66.66"
#: The control helper's source address: sites never censor it.
CONTROL_SOURCE = "127.0.0.99"
CANARY_DOMAIN = "canary.kuzot-lab.net"
DOH_DOMAIN = "dns.kuzot-lab.net"


@dataclass(frozen=True)
class Scenario:
    """One row of the scenario matrix: what the ISP does to one domain, and the verdict
    the project must reach for it."""

    name: str
    domain: str
    dns: DnsBehaviour | None = None  # the ISP resolver's lie; None: honest
    site: WebBehaviour | None = None  # what the site does to the probe; None: honest
    down_for_everyone: bool = False  # the site fails for the control too
    https: bool = True
    expect_status: str = "accessible"
    expect_blocking: str | None = None
    expect_confirmed: bool | None = None
    notes: str = ""


@dataclass
class LabTarget:
    scenario: Scenario
    site: LabSite

    @property
    def url(self) -> str:
        return self.site.url(self.scenario.domain)


@dataclass
class LoopbackLab:
    """A running lab; use as a context manager.  ``probe_args()`` gives the ``kuzot run``
    options that point a probe at it."""

    thread: LabThread = field(default_factory=LabThread)
    timeouts: Timeouts = field(default_factory=lambda: Timeouts(dns=1.0, connect=1.5, tls=2.0, http=4.0))
    targets: dict[str, LabTarget] = field(default_factory=dict)

    def __enter__(self) -> LoopbackLab:
        self.thread.__enter__()
        try:
            self._start()
        except BaseException:
            self.thread.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.thread.close()
        self.ca.close()
        self.rogue_ca.close()

    # --- construction ---------------------------------------------------------------------

    def _start(self) -> None:
        self.ca = LabCA("Kuzot Lab CA")
        self.rogue_ca = LabCA("Lab ISP Blockpage CA")
        self.web = WebLab(self.thread, ca=self.ca)
        self.zone = LabZone()
        self.honest_resolver = LabResolver(self.zone)
        self.isp_resolver = LabResolver(self.zone)
        self.honest_address = self.thread.start(self.honest_resolver.serve, self.web.next_ip(), 0)
        self.isp_address = self.thread.start(self.isp_resolver.serve, self.web.next_ip(), 0)
        blockpage_policy = SitePolicy(WebBehaviour.blockpage_200(), censored_sources=None)
        server = functools.partial(
            serve_site,
            tls=self.rogue_ca.server_context(["blockpage.lab"]),
            policy=blockpage_policy,
        )
        self.thread.start(server, BLOCKPAGE_IP, self.web.network.port)
        canary = self.web.site(cert_names=[CANARY_DOMAIN])
        self.zone.set(CANARY_DOMAIN, [canary.ip])
        self.canary = canary
        self.control_url = self._start_control()
        self.doh_ip, self.doh_url = self._start_doh()

    def _start_control(self) -> str:
        from probe.server.asgi import serve, server_config
        from probe.server.control.app import ControlConfig, create_control_app

        settings = ProbeSettings(
            resolvers=(self.honest_address,),
            system_resolver=False,
            ca_bundle=self.ca.ca_pem_path,
            source_address=CONTROL_SOURCE,
            timeouts=self.timeouts,
            comparison_sni=None,
        )
        app = create_control_app(ControlConfig(settings=settings, allow_private=True, request_timeout=30))
        config = server_config(f"{self.web.next_ip()}:0", errorlog=None)
        binds = self.thread.start(functools.partial(serve, app, config))
        return binds[0]

    def _start_doh(self) -> tuple[str, str]:
        """A DoH server answering like the honest resolver, at ``https://dns.kuzot-lab.net:PORT``."""
        from probe.lab.doh_server import create_doh_app
        from probe.server.asgi import serve, server_config

        cert, key = self.ca.issue([DOH_DOMAIN])
        ip = self.web.next_ip()
        config = server_config(f"{ip}:0", errorlog=None)
        config.certfile, config.keyfile = str(cert), str(key)
        doh_app = create_doh_app(self.honest_resolver)
        binds = self.thread.start(functools.partial(serve, doh_app, config))
        port = binds[0].rsplit(":", 1)[1]
        return ip, f"https://{DOH_DOMAIN}:{port}/dns-query"

    # --- scenarios --------------------------------------------------------------------------

    def add(self, scenario: Scenario) -> LabTarget:
        """Serve ``scenario``'s domain as the scenario says."""
        behaviour = scenario.site
        sources: tuple[str, ...] | None = (PROBE_SOURCE,)
        if scenario.down_for_everyone:
            sources = None
            behaviour = behaviour or WebBehaviour.reset()
        site = self.web.site(
            behaviour, https=scenario.https, cert_names=[scenario.domain], censored_sources=sources
        )
        self.zone.set(scenario.domain, [site.ip])
        if scenario.dns is not None:
            self.isp_resolver.set_lie(scenario.domain, scenario.dns)
        target = LabTarget(scenario, site)
        self.targets[scenario.name] = target
        return target

    def play(self, scenario: LabScenario) -> list[LabTarget]:
        """Serve every row of a scenario file, as the namespace lab would."""
        return [self.add(scenario_for(rule)) for rule in scenario.sites]

    def link_down(self) -> None:
        """The volunteer's own connection dies: the ISP resolver goes silent and every
        site, canary included, stops answering the probe."""
        self.isp_resolver.set_lie("*", DnsBehaviour.silence())
        for name in [*(t.scenario.domain for t in self.targets.values()), CANARY_DOMAIN]:
            self.isp_resolver.set_lie(name, DnsBehaviour.silence())

    @property
    def canary_url(self) -> str:
        return self.canary.url(CANARY_DOMAIN)

    @property
    def ca_bundle(self) -> Path:
        return self.ca.ca_pem_path

    def resolver_arg(self) -> str:
        ip, port = self.isp_address
        return f"{ip}:{port}"

    def probe_args(self, *, control: bool = True) -> list[str]:
        args = [
            "--resolver",
            self.resolver_arg(),
            "--no-system-resolver",
            "--ca-bundle",
            str(self.ca_bundle),
            "--canary",
            self.canary_url,
            "--timeout",
            str(self.timeouts.connect),
        ]
        if control:
            args += ["--control", self.control_url]
        return args

    def doh_args(self) -> list[str]:
        """Options for a run whose only control is the lab's DoH resolver."""
        return ["--doh-control", self.doh_url, "--doh-connect-ip", self.doh_ip]

    def probe_settings(self, **changes: object) -> ProbeSettings:
        values: dict[str, object] = {
            "resolvers": (self.isp_address,),
            "system_resolver": False,
            "ca_bundle": self.ca_bundle,
            "timeouts": self.timeouts,
            "dns_window": 0.2,
        }
        values.update(changes)
        # mypy: values maps ProbeSettings' own field names to values of their types
        return ProbeSettings(**values)  # type: ignore[arg-type]


#: How the loopback lab plays each method of the one scenario model: the ISP resolver's
#: lie and what the site does to the probe's source address.
_PLAYS: dict[str, Callable[[SiteRule], tuple[DnsBehaviour | None, WebBehaviour | None]]] = {
    "none": lambda rule: (None, None),
    "dns_blockpage": lambda rule: (DnsBehaviour.address(BLOCKPAGE_IP), None),
    "dns_nxdomain": lambda rule: (DnsBehaviour.nxdomain(), None),
    "dns_injection": lambda rule: (DnsBehaviour.inject(BLOCKPAGE_IP, delay=0.05), None),
    "ip_reset": lambda rule: (None, WebBehaviour.reset()),
    "ip_blackhole": lambda rule: (None, WebBehaviour.blackhole()),
    "sni_reset": lambda rule: (None, WebBehaviour.sni_reset(rule.domain)),
    "http_blockpage_200": lambda rule: (None, WebBehaviour.blockpage_200()),
    "http_redirect": lambda rule: (None, WebBehaviour.blockpage_redirect()),
    "site_down": lambda rule: (None, None),  # down_for_everyone: refused for all
    "slow": lambda rule: (None, WebBehaviour.slow(rule.delay_ms / 1000)),
}


def scenario_for(rule: SiteRule) -> Scenario:
    """The loopback lab's play of one row of a scenario file (:mod:`probe.lab.scenarios`)."""
    try:
        play = _PLAYS[rule.block]
    except KeyError:
        raise ScenarioError(f"{rule.domain}: the loopback lab cannot play {rule.block!r}") from None
    dns, site = play(rule)
    return Scenario(
        rule.label,
        rule.domain,
        dns=dns,
        site=site,
        down_for_everyone=rule.block == "site_down",
        https=rule.scheme == "https",
        expect_status=rule.expect.status,
        expect_blocking=rule.expect.blocking,
        expect_confirmed=rule.expect.confirmed,
        notes=rule.notes,
    )


#: The matrix row only the loopback lab plays (see :data:`~probe.lab.scenarios.LOOPBACK_METHODS`).
_INJECTION = SiteRule("kloop.kg", block="dns_injection", expect=Expect(status="blocked", blocking="dns"))


def matrix() -> list[Scenario]:
    """The verdict scenario matrix (issue "Verdicts"): one row per way a site can be
    reached, blocked or down, with the verdict the project must give; the namespace
    lab's ``matrix`` scenario file, plus DNS injection."""
    return [scenario_for(rule) for rule in (*load_scenario("matrix").sites, _INJECTION)]
