"""The store's fast canonical JSON writes exactly the bytes of ``Measurement.canonical_json``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from probe.failures import Failure
from probe.formats.ooni import measurement_from_ooni
from probe.records import (
    CertificateInfo,
    ControlObservations,
    DnsAnswer,
    DnsObservation,
    DnsResponse,
    HttpObservation,
    Measurement,
    TcpObservation,
    TlsObservation,
)
from probe.store.canonical import canonical_bytes

_CANDIDATES = [Path(__file__).resolve().parents[n] / "shared" / "data" for n in (2, 3)]
SHARED = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])


def _measurement(runtime: float = 1.25, started: float = 0.001, text: str = "Сайт <ok>") -> Measurement:
    return Measurement(
        id="m1",
        url="https://example.kg/",
        domain="example.kg",
        started_at=datetime(2022, 10, 27, 6, 5, 4, tzinfo=UTC),
        runtime=runtime,
        probe_asn=8449,
        probe_cc="KG",
        dns=[
            DnsObservation(
                id="d1",
                hostname="example.kg",
                query_type="A",
                resolver="127.0.0.53",
                transport="udp",
                started=started,
                finished=0.05,
                rcode="NOERROR",
                answers=[DnsAnswer(rrtype="A", value="10.0.0.1", ttl=60)],
                extra_responses=[DnsResponse(received=0.07, rcode="NOERROR")],
            )
        ],
        tcp=[
            TcpObservation(
                id="t1", ip="10.0.0.1", port=443, started=0.1, finished=0.2, failure=Failure.CONNECTION_RESET
            )
        ],
        tls=[
            TlsObservation(
                id="s1",
                ip="10.0.0.1",
                port=443,
                server_name="example.kg",
                started=0.2,
                finished=0.3,
                certificates=[
                    CertificateInfo(
                        "ab" * 32, "CN=x", "CN=y", ["example.kg"], "2022-01-01", "2023-01-01", "AAAA"
                    )
                ],
            )
        ],
        http=[
            HttpObservation(
                id="h1",
                url="https://example.kg/",
                ip="10.0.0.1",
                started=0.3,
                finished=0.4,
                status_code=200,
                headers=[("Server", 'nginx\x00\x1f\u2028\x7f"\\')],
                title=text,
                body_sample=b"\x00\xffbody",
            )
        ],
        control=ControlObservations(source="https://control.example/"),
        annotations={"ключ": "значение", "a": "\ud7ff"},
    )


@pytest.mark.parametrize(
    "m",
    [
        _measurement(),
        _measurement(runtime=1e16),
        _measurement(started=1e-7),
        _measurement(started=5.9e-05),
        _measurement(started=9.999999999999999e-05),
        _measurement(runtime=1e-05),
        _measurement(runtime=float("inf")),
        _measurement(runtime=float("nan")),
        _measurement(text="\ud800 lone surrogate"),
    ],
    ids=[
        "plain",
        "big-exponent",
        "small-exponent",
        "band-without-exponent",
        "band-top",
        "band-bottom",
        "infinite",
        "nan",
        "surrogate",
    ],
)
def test_fast_path_matches_reference(m: Measurement) -> None:
    """If a record holds non-ASCII text, control characters, bytes, enums, exponent numbers or non-finite floats, then the fast canonical JSON equals the reference one (or both refuse it)."""
    try:
        reference = m.canonical_json()
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            canonical_bytes(m)
        return
    assert canonical_bytes(m) == reference
    assert m.started_at == datetime(2022, 10, 27, 6, 5, 4, tzinfo=UTC)


def test_fast_path_matches_reference_on_real_ooni_data() -> None:
    """If real OONI measurements are converted, then the fast canonical JSON equals the reference for each."""
    path = SHARED / "real-data/ooni-explorer/explorer-web_connectivity.jsonl"
    if not path.is_file():
        pytest.skip("no ../shared/data")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for line in lines:
        m = measurement_from_ooni(json.loads(line))
        assert canonical_bytes(m) == m.canonical_json()


@pytest.mark.parametrize("mantissa", [1.0, 2.5, 5.9366490812519215, 9.999999999999999])
def test_fast_path_writes_every_decade_of_floats_as_python_does(mantissa: float) -> None:
    """If a record's times take any magnitude from 1e-320 to 1e300, then the fast canonical JSON equals the reference, and parsing and re-writing it as a verifier does gives the same bytes."""
    for exponent in range(-320, 301):
        value = float(f"{mantissa!r}e{exponent}")
        m = _measurement(started=value)
        fast = canonical_bytes(m)
        assert fast == m.canonical_json(), value
        assert (
            json.dumps(json.loads(fast), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
            == fast
        )
