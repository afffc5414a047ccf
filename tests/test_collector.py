"""The collector's HTTP interface against a real ``kuzot serve`` on loopback, on SQLite and PostgreSQL.

Every refusal is checked twice: the answer says what is wrong, and the database shows
that nothing of the refused batch was kept.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from probe.records import FORMAT_VERSION
from probe.server.collector.app import CollectorConfig, create_collector_app
from probe.server.collector.openapi import openapi_document
from probe.server.control.app import ControlConfig
from probe.settings import ProbeSettings
from probe.signing import SigningKey, verify_envelope
from probe.store import Store
from probe.store.models import MeasurementRow, ProbeRow, SubmissionRow
from tests.collector_support import CollectorProcess, database_text, signed_item, stored_ids
from tests.conftest import kuzot
from tests.test_store import make_measurement

KEY = SigningKey.generate()


@pytest.fixture(autouse=True)
def _fresh_key() -> None:
    """Each test is a new probe installation: the collector binds a key to the first
    probe that uploads with it, and these tests register a new probe each."""
    global KEY
    KEY = SigningKey.generate()


def _post(
    server: CollectorProcess,
    token: str | None,
    body: object,
    headers: dict[str, str] | None = None,
    **kwargs: object,
) -> httpx.Response:
    """POST a batch (a JSON value, raw bytes, or ``content=`` an iterator) with the probe's token."""
    all_headers = {"Authorization": f"Bearer {token}"} if token else {}
    all_headers.update(headers or {})
    if "content" not in kwargs:
        if isinstance(body, bytes):
            kwargs["content"] = body
        else:
            kwargs["json"] = body
    return httpx.post(f"{server.api}/measurements", headers=all_headers, timeout=60, **kwargs)  # type: ignore[arg-type]


def _ids(items: list[dict]) -> set[str]:
    return {item["record"]["id"] for item in items}


def _present(server: CollectorProcess, ids: set[str]) -> set[str]:
    return ids & set(stored_ids(server.db_url))


def test_register_stores_only_a_hash_of_the_token(collector: CollectorProcess) -> None:
    """If a probe registers, then it gets an id and token, and the database holds only the token's SHA-256."""
    response = httpx.post(f"{collector.api}/probes", timeout=30)
    assert response.status_code == 201
    data = response.json()
    assert set(data) == {"probe_id", "token"} and len(data["token"]) >= 40
    engine = create_engine(collector.db_url)
    with Session(engine) as session:
        row = session.get(ProbeRow, data["probe_id"])
        assert row is not None
        assert row.token_hash == hashlib.sha256(data["token"].encode()).hexdigest()
    engine.dispose()
    assert data["token"] not in database_text(collector.db_url)


def test_batch_is_stored_then_resubmission_is_duplicate(collector: CollectorProcess) -> None:
    """If a batch is sent twice, then the first answer says stored, the second duplicate, and each id is kept once."""
    token = collector.register()
    measurements = [make_measurement() for _ in range(6)]
    items = [signed_item(m, KEY) for m in measurements[:5]] + [signed_item(measurements[5], None)]
    first = _post(collector, token, {"measurements": items})
    assert first.status_code == 200, first.text
    assert first.json()["stored"] == 6 and first.json()["duplicate"] == 0
    assert [r["status"] for r in first.json()["results"]] == ["stored"] * 6
    assert [r["id"] for r in first.json()["results"]] == [m.id for m in measurements]

    again = _post(collector, token, {"measurements": [*items, items[0]]})
    assert again.status_code == 200
    assert [r["status"] for r in again.json()["results"]] == ["duplicate"] * 7
    ids = stored_ids(collector.db_url)
    assert all(ids.count(m.id) == 1 for m in measurements)

    # What is kept is the record as signed: the signature still verifies against it.
    engine = create_engine(collector.db_url)
    with Session(engine) as session:
        rows = {
            r.id: r for r in session.scalars(select(MeasurementRow).where(MeasurementRow.id.in_(_ids(items))))
        }
        submissions = session.scalars(
            select(SubmissionRow).where(SubmissionRow.measurement_id.in_(_ids(items)))
        )
        assert len(list(submissions)) == 6
    engine.dispose()
    for m in measurements[:5]:
        row = rows[m.id]
        envelope = {
            "content_hash": row.content_hash,
            "signature": row.signature,
            "public_key": row.public_key,
        }
        assert verify_envelope(json.loads(row.record), envelope) == []
        assert row.key_id == KEY.key_id and row.uploaded_at is not None
    unsigned = rows[measurements[5].id]
    assert unsigned.signature is None and unsigned.public_key is None


@pytest.mark.parametrize(
    "authorization", [None, "Bearer", "Bearer not-a-token", "Basic dXNlcjpwYXNz", "not-a-scheme"]
)
def test_missing_or_unknown_token_is_401(collector: CollectorProcess, authorization: str | None) -> None:
    """If the token is missing, malformed or unknown, then 401 and nothing of the batch is stored."""
    items = [signed_item(make_measurement(), KEY)]
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = httpx.post(
        f"{collector.api}/measurements", json={"measurements": items}, headers=headers, timeout=30
    )
    assert response.status_code == 401
    assert "token" in response.json()["error"]
    assert response.headers["www-authenticate"] == "Bearer"
    assert not _present(collector, _ids(items))


def test_oversized_batches_are_413(collector: CollectorProcess) -> None:
    """If a batch has more items or bytes than the server allows, then 413 and nothing is stored."""
    token = collector.register()
    too_many = [signed_item(make_measurement(), KEY) for _ in range(51)]  # the fixture allows 50
    response = _post(collector, token, {"measurements": too_many})
    assert response.status_code == 413
    assert "at most 50" in response.json()["error"]
    assert not _present(collector, _ids(too_many))

    big = make_measurement(annotations={"note": "x" * 400_000})  # the fixture allows 300,000 bytes
    items = [signed_item(make_measurement(), KEY), signed_item(big, KEY)]
    response = _post(collector, token, {"measurements": items})
    assert response.status_code == 413
    assert "300000 bytes" in response.json()["error"]
    assert not _present(collector, _ids(items))

    def streamed():  # no Content-Length: the server must stop reading, not buffer it all
        yield b'{"measurements": [], "pad": "'
        for _ in range(400):
            yield b"y" * 1024
        yield b'"}'

    response = _post(collector, token, b"", content=streamed())
    assert response.status_code == 413


def _malformed(change: Callable[[dict], None]) -> dict:
    item = signed_item(make_measurement(), None)
    change(item["record"])
    return item


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda r: r.pop("url"), "record.url", "is required"),
        (lambda r: r["dns"][0].update(started="soon"), "record.dns[0].started", "must be a number"),
        (lambda r: r.update(probe_asn="AS12345"), "record.probe_asn", "must be an integer"),
        (lambda r: r.update(started_at="yesterday"), "record.started_at", "ISO 8601"),
        (lambda r: r.update(role="victim"), "record.role", "one of target, canary"),
        (lambda r: r.update(id="x" * 65), "record.id", "longer than 64"),
        (lambda r: r.update(format_version=FORMAT_VERSION + 1), "record.format_version", "newer"),
        (lambda r: r["http"][0].update(body_sample="***"), "record.http[0].body_sample", "base64"),
        (lambda r: r.update(dns={"not": "a list"}), "record.dns", "must be a list"),
    ],
)
def test_malformed_item_is_422_naming_field_and_index(
    collector: CollectorProcess, change: Callable[[dict], None], field: str, words: str
) -> None:
    """If one item of a batch violates the schema, then 422 names its index and field, and no item is stored."""
    token = collector.register()
    items = [signed_item(make_measurement(), KEY), signed_item(make_measurement(), KEY), _malformed(change)]
    response = _post(collector, token, {"measurements": items})
    assert response.status_code == 422, response.text
    data = response.json()
    assert data["index"] == 2 and data["field"] == field
    assert words in data["error"] and f"measurements[2].{field}" in data["error"]
    assert not _present(collector, _ids(items))


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"this is not json", 400, "not JSON"),
        ({"measurement": []}, 422, "'measurements' is required"),
        ({"measurements": "all of them"}, 422, "must be a list"),
        ({"measurements": ["a string"]}, 422, "measurements[0]"),
        ({"measurements": [{"content_hash": "abc"}]}, 422, "measurements[0].record: is required"),
    ],
)
def test_malformed_batch_is_a_clear_4xx(
    collector: CollectorProcess, body: object, status: int, words: str
) -> None:
    """If the batch itself is malformed, then a 4xx says what is wrong."""
    response = _post(collector, collector.register(), body)
    assert response.status_code == status
    assert words in response.json()["error"]


def test_bad_signature_or_hash_is_422(collector: CollectorProcess) -> None:
    """If a signature, content hash or key id does not match its record, then 422 and the whole batch is refused."""
    token = collector.register()
    good = signed_item(make_measurement(), KEY)
    other = make_measurement()

    wrong_signature = signed_item(make_measurement(), KEY)
    wrong_signature["signature"] = KEY.sign(other)["signature"]
    wrong_signature["content_hash"] = wrong_signature["content_hash"]

    edited = signed_item(make_measurement(), KEY)
    edited["record"]["url"] = "https://edited.example/"  # changed after signing

    rehashed = signed_item(make_measurement(), KEY)
    rehashed["record"]["domain"] = "edited.example"
    rehashed.pop("content_hash")  # no claimed hash: the signature alone must catch it

    wrong_key_id = signed_item(make_measurement(), KEY)
    wrong_key_id["key_id"] = SigningKey.generate().key_id

    half = signed_item(make_measurement(), None)
    half["signature"] = KEY.sign(other)["signature"]  # a signature without its key

    cases = [
        (wrong_signature, "signature", "does not match"),
        (edited, "content_hash", "does not match the record"),
        (rehashed, "signature", "does not match"),
        (wrong_key_id, "key_id", "does not belong"),
        (half, "public_key", "is required when the item is signed"),
    ]
    for bad, field, words in cases:
        items = [good, bad]
        response = _post(collector, token, {"measurements": items})
        assert response.status_code == 422, (field, response.text)
        assert response.json()["index"] == 1 and response.json()["field"] == field
        assert words in response.json()["error"]
        assert not _present(collector, _ids(items))


def test_concurrent_probes_store_each_measurement_once(collector: CollectorProcess) -> None:
    """If several probes upload at once, some sending the same measurements, then every id is stored exactly once."""
    # Each probe signs with its own key (a key belongs to one probe); the measurements
    # several probes send are unsigned, as only an unsigned record can come from anyone.
    shared = [signed_item(make_measurement(), None) for _ in range(30)]
    keys = [SigningKey.generate() for _ in range(6)]
    own = [[signed_item(make_measurement(), keys[p]) for _ in range(60)] for p in range(6)]
    statuses: list[int] = []
    lock = threading.Lock()

    def probe(index: int) -> None:
        token = collector.register()
        batches = [own[index][i : i + 20] for i in range(0, 60, 20)] + [shared]
        with httpx.Client(timeout=120) as client:
            for batch in batches:
                response = client.post(
                    f"{collector.api}/measurements",
                    json={"measurements": batch},
                    headers={"Authorization": f"Bearer {token}"},
                )
                with lock:
                    statuses.append(response.status_code)

    threads = [threading.Thread(target=probe, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert statuses == [200] * 24
    sent = _ids(shared).union(*(_ids(items) for items in own))
    ids = [i for i in stored_ids(collector.db_url) if i in sent]
    assert sorted(ids) == sorted(sent)


def test_health_and_openapi_describe_every_route(collector: CollectorProcess, tmp_path: Path) -> None:
    """If health and the OpenAPI document are fetched, then they answer, and the document describes every route."""
    health = httpx.get(f"{collector.api}/health", timeout=30).json()
    assert health["status"] == "ok" and health["database"] == "ok"
    assert health["limits"] == {"max_items": 50, "max_bytes": 300000}
    document = httpx.get(f"{collector.api}/openapi.json", timeout=30).json()
    assert document["openapi"].startswith("3.")
    assert document["components"]["schemas"]["Batch"]["properties"]["measurements"]["maxItems"] == 50

    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    for control in (None, ControlConfig(settings=ProbeSettings(system_resolver=False))):
        app = create_collector_app(store, CollectorConfig(control=control))
        served = {(route.path, method.lower()) for route in app.routes for method in route.methods - {"HEAD"}}
        described = {
            (path, method)
            for path, item in openapi_document(max_items=1, max_bytes=1, control=control is not None)[
                "paths"
            ].items()
            for method in item
        }
        assert served == described
    store.close()
    assert {p for p in document["paths"]} == {
        "/api/v1/probes",
        "/api/v1/measurements",
        "/api/v1/keys",
        "/api/v1/health",
        "/api/v1/openapi.json",
    }


def test_control_routes_are_mounted_only_when_asked(start_collector: Callable[..., CollectorProcess]) -> None:
    """If the collector runs with --with-control, then the control helper answers under /api/v1/control; else 404."""
    with_control = start_collector("--with-control", "--no-system-resolver")
    response = httpx.post(f"{with_control.api}/control", json={"url": "ftp://a.kg/"}, timeout=30)
    assert response.status_code == 400 and "http:// or https://" in response.json()["error"]
    assert httpx.get(f"{with_control.api}/control/health", timeout=30).json()["status"] == "ok"
    assert "/api/v1/control" in httpx.get(f"{with_control.api}/openapi.json", timeout=30).json()["paths"]
    assert httpx.get(f"{with_control.api}/health", timeout=30).json()["control"] is True
    with_control.stop()


def test_no_client_address_in_database_or_logs(collector: CollectorProcess) -> None:
    """If a probe registers, uploads and errs from 127.0.0.77, then that address is in neither the database nor the logs."""
    transport = httpx.HTTPTransport(local_address="127.0.0.77")
    with httpx.Client(transport=transport, timeout=60) as client:
        token = client.post(f"{collector.api}/probes").json()["token"]
        items = [signed_item(make_measurement(probe_asn=None), KEY) for _ in range(3)]
        headers = {"Authorization": f"Bearer {token}"}
        assert (
            client.post(
                f"{collector.api}/measurements", json={"measurements": items}, headers=headers
            ).status_code
            == 200
        )
        assert (
            client.post(
                f"{collector.api}/measurements", json={"measurements": 1}, headers=headers
            ).status_code
            == 422
        )
        assert (
            client.post(
                f"{collector.api}/measurements", json={}, headers={"Authorization": "Bearer x"}
            ).status_code
            == 401
        )
        assert client.get(f"{collector.api}/nowhere").status_code == 404
    assert "127.0.0.77" not in database_text(collector.db_url)
    assert "127.0.0.77" not in collector.logs()


def test_asn_database_fills_a_missing_asn_and_drops_the_address(
    start_collector: Callable[..., CollectorProcess], tmp_path: Path
) -> None:
    """If --asn-db is given, then a record without probe_asn is indexed under the connection's AS, the signed record is unchanged, and no address is stored."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-ASN")
    writer.insert_network(IPSet(["127.0.0.0/8"]), {"autonomous_system_number": 64512})
    writer.insert_network(IPSet(["198.51.100.0/24"]), {"autonomous_system_number": 64513})
    mmdb = tmp_path / "asn.mmdb"
    writer.to_db_file(str(mmdb))

    direct = start_collector("--asn-db", str(mmdb))
    behind_proxy = start_collector("--asn-db", str(mmdb), "--asn-header", "X-Real-IP")
    for server, headers, expected in (
        (direct, {}, 64512),
        (behind_proxy, {"X-Real-IP": "198.51.100.7"}, 64513),
    ):
        token = server.register()
        without = make_measurement(probe_asn=None)
        with_own = make_measurement(probe_asn=12345)
        items = [signed_item(without, KEY), signed_item(with_own, KEY)]
        response = _post(server, token, {"measurements": items}, headers=headers)
        assert response.status_code == 200, response.text
        engine = create_engine(server.db_url)
        with Session(engine) as session:
            row = session.get(MeasurementRow, without.id)
            assert row is not None and row.probe_asn == expected
            assert json.loads(row.record)["probe_asn"] is None  # the signed record is kept as it was
            assert (
                verify_envelope(
                    json.loads(row.record), {"signature": row.signature, "public_key": row.public_key}
                )
                == []
            )
            assert session.get(SubmissionRow, without.id).asn_source == "connection"
            assert session.get(MeasurementRow, with_own.id).probe_asn == 12345
            assert session.get(SubmissionRow, with_own.id).asn_source == "record"
        engine.dispose()
        text = database_text(server.db_url)
        assert "198.51.100.7" not in text and "198.51.100.7" not in server.logs()
        server.stop()


def test_db_upgrade_and_current(new_db: Callable[[], str]) -> None:
    """If `kuzot db upgrade` runs on an empty database, then it reaches the newest revision; again, it says so."""
    url = new_db()
    assert kuzot("db", "current", "--db", url).stdout.startswith("empty")
    first = kuzot("db", "upgrade", "--db", url)
    assert first.returncode == 0, first.stderr
    assert "to revision 0005" in first.stdout
    assert "Already at revision 0005" in kuzot("db", "upgrade", "--db", url).stdout
    assert kuzot("db", "current", "--db", url).stdout.strip() == "0005"
