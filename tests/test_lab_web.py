"""The lab web servers, each behaviour observed with a plain blocking client.

Why a plain client: the lab is what the probe's tests stand on, so it is checked with
nothing of the probe (no trio, no httpx), only ``socket`` and ``ssl``.  The servers run
in a LabThread; every test starts its own site at a fresh loopback address.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from probe.lab.certs import LabCA
from probe.lab.runner import LabThread
from probe.lab.web_servers import (
    BLOCKPAGE_MARKER,
    ELCAT_PHRASE,
    HOMELINE_BLOCKPAGE_URL,
    Behaviour,
    LabSite,
    WebLab,
    allocate_network,
    honest_page,
    honest_title,
    parse_client_hello_sni,
)

CONTROL_SOURCE = "127.0.0.99"
TIMEOUT = 1.0


@pytest.fixture(scope="module")
def lab() -> Iterator[WebLab]:
    with LabThread() as thread, LabCA() as ca:
        yield WebLab(thread, ca=ca)


def connect(site: LabSite, source: str | None = None, timeout: float = TIMEOUT) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    if source is not None:
        sock.bind((source, 0))
    sock.connect((site.ip, site.port))
    return sock


def wrap(sock: socket.socket, ca: LabCA, server_name: str = "example.kg") -> ssl.SSLSocket:
    return ca.client_context().wrap_socket(sock, server_hostname=server_name)


def read_all(sock: socket.socket, limit: int = 1 << 22) -> bytes:
    data = b""
    while len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def get(
    site: LabSite, lab: WebLab, host: str = "example.kg", source: str | None = None
) -> tuple[bytes, bytes]:
    """GET / with ``Host: host``; the response head and body."""
    sock = connect(site, source)
    if site.https:
        sock = wrap(sock, lab.ca, host)
    with sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: test\r\n\r\n".encode())
        response = read_all(sock)
    head, _, body = response.partition(b"\r\n\r\n")
    return head, body


def test_honest_http(lab: WebLab) -> None:
    """If the site is honest, then a plain HTTP GET gets 200 and the host's own page."""
    site = lab.site(https=False)
    head, body = get(site, lab)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert f"Content-Length: {len(body)}".encode() in head
    assert body == honest_page("example.kg")
    assert f"<title>{honest_title('example.kg')}</title>".encode() in body
    assert 2000 < len(body) < 10000


def test_honest_https_validates_with_lab_ca(lab: WebLab) -> None:
    """If the site serves TLS, then its certificate validates for its name against the lab CA file."""
    site = lab.site()
    head, body = get(site, lab)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert body == honest_page("example.kg")
    context = ssl.create_default_context(cafile=str(lab.ca.ca_pem_path))
    with connect(site) as raw, context.wrap_socket(raw, server_hostname="example.kg") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_pages_per_host(lab: WebLab) -> None:
    """If pages map hosts to bodies, then each Host gets its body and an unknown one a 404."""
    site = lab.site(https=False, pages={"a.kg": b"<title>A</title>", "b.kg": b"<title>B</title>"})
    assert get(site, lab, "a.kg")[1] == b"<title>A</title>"
    assert get(site, lab, "b.kg")[1] == b"<title>B</title>"
    assert get(site, lab, "c.kg")[0].startswith(b"HTTP/1.1 404")


def test_reset(lab: WebLab) -> None:
    """If the policy is reset, then the censored client's first read fails with ECONNRESET."""
    site = lab.site(Behaviour.reset(), https=False)
    with connect(site) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: example.kg\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            sock.recv(1024)


def test_control_source_sees_honest_site(lab: WebLab) -> None:
    """If the client binds the control's source address, then a censoring site answers it honestly."""
    site = lab.site(Behaviour.reset(), https=False)
    head, body = get(site, lab, source=CONTROL_SOURCE)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert body == honest_page("example.kg")


def test_censored_sources_none_means_everyone(lab: WebLab) -> None:
    """If censored_sources is None, then even the control's address is reset."""
    site = lab.site(Behaviour.reset(), https=False, censored_sources=None)
    with connect(site, CONTROL_SOURCE) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: example.kg\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            sock.recv(1024)


def test_policy_changes_at_run_time(lab: WebLab) -> None:
    """If a scenario flips the policy, then the next connection gets the new behaviour."""
    site = lab.site(Behaviour.blockpage_200(), https=False)
    assert BLOCKPAGE_MARKER.encode() in get(site, lab)[1]
    site.policy.behaviour = Behaviour.honest()
    assert get(site, lab)[1] == honest_page("example.kg")
    site.policy.behaviour = Behaviour.blockpage_200()
    site.policy.censored_sources = ["127.0.0.5"]
    assert get(site, lab)[1] == honest_page("example.kg")


def test_close_is_eof(lab: WebLab) -> None:
    """If the policy is close, then the client reads an EOF with no byte of response."""
    site = lab.site(Behaviour.close(), https=False)
    with connect(site) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: example.kg\r\n\r\n")
        assert sock.recv(1024) == b""


def test_blackhole(lab: WebLab) -> None:
    """If the policy is blackhole, then the connection opens and nothing ever arrives."""
    site = lab.site(Behaviour.blackhole(), https=False)
    with connect(site, timeout=0.3) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: example.kg\r\n\r\n")
        with pytest.raises(TimeoutError):
            sock.recv(1024)


def test_sni_reset(lab: WebLab) -> None:
    """If the policy resets an SNI, then a handshake naming it is reset and an innocuous one completes."""
    site = lab.site(Behaviour.sni_reset("example.kg"), cert_names=("example.kg", "innocuous.kg"))
    with connect(site) as raw, pytest.raises(ConnectionResetError):
        wrap(raw, lab.ca, "example.kg")
    with connect(site) as raw, wrap(raw, lab.ca, "innocuous.kg") as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: innocuous.kg\r\n\r\n")
        assert read_all(tls).startswith(b"HTTP/1.1 200 OK")


def test_host_reset(lab: WebLab) -> None:
    """If the policy resets a Host, then a request for it is reset and another host is served."""
    site = lab.site(Behaviour.host_reset("example.kg"), https=False)
    with connect(site) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: Example.KG:80\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            sock.recv(1024)
    head, body = get(site, lab, "other.kg")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert body == honest_page("other.kg")


def test_blockpage_200(lab: WebLab) -> None:
    """If the policy is blockpage_200, then the client gets status 200 with ElCat's sentence."""
    site = lab.site(Behaviour.blockpage_200())
    head, body = get(site, lab)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert BLOCKPAGE_MARKER.encode() in body
    assert ELCAT_PHRASE.encode() in body
    assert b"<title>Access denied</title>" in body


def test_blockpage_redirect(lab: WebLab) -> None:
    """If the policy is blockpage_redirect, then the client gets a 302 to Homeline's blockpage."""
    site = lab.site(Behaviour.blockpage_redirect(), https=False)
    head, _body = get(site, lab)
    assert head.startswith(b"HTTP/1.1 302 Found")
    assert f"Location: {HOMELINE_BLOCKPAGE_URL}".encode() in head.split(b"\r\n")


def test_endless_body(lab: WebLab) -> None:
    """If the policy is endless_body, then more than a megabyte arrives and the body has not ended."""
    site = lab.site(Behaviour.endless_body(), https=False)
    with connect(site) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: example.kg\r\n\r\n")
        data = read_all(sock, limit=2 << 20)
    assert len(data) >= 2 << 20
    assert b"Content-Length" not in data.partition(b"\r\n\r\n")[0]


def test_drip(lab: WebLab) -> None:
    """If the policy is drip, then the head comes at once and the body one byte per interval."""
    site = lab.site(Behaviour.drip(0.1), https=False)
    with connect(site) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: example.kg\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        started = time.monotonic()
        body = data.partition(b"\r\n\r\n")[2]
        while len(body) < 4:
            body += sock.recv(65536)
        elapsed = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert 0.2 < elapsed < 1.0
    assert body[:4] == honest_page("example.kg")[:4]


def test_garbage(lab: WebLab) -> None:
    """If the policy is garbage, then the answer is bytes that are not HTTP."""
    site = lab.site(Behaviour.garbage(), https=False)
    with connect(site) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: example.kg\r\n\r\n")
        data = read_all(sock)
    assert len(data) > 100
    assert not data.startswith(b"HTTP/")


def test_garbage_over_tls_breaks_the_handshake(lab: WebLab) -> None:
    """If a TLS site's policy is garbage, then the client's handshake fails on the noise."""
    site = lab.site(Behaviour.garbage())
    with connect(site) as raw, pytest.raises(ssl.SSLError):
        wrap(raw, lab.ca)


def test_slow(lab: WebLab) -> None:
    """If the policy is slow, then the honest page arrives after the delay."""
    site = lab.site(Behaviour.slow(0.3), https=False)
    started = time.monotonic()
    _head, body = get(site, lab)
    assert time.monotonic() - started >= 0.3
    assert body == honest_page("example.kg")


def test_blockpage_server_untrusted_certificate(lab: WebLab) -> None:
    """If the client trusts the lab CA, then the blockpage server's certificate fails verification."""
    site = lab.blockpage()
    with connect(site) as raw, pytest.raises(ssl.SSLCertVerificationError) as caught:
        wrap(raw, lab.ca, "example.kg")
    assert caught.value.verify_code == 20  # unable to get local issuer certificate


def test_blockpage_server_answers_any_host(lab: WebLab) -> None:
    """If anyone asks the blockpage server for any Host, then it answers with the blockpage."""
    site = lab.blockpage(https=False)
    for host in ("example.kg", "kloop.kg"):
        head, body = get(site, lab, host, source=CONTROL_SOURCE)
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert ELCAT_PHRASE.encode() in body


def test_syn_drop(lab: WebLab) -> None:
    """If the address drops SYNs, then a TCP connect times out."""
    site = lab.syn_drop()
    with pytest.raises(TimeoutError):
        connect(site, timeout=0.3).close()


def test_allocate_network() -> None:
    """If two labs allocate networks, then each gets a 127.X.Y block outside 127.0 and a bindable port."""
    first, second = allocate_network(), allocate_network()
    assert first.prefix != second.prefix
    for network in (first, second):
        assert network.prefix.startswith("127.") and not network.prefix.startswith("127.0.")
        with socket.socket() as sock:
            sock.bind((network.ip(7), network.port))
    with pytest.raises(ValueError):
        first.ip(255)


def test_parse_client_hello_sni() -> None:
    """If the ClientHello is truncated or not TLS, then no SNI is parsed and nothing raises."""
    assert parse_client_hello_sni(b"") is None
    assert parse_client_hello_sni(b"GET / HTTP/1.1\r\n\r\n") is None
    assert parse_client_hello_sni(b"\x16\x03\x01\x00\x05\x01\x00\x00") is None


def test_parse_client_hello_sni_of_a_real_hello() -> None:
    """If OpenSSL writes a ClientHello for a name, then the parser reads that name in lower case."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="Kloop.KG")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    assert parse_client_hello_sni(outgoing.read()) == "kloop.kg"
