"""Configuration for the namespace lab's real daemons, rendered from a scenario.

Why rendering is separate from running: every blocking method becomes a few lines
of dnsmasq, nginx, nftables or iptables configuration, and those lines are what a
reader checks against how ISPs really block.  Functions here are pure (scenario and
addresses in, text out), so they are easy to test and to read; :mod:`probe.lab.netns`
writes the files and runs the programs.

The addressing plan (all in 198.18.0.0/15, the benchmarking range, and only inside the
lab's namespaces; nothing is routed to or from the host's own network)::

    kz-vol 198.18.1.2 --- 198.18.1.1 kz-isp 198.18.2.1 --- 198.18.2.2 kz-net 198.18.3.1 --- 198.18.3.2 kz-ctl
                           ISP resolver,                    sites 198.19.1.x,              control helper
                           blockpage 198.18.66.66           honest resolver 198.19.0.53

Why a user-space delay line instead of ``tc netem``: the kernels this project's CI runs
on may lack ``sch_netem`` (and ``prio``), as the development VM does.  A TUN device in
kz-isp, fed by an nftables mark and a policy route, with :func:`run_delayer` reading
packets, holding them and writing them back, adds delay and loss with nothing but
``/dev/net/tun``.  See :func:`delay_rules`.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import ipaddress
import json
import os
import random
import select
import signal
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from probe.lab.scenarios import LabScenario, SiteRule

# --- the addressing plan ---------------------------------------------------------------------

VOL_IP = "198.18.1.2"
ISP_VOL_IP = "198.18.1.1"  # also the ISP's resolver, which the volunteer's resolv.conf names
ISP_NET_IP = "198.18.2.1"
NET_ISP_IP = "198.18.2.2"
NET_CTL_IP = "198.18.3.1"
CTL_IP = "198.18.3.2"
BLOCKPAGE_IP = "198.18.66.66"
HONEST_DNS_IP = "198.19.0.53"
CANARY_IP = "198.19.0.2"
CANARY_DOMAIN = "canary.kuzot-lab.net"
CONTROL_PORT = 8787
#: The port on the blockpage server that answers every request with Homeline's redirect.
REDIRECT_PORT = 8080
HOMELINE_DOMAIN = "homeline.kg"
HOMELINE_BLOCKPAGE_URL = "http://homeline.kg/access/blockpage.html"
#: The TUN device of the delay line, in kz-isp, and the firewall mark that routes into it.
DELAY_DEVICE = "dly0"
DELAY_MARK = 0x4B5A
DELAY_TABLE = 4242

BLOCKPAGE_MARKER = "KUZOT-LAB-BLOCKPAGE"
ELCAT_PHRASE = '<p class="error">Access to the requested website has been blocked by judicial decision!</p>'
BLOCKPAGE_HTML = (
    "<!DOCTYPE html><html><head><title>Access denied</title></head><body>"
    f"<h1>Access denied</h1>{ELCAT_PHRASE}<p>{BLOCKPAGE_MARKER}</p></body></html>"
)


def site_address(index: int) -> str:
    """The address of the ``index``-th site address (198.19.1.10 upwards)."""
    return str(ipaddress.ip_address("198.19.1.10") + index)


@dataclass(frozen=True)
class SitePlan:
    """A domain as served: its rule, its address in kz-net, its certificate files."""

    rule: SiteRule
    ip: str
    cert: Path
    key: Path

    @property
    def domain(self) -> str:
        return self.rule.domain


# --- dnsmasq ---------------------------------------------------------------------------------


#: The veth pairs between the namespaces: (namespace, its end, the peer's end, the peer's namespace).
VETHS = (
    ("isp", "to-vol", "uplink", "vol"),
    ("isp", "to-net", "to-isp", "net"),
    ("net", "to-ctl", "uplink", "ctl"),
)


def addressing() -> dict[str, list[str]]:
    """Each namespace's ``ip -batch`` commands once its veths exist: addresses, links
    up, routes (and on the ISP router the delay line's TUN device and policy rules)."""
    return {
        "vol": [
            "link set lo up",
            f"addr add {VOL_IP}/24 dev uplink",
            "link set uplink up",
            f"route add default via {ISP_VOL_IP}",
        ],
        "isp": [
            "link set lo up",
            f"addr add {BLOCKPAGE_IP}/32 dev lo",
            f"addr add {ISP_VOL_IP}/24 dev to-vol",
            f"addr add {ISP_NET_IP}/24 dev to-net",
            "link set to-vol up",
            "link set to-net up",
            f"route add default via {NET_ISP_IP}",
            # The delay line: marked packets go into the TUN device first, even those
            # for the ISP itself (so the local table moves behind the mark's rule).
            f"tuntap add dev {DELAY_DEVICE} mode tun",
            f"link set {DELAY_DEVICE} up",
            f"rule add pref 10 fwmark {DELAY_MARK} table {DELAY_TABLE}",
            "rule add pref 100 table local",
            "rule del pref 0 table local",
            f"route add default dev {DELAY_DEVICE} table {DELAY_TABLE}",
        ],
        "net": [
            "link set lo up",
            f"addr add {HONEST_DNS_IP}/32 dev lo",
            f"addr add {CANARY_IP}/32 dev lo",
            f"addr add {NET_ISP_IP}/24 dev to-isp",
            f"addr add {NET_CTL_IP}/24 dev to-ctl",
            "link set to-isp up",
            "link set to-ctl up",
            f"route add 198.18.1.0/24 via {ISP_NET_IP}",
            f"route add {BLOCKPAGE_IP}/32 via {ISP_NET_IP}",
        ],
        "ctl": [
            "link set lo up",
            f"addr add {CTL_IP}/24 dev uplink",
            "link set uplink up",
            f"route add default via {NET_CTL_IP}",
        ],
    }


def _dnsmasq_common(listen: str, pid_file: Path, log_file: Path) -> list[str]:
    return [
        "# rendered by probe.lab.daemons; do not edit",
        "no-resolv",
        "no-hosts",
        "no-poll",
        "bind-interfaces",
        f"listen-address={listen}",
        "except-interface=lo" if listen != HONEST_DNS_IP else "",
        f"pid-file={pid_file}",
        f"log-facility={log_file}",
        "user=root",
        "cache-size=0",  # so a restart or a new scenario never serves a stale answer
        "dns-forward-max=1000",
    ]


def honest_dnsmasq_conf(sites: list[SitePlan], pid_file: Path, log_file: Path) -> str:
    """The uncensored resolver in kz-net: the lab zone's true addresses, exact names only."""
    lines = _dnsmasq_common(HONEST_DNS_IP, pid_file, log_file)
    # Authoritative for every name: unknown names get NXDOMAIN, AAAA queries NODATA.
    lines.append("local=/#/")
    lines.append(f"host-record={CANARY_DOMAIN},{CANARY_IP}")
    lines.append(f"host-record={HOMELINE_DOMAIN},{BLOCKPAGE_IP}")
    lines += [f"host-record={s.domain},{s.ip}" for s in sites]
    return "\n".join(line for line in lines if line) + "\n"


def isp_dnsmasq_conf(sites: list[SitePlan], pid_file: Path, log_file: Path) -> str:
    """The ISP's resolver in kz-isp: forwards to the honest one, lies where told.

    ``address=/name/IP`` answers IP for the name (and its subdomains), as ISPs' DNS
    redirection does; ``address=/name/`` with no address answers NXDOMAIN.
    """
    lines = _dnsmasq_common(ISP_VOL_IP, pid_file, log_file)
    lines.append(f"server={HONEST_DNS_IP}")
    for site in sites:
        if site.rule.block == "dns_blockpage":
            lines.append(f"address=/{site.domain}/{BLOCKPAGE_IP}")
        elif site.rule.block == "dns_nxdomain":
            lines.append(f"address=/{site.domain}/")
    return "\n".join(line for line in lines if line) + "\n"


# --- nginx -----------------------------------------------------------------------------------


def _nginx_head(work: Path, name: str, workers: int) -> list[str]:
    temp = work / f"nginx-{name}-tmp"
    return [
        "# rendered by probe.lab.daemons; do not edit",
        "daemon off;",
        "master_process on;",
        "user root;",
        f"worker_processes {workers};",
        f"pid {work / f'nginx-{name}.pid'};",
        f"error_log {work / f'nginx-{name}.log'} warn;",
        "events { worker_connections 4096; }",
        "http {",
        "  access_log off;",
        "  default_type text/html;",
        "  keepalive_timeout 5s;",
        "  server_tokens off;",
        "  server_names_hash_max_size 8192;",
        "  server_names_hash_bucket_size 128;",
        "  ssl_protocols TLSv1.2 TLSv1.3;",
        f"  client_body_temp_path {temp}/body;",
        f"  proxy_temp_path {temp}/proxy;",
        f"  fastcgi_temp_path {temp}/fastcgi;",
        f"  uwsgi_temp_path {temp}/uwsgi;",
        f"  scgi_temp_path {temp}/scgi;",
    ]


def _page(domain: str) -> str:
    body = (
        f"<!DOCTYPE html><html><head><title>{domain} - news</title></head><body>"
        f"<h1>{domain}</h1><p>Independent news from the Kuzot lab. "
        + "Lorem ipsum. " * 40
        + "</p></body></html>"
    )
    return body.replace('"', '\\"')


def sites_nginx_conf(work: Path, sites: list[SitePlan], canary_cert: tuple[Path, Path]) -> str:
    """Every lab site, one ``server`` per domain on its address, ports 80 and 443."""
    lines = _nginx_head(work, "sites", workers=2)
    served = [(CANARY_DOMAIN, CANARY_IP, *canary_cert), *((s.domain, s.ip, s.cert, s.key) for s in sites)]
    for domain, ip, cert, key in served:
        lines += [
            "  server {",
            f"    listen {ip}:80;",
            f"    listen {ip}:443 ssl;",
            f"    server_name {domain};",
            f"    ssl_certificate {cert};",
            f"    ssl_certificate_key {key};",
            f'    location / {{ return 200 "{_page(domain)}"; }}',
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def blockpage_nginx_conf(work: Path, cert: Path, key: Path) -> str:
    """The ISP's blockpage server in kz-isp.

    Port 80 and 443 serve the blockpage for any name (443 with a certificate from a CA
    nobody trusts, as a real ISP's does); port 8080 answers everything with Homeline's
    redirect, and the redirect's target (homeline.kg) is port 80 here again.
    """
    page = BLOCKPAGE_HTML.replace('"', '\\"')
    lines = _nginx_head(work, "blockpage", workers=1)
    lines += [
        "  server {",
        f"    listen {BLOCKPAGE_IP}:80 default_server;",
        f"    listen {BLOCKPAGE_IP}:443 ssl default_server;",
        "    server_name _;",
        f"    ssl_certificate {cert};",
        f"    ssl_certificate_key {key};",
        f'    location / {{ return 200 "{page}"; }}',
        "  }",
        "  server {",
        f"    listen {BLOCKPAGE_IP}:{REDIRECT_PORT} default_server;",
        "    server_name _;",
        f"    location / {{ return 302 {HOMELINE_BLOCKPAGE_URL}; }}",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


# --- the ISP's and the internet's packet filters --------------------------------------------


def isp_nft_rules(sites: list[SitePlan], delay: LabScenario | None = None) -> str:
    """nftables rules for kz-isp: IP resets and drops, HTTP diversion to the blockpage.

    Why the reset waits for data (``ip length > 80``): an ISP that resets by address
    lets the handshake through and kills the first segment carrying data, so the probe
    sees ``connection_reset`` in TLS or HTTP; a RST to the SYN would read as a refused
    connection, which is what a closed port looks like.
    """
    forward: list[str] = []
    nat: list[str] = []
    for site in sites:
        block = site.rule.block
        if block == "ip_reset":
            forward.append(f"ip daddr {site.ip} tcp dport {{ 80, 443 }} ip length > 80 reject with tcp reset")
        elif block == "ip_blackhole":
            forward.append(f"ip daddr {site.ip} drop")
        elif block == "http_blockpage_200":
            nat.append(f"ip daddr {site.ip} tcp dport 80 dnat ip to {BLOCKPAGE_IP}:80")
        elif block == "http_redirect":
            nat.append(f"ip daddr {site.ip} tcp dport 80 dnat ip to {BLOCKPAGE_IP}:{REDIRECT_PORT}")
    out = [
        "table inet kuzot_isp {",
        "  chain forward {",
        "    type filter hook forward priority 0; policy accept;",
        *(f"    {rule}" for rule in forward),
        "  }",
        "  chain prerouting {",
        "    type nat hook prerouting priority -100; policy accept;",
        *(f"    {rule}" for rule in nat),
        "  }",
    ]
    if delay is not None:
        out += delay_rules(delay, sites)
    out.append("}")
    return "\n".join(out) + "\n"


def delay_rules(scenario: LabScenario, sites: list[SitePlan]) -> list[str]:
    """Mark the packets the delay line must hold; a policy route sends marked packets
    into the TUN device, and packets coming back out of it are never marked again."""
    rules: list[str] = []
    if scenario.link.delay_ms or scenario.link.loss_percent:
        rules.append(f'iifname "to-vol" meta mark set {DELAY_MARK}')
    for site in sites:
        if site.rule.block == "slow":
            rules.append(f'iifname "to-net" ip saddr {site.ip} meta mark set {DELAY_MARK}')
    return [
        "  chain delay {",
        "    type filter hook prerouting priority -300; policy accept;",
        *(f"    {rule}" for rule in rules),
        "  }",
    ]


def net_nft_rules(sites: list[SitePlan]) -> str:
    """nftables rules for kz-net: sites that are down for everyone refuse connections."""
    rules = [
        f"ip daddr {s.ip} tcp dport {{ 80, 443 }} reject with tcp reset"
        for s in sites
        if s.rule.block == "site_down"
    ]
    return (
        "\n".join(
            [
                "table inet kuzot_net {",
                "  chain input {",
                "    type filter hook input priority 0; policy accept;",
                *(f"    {rule}" for rule in rules),
                "  }",
                "}",
            ]
        )
        + "\n"
    )


def sni_iptables_rules(sites: list[SitePlan]) -> list[list[str]]:
    """iptables commands for kz-isp: a TCP reset when the ClientHello names a blocked site.

    Why iptables: nftables cannot search a packet for a string; the xtables ``string``
    match can, and it is how the simplest DPI boxes find a name in the SNI extension.
    """
    match = ["-p", "tcp", "--dport", "443", "-m", "string", "--algo", "bm"]
    action = ["-j", "REJECT", "--reject-with", "tcp-reset"]
    return [
        ["iptables", "-A", "FORWARD", *match, "--string", s.domain, *action]
        for s in sites
        if s.rule.block == "sni_reset"
    ]


# --- the delay line (a netem substitute) -------------------------------------------------------


def delayer_config(scenario: LabScenario, sites: list[SitePlan]) -> dict[str, object]:
    """What :func:`run_delayer` reads: the volunteer's link delay and loss, per-site delays."""
    return {
        "volunteer": VOL_IP,
        "link_delay_ms": scenario.link.delay_ms,
        "link_loss_percent": scenario.link.loss_percent,
        "site_delay_ms": {s.ip: s.rule.delay_ms for s in sites if s.rule.block == "slow"},
    }


_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000


def run_delayer(device: str, config_path: Path) -> None:
    """Hold each packet read from the TUN ``device``, then write it back (or drop it).

    Packets from the volunteer wait ``link_delay_ms`` and are lost with
    ``link_loss_percent``; packets from a slow site wait its delay.  SIGHUP re-reads
    the configuration.  One thread and a heap: a few tens of thousands of packets per
    second, plenty for a lab.
    """
    config: dict[str, object] = {}

    def load(*_: object) -> None:
        config.clear()
        config.update(json.loads(config_path.read_text()))

    load()
    signal.signal(signal.SIGHUP, load)
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", device.encode(), _IFF_TUN | _IFF_NO_PI))
    os.set_blocking(fd, False)
    queue: list[tuple[float, int, bytes]] = []
    sequence = 0
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        try:
            readable, _, _ = select.select([fd], [], [], timeout)
        except InterruptedError:
            continue
        if readable:
            while True:
                try:
                    packet = os.read(fd, 65535)
                except BlockingIOError:
                    break
                delay = _delay_for(packet, config)
                if delay is None:
                    continue
                sequence += 1
                heapq.heappush(queue, (time.monotonic() + delay, sequence, packet))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, packet = heapq.heappop(queue)
            # If the device went down the packet is lost, as on a real link.
            with contextlib.suppress(OSError):
                os.write(fd, packet)


def _delay_for(packet: bytes, config: dict[str, object]) -> float | None:
    """Seconds to hold ``packet``, or ``None`` to drop it."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return 0.0
    source = str(ipaddress.IPv4Address(packet[12:16]))
    if source == config.get("volunteer"):
        # mypy: config is parsed TOML (values typed object); the scenario loader checked the numbers
        loss = float(config.get("link_loss_percent", 0.0))  # type: ignore[arg-type]
        if loss and random.random() * 100 < loss:
            return None
        # mypy: as above, a checked number from TOML
        return float(config.get("link_delay_ms", 0)) / 1000  # type: ignore[arg-type]
    # mypy: as above, a checked table from TOML
    site_delays: dict[str, int] = config.get("site_delay_ms", {})  # type: ignore[assignment]
    return site_delays.get(source, 0) / 1000


if __name__ == "__main__":
    # ``python -m probe.lab.daemons delayer DEVICE CONFIG``, started by probe.lab.netns in kz-isp.
    if len(sys.argv) == 4 and sys.argv[1] == "delayer":
        run_delayer(sys.argv[2], Path(sys.argv[3]))
    else:
        sys.exit("usage: python -m probe.lab.daemons delayer DEVICE CONFIG")
