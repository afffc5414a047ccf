"""The namespace lab: a volunteer, a censoring ISP, the internet and a control helper,
as four network namespaces running the real daemons ISPs use.

Why namespaces when the loopback lab exists: the loopback lab imitates blocking in
Python; this one blocks the way an ISP does (a lying dnsmasq, nftables resets and
drops, an iptables string match on the ClientHello, a DNAT to a blockpage server) and
routes the probe's packets through a real router, so the probe's system resolver, its
kernel's TCP and its TLS library meet the censorship as they would in Bishkek.

Topology (addresses in :mod:`probe.lab.daemons`; all in 198.18.0.0/15, and no
namespace is connected to the host's network, so nothing can leave the machine)::

    kz-vol-S --- kz-isp-S --- kz-net-S --- kz-ctl-S
    volunteer    ISP router,  sites (nginx), control helper
    (the probe)  resolver,    honest resolver
                 blockpage

``S`` is a short random suffix, so two labs never collide.  The volunteer's
``/etc/netns/kz-vol-S/resolv.conf`` names the ISP resolver; ``ip netns exec`` mounts it
over ``/etc/resolv.conf``, so getaddrinfo in the probe asks the ISP.

Use::

    with NetnsLab("matrix") as lab:
        result = lab.exec_probe(["--db", "sqlite:///x.db", *lab.url_args()])
        lab.set_scenario("offline")   # reconfigure without a rebuild

Everything (daemons, namespaces, veths, ``/etc/netns`` entries, the state directory
when the lab made it) is removed by :meth:`NetnsLab.down`, which ``__exit__``, Ctrl-C
and SIGTERM reach, and which ``kuzot lab down`` can run from another process through
the state file.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probe.lab import daemons as d
from probe.lab.namespaces import (
    REGISTRY,
    REQUIRED_TOOLS,
    ROLES,
    STATE_FILE,
    LabError,
    _port_open,
    _process_is_ours,
    _run,
    environment_problem,
    in_netns,
    running_labs,
    teardown,
)
from probe.lab.scenarios import ADDRESS_METHODS, LabScenario, load_scenario

if TYPE_CHECKING:
    import trustme


# --- the lab -----------------------------------------------------------------------------------


class NetnsLab:
    """A running namespace lab; a context manager (see the module docstring).

    ``timeout`` is the probe's ``--timeout`` in :meth:`exec_probe`: short, so that a
    blackholed site costs seconds, not minutes.
    """

    def __init__(
        self,
        scenario: str | Path | LabScenario = "matrix",
        *,
        state_dir: Path | None = None,
        suffix: str | None = None,
        timeout: float = 2.0,
    ) -> None:
        self.scenario = scenario if isinstance(scenario, LabScenario) else load_scenario(scenario)
        self.suffix = suffix or secrets.token_hex(2)
        self.namespaces = {role: f"kz-{role}-{self.suffix}" for role in ROLES}
        self.owns_state_dir = state_dir is None
        self.state_dir = (
            Path(tempfile.mkdtemp(prefix=f"kuzot-lab-{self.suffix}-")) if state_dir is None else state_dir
        )
        self.timeout = timeout
        self._pids: dict[str, int] = {}
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._addresses: dict[str, str] = {}
        self._served: tuple[tuple[str, str], ...] = ()
        self._sites: list[d.SitePlan] = []
        self._previous_sigterm: Any = None
        self._up = False

    # --- public API ----------------------------------------------------------------------------

    @property
    def vol(self) -> str:
        return self.namespaces["vol"]

    @property
    def control_url(self) -> str:
        return f"http://{d.CTL_IP}:{d.CONTROL_PORT}/"

    @property
    def ca_bundle(self) -> Path:
        return self.state_dir / "ca.pem"

    @property
    def canary_url(self) -> str:
        return f"https://{d.CANARY_DOMAIN}/"

    @property
    def target_urls(self) -> dict[str, str]:
        """The URL to measure for each domain of the current scenario."""
        return {site.domain: site.url for site in self.scenario.sites}

    def url_args(self) -> list[str]:
        """``--url`` options for every target of the current scenario."""
        return [arg for url in self.target_urls.values() for arg in ("--url", url)]

    def probe_command(self, args: Sequence[str], *, control: bool = True) -> list[str]:
        """The ``kuzot run`` command line the volunteer runs, with the lab's CA, control
        helper (unless ``control`` is false), canary and timeout unless ``args`` sets them."""
        extra: list[str] = []
        defaults = {
            "--ca-bundle": str(self.ca_bundle),
            "--canary": self.canary_url,
            "--timeout": str(self.timeout),
        }
        if control:
            defaults["--control"] = self.control_url
        for option, value in defaults.items():
            if option not in args and not (option == "--canary" and "--no-canaries" in args):
                extra += [option, value]
        return ["ip", "netns", "exec", self.vol, sys.executable, "-m", "probe", "run", *extra, *args]

    def exec_probe(
        self, args: Sequence[str], *, control: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kuzot run ARGS`` in the volunteer's namespace and wait for it."""
        env = {**os.environ, "KUZOT_ACCEPT_RISKS": "1"}
        command = self.probe_command(args, control=control)
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, cwd=self.state_dir
        )

    def run_in(self, role: str, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a command in one of the lab's namespaces (``vol``, ``isp``, ``net``, ``ctl``)."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(["ip", "netns", "exec", self.namespaces[role], *argv], **kwargs)

    def __enter__(self) -> NetnsLab:
        self.up()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        problems = self.down()
        if not problems:
            return
        message = "the lab was not torn down completely: " + "; ".join(problems)
        if exc is not None:
            # Do not hide the error that ended the block; attach what is left behind.
            exc.add_note(message)
            return
        raise LabError(message)

    def up(self) -> None:
        """Build the lab and start its daemons; on any failure, tear down what was built."""
        problem = environment_problem()
        if problem:
            raise LabError(problem)
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.state_dir, 0o700)
            self._write_state()
            REGISTRY.mkdir(parents=True, exist_ok=True)
            link = REGISTRY / self.suffix
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.symlink_to(self.state_dir.resolve())
            self._build_network()
            self._make_certificates()
            self._start_fixed_daemons()
            self._apply(self.scenario, first=True)
            self._wait_ready()
            self._up = True
        except BaseException:
            self.down()
            raise

    def down(self) -> list[str]:
        """Remove everything; safe to call twice.  Returns what could not be removed."""
        problems = teardown(self.state_dir) if (self.state_dir / STATE_FILE).exists() else []
        for child in self._children.values():
            with contextlib.suppress(Exception):
                child.wait(timeout=1)
        self._children.clear()
        self._pids.clear()
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None
        self._up = False
        return problems

    def set_scenario(self, scenario: str | Path | LabScenario) -> None:
        """Switch to another scenario without rebuilding: new resolver configuration,
        firewall rules, delays and link state; new sites get addresses and certificates."""
        new = scenario if isinstance(scenario, LabScenario) else load_scenario(scenario)
        self._apply(new, first=False)
        self.scenario = new
        self._write_state()

    # --- construction --------------------------------------------------------------------------

    def _ip(self, role: str, *args: str) -> None:
        _run(["ip", "-n", self.namespaces[role], *args])

    def _ip_batch(self, role: str, commands: list[str]) -> None:
        if commands:
            _run(["ip", "-n", self.namespaces[role], "-batch", "-"], stdin="\n".join(commands) + "\n")

    def _sysctl(self, role: str, *settings: str) -> None:
        _run(["ip", "netns", "exec", self.namespaces[role], "sysctl", "-qw", *settings])

    def _build_network(self) -> None:
        for namespace in self.namespaces.values():
            _run(["ip", "netns", "add", namespace])
        netns_etc = Path("/etc/netns") / self.vol
        netns_etc.mkdir(parents=True, exist_ok=True)
        (netns_etc / "resolv.conf").write_text(f"nameserver {d.ISP_VOL_IP}\n")
        for role, name, peer, peer_role in d.VETHS:
            peer_ns = self.namespaces[peer_role]
            self._ip(
                role, "link", "add", "name", name, "type", "veth", "peer", "name", peer, "netns", peer_ns
            )
        for role, commands in d.addressing().items():
            self._ip_batch(role, commands)
        self._sysctl("isp", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0")
        self._sysctl("isp", f"net.ipv4.conf.{d.DELAY_DEVICE}.rp_filter=0")
        self._sysctl("net", "net.ipv4.ip_forward=1")

    def _make_certificates(self) -> None:
        import trustme  # the 'lab' extra; environment_problem() has checked it is there

        self._ca = trustme.CA(organization_name="Kuzot Netns Lab CA")
        self._ca.cert_pem.write_to_path(str(self.ca_bundle))
        (self.state_dir / "certs").mkdir(exist_ok=True)
        rogue = trustme.CA(organization_name="Lab ISP Blockpage CA")
        self._blockpage_cert = self._write_leaf(rogue, "blockpage", ["blockpage.lab"])
        self._canary_cert = self._write_leaf(self._ca, "canary", [d.CANARY_DOMAIN])

    def _write_leaf(self, ca: trustme.CA, name: str, hostnames: list[str]) -> tuple[Path, Path]:
        leaf = ca.issue_cert(*hostnames)
        cert, key = self.state_dir / "certs" / f"{name}.pem", self.state_dir / "certs" / f"{name}.key"
        cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(key))
        return cert, key

    def _cert_for(self, scenario: LabScenario, domain: str) -> tuple[Path, Path]:
        parent = scenario.wildcard_parent
        if parent and domain.endswith("." + parent):
            cert = self.state_dir / "certs" / f"wildcard.{parent}.pem"
            if not cert.exists():
                return self._write_leaf(self._ca, f"wildcard.{parent}", [f"*.{parent}"])
            return cert, cert.with_suffix(".key")
        cert = self.state_dir / "certs" / f"{domain}.pem"
        if not cert.exists():
            return self._write_leaf(self._ca, domain, [domain])
        return cert, cert.with_suffix(".key")

    def _plan_sites(self, scenario: LabScenario) -> list[d.SitePlan]:
        """Give each domain an address (kept across scenario switches) and a certificate."""
        plans: list[d.SitePlan] = []
        shared = [f"198.19.250.{10 + k}" for k in range(scenario.shared_addresses)]
        for index, rule in enumerate(scenario.sites):
            if rule.domain not in self._addresses:
                if shared and rule.block not in ADDRESS_METHODS:
                    self._addresses[rule.domain] = shared[index % len(shared)]
                else:
                    used = set(self._addresses.values())
                    n = 0
                    while d.site_address(n) in used:
                        n += 1
                    self._addresses[rule.domain] = d.site_address(n)
            cert, key = self._cert_for(scenario, rule.domain)
            plans.append(d.SitePlan(rule, self._addresses[rule.domain], cert, key))
        return plans

    # --- daemons -------------------------------------------------------------------------------

    def _spawn(self, name: str, role: str, argv: Sequence[str]) -> None:
        log = open(self.state_dir / f"{name}.out", "ab")  # noqa: SIM115 - the child keeps it
        with log:
            child = subprocess.Popen(
                ["ip", "netns", "exec", self.namespaces[role], *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us, and we tear down in order
                cwd=self.state_dir,
            )
        self._children[name] = child
        self._pids[name] = child.pid
        self._write_state()

    def _stop(self, name: str) -> None:
        child = self._children.pop(name, None)
        self._pids.pop(name, None)
        if child is None:
            return
        child.terminate()
        try:
            child.wait(timeout=2)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def _start_fixed_daemons(self) -> None:
        """The daemons whose configuration never depends on the scenario."""
        work = self.state_dir
        (work / "nginx-blockpage-tmp").mkdir(exist_ok=True)
        conf = work / "nginx-blockpage.conf"
        conf.write_text(d.blockpage_nginx_conf(work, *self._blockpage_cert))
        self._spawn(
            "nginx-blockpage", "isp", ["nginx", "-e", str(work / "nginx-blockpage.log"), "-c", str(conf)]
        )
        self._spawn(
            "control",
            "ctl",
            [
                sys.executable, "-m", "probe", "control", "serve",
                "--listen", f"{d.CTL_IP}:{d.CONTROL_PORT}",
                "--resolver", d.HONEST_DNS_IP, "--no-system-resolver",
                "--ca-bundle", str(self.ca_bundle), "--allow-private-targets",
                "--timeout", str(self.timeout),
            ],
        )  # fmt: skip

    def _restart_dnsmasq(self, name: str, role: str, text: str) -> None:
        conf = self.state_dir / f"{name}.conf"
        conf.write_text(text)
        self._stop(name)
        self._spawn(name, role, ["dnsmasq", "--keep-in-foreground", f"--conf-file={conf}"])

    def _apply(self, scenario: LabScenario, *, first: bool) -> None:
        """Make the running lab play ``scenario``."""
        work = self.state_dir
        sites = self._plan_sites(scenario)
        served = tuple(sorted((s.domain, s.ip) for s in sites))
        if served != self._served:
            new_ips = sorted({s.ip for s in sites} - {ip for _, ip in self._served})
            # Replace, not add: an address may already be on lo from an earlier scenario.
            self._ip_batch("net", [f"addr replace {ip}/32 dev lo" for ip in new_ips])
            self._restart_dnsmasq(
                "dnsmasq-honest",
                "net",
                d.honest_dnsmasq_conf(sites, work / "honest.pid", work / "honest.log"),
            )
            (work / "nginx-sites-tmp").mkdir(exist_ok=True)
            conf = work / "nginx-sites.conf"
            conf.write_text(d.sites_nginx_conf(work, sites, self._canary_cert))
            self._stop("nginx-sites")
            self._spawn("nginx-sites", "net", ["nginx", "-e", str(work / "nginx-sites.log"), "-c", str(conf)])
            self._served = served
        self._restart_dnsmasq(
            "dnsmasq-isp", "isp", d.isp_dnsmasq_conf(sites, work / "isp.pid", work / "isp.log")
        )
        # Atomic replacement: declare (so the delete cannot fail), delete, define.
        for role, table, rules in (
            ("isp", "kuzot_isp", d.isp_nft_rules(sites, scenario)),
            ("net", "kuzot_net", d.net_nft_rules(sites)),
        ):
            text = f"table inet {table} {{}}\ndelete table inet {table}\n{rules}"
            (work / f"nft-{role}.conf").write_text(text)
            _run(["ip", "netns", "exec", self.namespaces[role], "nft", "-f", str(work / f"nft-{role}.conf")])
        _run(["ip", "netns", "exec", self.namespaces["isp"], "iptables", "-F", "FORWARD"])
        for command in d.sni_iptables_rules(sites):
            _run(["ip", "netns", "exec", self.namespaces["isp"], *command])
        delay_conf = work / "delay.json"
        delay_conf.write_text(json.dumps(d.delayer_config(scenario, sites)))
        delayer = self._pids.get("delayer")
        if delayer is not None:
            os.kill(delayer, signal.SIGHUP)  # only ever after start-up: it reads its config first
        else:
            argv = [sys.executable, "-m", "probe.lab.daemons", "delayer", d.DELAY_DEVICE, str(delay_conf)]
            self._spawn("delayer", "isp", argv)
        self._ip("isp", "link", "set", "to-vol", "up" if scenario.link.up else "down")
        self._sites = sites
        if not first:
            self._wait_ready()

    def _wait_ready(self, timeout: float = 15.0) -> None:
        """Wait until every daemon accepts connections (dnsmasq listens on TCP too)."""
        checks = [
            ("net", d.HONEST_DNS_IP, 53),
            ("net", d.CANARY_IP, 443),
            ("isp", d.ISP_VOL_IP, 53),
            ("isp", d.BLOCKPAGE_IP, 80),
            ("ctl", d.CTL_IP, d.CONTROL_PORT),
        ]
        deadline = time.monotonic() + timeout
        for role, ip, port in checks:
            while not in_netns(self.namespaces[role], functools.partial(_port_open, ip, port)):
                dead = [name for name, child in self._children.items() if child.poll() is not None]
                if dead:
                    raise LabError(f"lab daemon(s) exited: {', '.join(dead)} (logs in {self.state_dir})")
                if time.monotonic() > deadline:
                    raise LabError(f"{ip}:{port} in {self.namespaces[role]} not ready after {timeout} s")
                time.sleep(0.02)
        # The delay line is ready when its process holds the TUN device (carrier up).
        while "LOWER_UP" not in _run(
            ["ip", "-n", self.namespaces["isp"], "-o", "link", "show", d.DELAY_DEVICE]
        ):
            if time.monotonic() > deadline:
                raise LabError(f"the delay line did not attach to {d.DELAY_DEVICE} (log in {self.state_dir})")
            time.sleep(0.02)

    def _write_state(self) -> None:
        state = {
            "suffix": self.suffix,
            "scenario": self.scenario.name,
            "namespaces": list(self.namespaces.values()),
            "pids": self._pids,
            "state_dir": str(self.state_dir),
            "owns_state_dir": self.owns_state_dir,
            "control_url": self.control_url,
            "ca_bundle": str(self.ca_bundle),
            "canary_url": self.canary_url,
            "targets": self.target_urls,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        tmp = self.state_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_dir / STATE_FILE)

    def detach(self) -> None:
        """Leave the lab running after this object is gone (``kuzot lab up``): forget
        the children so that nothing waits for them; ``kuzot lab down`` removes them."""
        self._children.clear()
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None


def _sigterm_to_interrupt(signum: int, frame: object) -> None:
    """SIGTERM while a lab is up: unwind like Ctrl-C, so ``finally`` blocks tear down."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def netns_lab(scenario: str | LabScenario = "matrix", **kwargs: Any) -> Iterator[NetnsLab]:
    """``with netns_lab("matrix") as lab:``, the function spelling of :class:`NetnsLab`."""
    with NetnsLab(scenario, **kwargs) as lab:
        yield lab


__all__ = [
    "REGISTRY",
    "REQUIRED_TOOLS",
    "ROLES",
    "STATE_FILE",
    "LabError",
    "NetnsLab",
    "_process_is_ours",
    "environment_problem",
    "in_netns",
    "netns_lab",
    "running_labs",
    "teardown",
]
