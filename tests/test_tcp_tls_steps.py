"""The TCP and TLS steps against lab sites: every behaviour becomes the expected record.

The sites run in a LabThread (their own trio loop), the steps in the test's loop, over
real loopback sockets.  The probe trusts the lab CA through ``make_ssl_context``'s
extra bundle, as ``--ca-bundle`` does.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import ssl
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import trio

from probe.failures import Failure
from probe.lab.certs import LabCA
from probe.lab.runner import LabThread
from probe.lab.web_servers import Behaviour, LabSite, WebLab
from probe.records import TlsObservation, _plain
from probe.steps import tcp, tls

CONTROL_SOURCE = "127.0.0.99"
TIMEOUT = 0.5


@pytest.fixture(scope="module")
def lab() -> Iterator[WebLab]:
    with LabThread() as thread, LabCA() as ca:
        yield WebLab(thread, ca=ca)


@pytest.fixture(scope="module")
def context(lab: WebLab) -> ssl.SSLContext:
    return tls.make_ssl_context(lab.ca.ca_pem_path)


async def start(method: Callable[..., LabSite], *args: Any, **kwargs: Any) -> LabSite:
    """Start a lab server from async code: LabThread.start blocks, so it runs in a worker thread."""
    return await trio.to_thread.run_sync(functools.partial(method, *args, **kwargs))


async def connect(site: LabSite, source_address: str | None = None) -> trio.SocketStream:
    obs, stream = await tcp.connect(
        site.ip,
        site.port,
        obs_id="tcp/0",
        t0=trio.current_time(),
        timeout=TIMEOUT,
        source_address=source_address,
    )
    assert obs.failure is None and stream is not None
    return stream


async def handshake(
    site: LabSite,
    context: ssl.SSLContext,
    server_name: str = "example.kg",
    purpose: str = "target",
) -> TlsObservation:
    """Connect and handshake; close whatever was opened."""
    stream = await connect(site)
    obs, tls_stream = await tls.handshake(
        stream,
        ip=site.ip,
        port=site.port,
        server_name=server_name,
        obs_id="tls/0",
        t0=trio.current_time(),
        timeout=TIMEOUT,
        context=context,
        purpose=purpose,
    )
    await trio.aclose_forcefully(tls_stream or stream)
    return obs


# --- TCP ------------------------------------------------------------------------------


async def test_connect_honest(lab: WebLab) -> None:
    """If the site listens, then the connect succeeds and the stream is returned."""
    site = await start(lab.site, https=False)
    t0 = trio.current_time()
    obs, stream = await tcp.connect(site.ip, site.port, obs_id="tcp/3", t0=t0, timeout=TIMEOUT)
    assert stream is not None
    await stream.aclose()
    assert (obs.id, obs.ip, obs.port, obs.failure) == ("tcp/3", site.ip, site.port, None)
    assert 0 <= obs.started <= obs.finished < TIMEOUT


async def test_connect_refused(lab: WebLab) -> None:
    """If nothing listens at the address, then the failure is connection_refused."""
    obs, stream = await tcp.connect(
        lab.next_ip(), lab.network.port, obs_id="tcp/0", t0=trio.current_time(), timeout=TIMEOUT
    )
    assert stream is None
    assert obs.failure == Failure.CONNECTION_REFUSED


async def test_connect_timeout(lab: WebLab) -> None:
    """If the address drops SYNs, then the step's own timeout records generic_timeout_error."""
    site = await start(lab.syn_drop)
    obs, stream = await tcp.connect(
        site.ip, site.port, obs_id="tcp/0", t0=trio.current_time(), timeout=TIMEOUT
    )
    assert stream is None
    assert obs.failure == Failure.GENERIC_TIMEOUT
    assert TIMEOUT <= obs.finished - obs.started < TIMEOUT + 0.3


async def test_connect_from_source_address_is_not_recorded(lab: WebLab) -> None:
    """If a source address is given, then the connect uses it and the record never mentions it."""
    site = await start(lab.site, Behaviour.reset(), https=False)
    obs, stream = await tcp.connect(
        site.ip,
        site.port,
        obs_id="tcp/0",
        t0=trio.current_time(),
        timeout=TIMEOUT,
        source_address=CONTROL_SOURCE,
    )
    assert stream is not None
    async with stream:
        assert stream.socket.getsockname()[0] == CONTROL_SOURCE
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: example.kg\r\n\r\n")
        assert (await stream.receive_some(12)).startswith(b"HTTP/1.1")  # honest to the control
    assert CONTROL_SOURCE not in json.dumps(_plain(obs))


async def test_connect_family_mismatch() -> None:
    """If the source address is IPv4 and the target IPv6, then the failure is address_not_available."""
    obs, stream = await tcp.connect(
        "::1", 9, obs_id="tcp/0", t0=trio.current_time(), timeout=TIMEOUT, source_address="127.0.0.1"
    )
    assert stream is None
    assert obs.failure == Failure.ADDRESS_NOT_AVAILABLE


async def test_connect_rejects_names() -> None:
    """If the address is a name, then connect raises ValueError instead of resolving it."""
    with pytest.raises(ValueError):
        await tcp.connect("localhost", 80, obs_id="tcp/0", t0=trio.current_time(), timeout=TIMEOUT)


async def test_connect_outside_cancellation_propagates(lab: WebLab) -> None:
    """If an outer scope cancels a connect, then the cancellation propagates and nothing is recorded."""
    site = await start(lab.syn_drop)
    with trio.move_on_after(0.2) as outer:
        await tcp.connect(site.ip, site.port, obs_id="tcp/0", t0=trio.current_time(), timeout=5)
        pytest.fail("the connect swallowed the outer cancellation")
    assert outer.cancelled_caught


# --- TLS ------------------------------------------------------------------------------


def test_make_ssl_context_adds_to_system_store(lab: WebLab) -> None:
    """If a CA bundle is given, then the context trusts it on top of the system's anchors."""
    system = tls.make_ssl_context()
    extended = tls.make_ssl_context(lab.ca.ca_pem_path)
    assert len(extended.get_ca_certs()) == len(system.get_ca_certs()) + 1
    assert extended.minimum_version == ssl.TLSVersion.TLSv1_2
    assert extended.verify_mode == ssl.CERT_REQUIRED and extended.check_hostname


async def test_handshake_honest(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the site is honest, then the handshake validates and records version, cipher, ALPN and chain."""
    site = await start(lab.site)
    obs = await handshake(site, context)
    assert obs.failure is None
    assert obs.validated is True
    assert (obs.ip, obs.port, obs.server_name, obs.purpose) == (site.ip, site.port, "example.kg", "target")
    assert obs.version == "TLSv1.3"
    assert obs.cipher and obs.alpn == "http/1.1"
    assert len(obs.certificates) == 1
    leaf = obs.certificates[0]
    der = base64.b64decode(leaf.der_b64)
    assert leaf.sha256 == hashlib.sha256(der).hexdigest()
    assert leaf.sans == ["example.kg"]
    assert "O=Kuzot Lab CA" in leaf.issuer and "O=trustme" in leaf.subject
    assert datetime.fromisoformat(leaf.not_before) < datetime.fromisoformat(leaf.not_after)


async def test_handshake_reset(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the site resets the connection, then the handshake records connection_reset and no certificate."""
    obs = await handshake(await start(lab.site, Behaviour.reset()), context)
    assert obs.failure == Failure.CONNECTION_RESET
    assert obs.validated is None and obs.certificates == []


async def test_handshake_eof(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the site closes after the ClientHello, then the handshake records eof_error."""
    obs = await handshake(await start(lab.site, Behaviour.close()), context)
    assert obs.failure == Failure.EOF


async def test_handshake_blackhole(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the site never answers the ClientHello, then the handshake records generic_timeout_error."""
    obs = await handshake(await start(lab.site, Behaviour.blackhole()), context)
    assert obs.failure == Failure.GENERIC_TIMEOUT
    assert TIMEOUT <= obs.finished - obs.started < TIMEOUT + 0.3


async def test_handshake_garbage(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the site answers the ClientHello with noise, then the handshake records ssl_failed_handshake."""
    obs = await handshake(await start(lab.site, Behaviour.garbage()), context)
    assert obs.failure == Failure.SSL_FAILED_HANDSHAKE


async def test_sni_reset_with_innocuous_comparison(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the SNI is filtered, then the target handshake is reset while an innocuous SNI completes."""
    site = await start(lab.site, Behaviour.sni_reset("example.kg"), cert_names=("example.kg", "innocuous.kg"))
    target = await handshake(site, context)
    comparison = await handshake(site, context, server_name="innocuous.kg", purpose="comparison")
    assert target.failure == Failure.CONNECTION_RESET
    assert target.certificates == []
    assert comparison.failure is None
    assert comparison.purpose == "comparison"
    assert comparison.validated is True


async def test_unknown_authority_keeps_chain(lab: WebLab, context: ssl.SSLContext) -> None:
    """If a blockpage server presents a certificate from an untrusted CA, then the failure is
    ssl_unknown_authority and its chain is kept with validated False."""
    site = await start(lab.blockpage)
    obs = await handshake(site, context)
    assert obs.failure == Failure.SSL_UNKNOWN_AUTHORITY
    assert obs.validated is False
    assert [c.sans for c in obs.certificates] == [["blockpage.lab"]]
    assert "O=Lab ISP Blockpage CA" in obs.certificates[0].issuer
    assert obs.version is None  # the session itself was not established


async def test_invalid_hostname_keeps_chain(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the certificate is for another name, then the failure is ssl_invalid_hostname, chain kept."""
    site = await start(lab.site, cert_names=("other.kg",))
    obs = await handshake(site, context)
    assert obs.failure == Failure.SSL_INVALID_HOSTNAME
    assert obs.validated is False
    assert obs.certificates[0].sans == ["other.kg"]


async def test_chain_capture_uses_source_address(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the chain-capturing connection (from source_address) is reset, then only the failure is kept."""
    site = await start(
        lab.site, Behaviour.reset(), cert_names=("other.kg",), censored_sources=[CONTROL_SOURCE]
    )
    stream = await connect(site)  # from 127.0.0.1, which this site does not censor
    obs, tls_stream = await tls.handshake(
        stream,
        ip=site.ip,
        port=site.port,
        server_name="example.kg",
        obs_id="tls/0",
        t0=trio.current_time(),
        timeout=TIMEOUT,
        context=context,
        source_address=CONTROL_SOURCE,
    )
    await stream.aclose()
    assert tls_stream is None
    assert obs.failure == Failure.SSL_INVALID_HOSTNAME
    assert obs.validated is False and obs.certificates == []


async def test_handshake_without_lab_ca(lab: WebLab) -> None:
    """If the lab CA is not added, then an honest lab site fails with ssl_unknown_authority."""
    obs = await handshake(await start(lab.site), tls.make_ssl_context())
    assert obs.failure == Failure.SSL_UNKNOWN_AUTHORITY


async def test_handshake_outside_cancellation_propagates(lab: WebLab, context: ssl.SSLContext) -> None:
    """If an outer scope cancels a handshake, then the cancellation propagates instead of a timeout record."""
    site = await start(lab.site, Behaviour.blackhole())
    stream = await connect(site)
    with trio.move_on_after(0.2) as outer:
        await tls.handshake(
            stream,
            ip=site.ip,
            port=site.port,
            server_name="example.kg",
            obs_id="tls/0",
            t0=trio.current_time(),
            timeout=5,
            context=context,
        )
        pytest.fail("the handshake swallowed the outer cancellation")
    await stream.aclose()
    assert outer.cancelled_caught
