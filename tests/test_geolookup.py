"""The probe learns its network from the control helper, which answers only AS number, country and name."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from probe.lab.loopback import LoopbackLab, Scenario
from probe.store.record_codec import decode_record
from tests.conftest import kuzot


def _asn_database(path: Path) -> Path:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-ASN")
    writer.insert_network(
        IPSet(["127.0.0.0/8"]),
        {
            "autonomous_system_number": 64512,
            "autonomous_system_organization": "Lab Net",
            "country": {"iso_code": "KG"},
        },
    )
    writer.to_db_file(str(path))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def helper(tmp_path: Path):
    lab = LoopbackLab()
    with lab:
        lab.add(Scenario("ok", "kaktus.media"))
        port = _free_port()
        ip, dns_port = lab.honest_address
        process = subprocess.Popen(
            [
                sys.executable, "-m", "probe", "control", "serve", "--listen", f"127.0.0.1:{port}",
                "--asn-db", str(_asn_database(tmp_path / "asn.mmdb")), "--allow-private-targets",
                "--resolver", f"{ip}:{dns_port}", "--no-system-resolver", "--ca-bundle", str(lab.ca_bundle),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                try:
                    httpx.get(f"{url}/api/v1/health", timeout=2)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            yield lab, url
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_geolookup_answers_only_the_network(helper) -> None:
    """If a probe asks the helper where it is, then the answer is AS number, country and name, never its address."""
    _lab, url = helper
    response = httpx.get(f"{url}/api/v1/geolookup", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"probe_asn": 64512, "probe_cc": "KG", "probe_network_name": "Lab Net"}
    assert "127.0.0.1" not in response.text


def test_a_run_without_probe_asn_learns_it_from_the_helper(helper, tmp_path: Path) -> None:
    """If --probe-asn is not given and the helper knows the network, then the run's records carry its AS number and name."""
    lab, url = helper
    db = tmp_path / "k.db"
    args = [a for a in lab.probe_args(control=False)]
    result = kuzot("run", "--db", f"sqlite:///{db}", "--url", lab.targets["ok"].url, *args, "--control", url)
    assert result.returncode == 0, result.stderr[-2000:]
    with sqlite3.connect(db) as conn:
        records = [json.loads(decode_record(r)) for (r,) in conn.execute("SELECT record FROM measurements")]
    assert records and all(r["probe_asn"] == 64512 and r["probe_network"] == "Lab Net" for r in records)
    assert all(r["probe_cc"] == "KG" for r in records)


def test_collector_with_control_answers_the_geolookup_too(tmp_path: Path) -> None:
    """If kuzot serve runs with --with-control and --asn-db, then it answers the geolookup the same way."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "probe", "serve", "--db", f"sqlite:///{tmp_path / 'c.db'}",
            "--listen", f"127.0.0.1:{port}", "--with-control", "--allow-private-targets",
            "--asn-db", str(_asn_database(tmp_path / "asn.mmdb")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        answer = None
        for _ in range(300):
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/geolookup", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert answer is not None and answer.status_code == 200
        assert answer.json() == {"probe_asn": 64512, "probe_cc": "KG", "probe_network_name": "Lab Net"}
    finally:
        process.terminate()
        process.wait(timeout=30)
