"""The control helper's HTTP interface: good requests, and bad or oversized ones."""

from __future__ import annotations

import httpx
import pytest

from probe.lab.loopback import LoopbackLab, Scenario


@pytest.fixture(scope="module")
def lab() -> LoopbackLab:
    with LoopbackLab() as running:
        running.add(Scenario("honest", "honest.kg"))
        yield running


def _post(lab: LoopbackLab, **kwargs: object) -> httpx.Response:
    with httpx.Client(timeout=30) as client:
        return client.post(f"{lab.control_url}/api/v1/control", **kwargs)  # type: ignore[arg-type]


def test_control_measures_a_url(lab: LoopbackLab) -> None:
    """If a valid URL is posted, then the helper answers its own DNS, TCP, TLS and HTTP observations."""
    response = _post(lab, json={"url": lab.targets["honest"].url})
    assert response.status_code == 200
    data = response.json()
    assert data["failure"] is None
    assert data["dns"][0]["id"].startswith("control/dns/")
    assert data["http"][-1]["status_code"] == 200
    assert all(h["body_sample"] == "" for h in data["http"])
    assert all(c["der_b64"] == "" for t in data["tls"] for c in t["certificates"])


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"content": b"not json"}, 400, "not JSON"),
        ({"json": {"link": "x"}}, 400, "'url' is required"),
        ({"json": ["https://a.kg/"]}, 400, "'url' is required"),
        ({"json": {"url": "ftp://a.kg/"}}, 400, "http:// or https://"),
        ({"json": {"url": "https://a.kg"}}, 400, "trailing slash"),
        ({"json": {"url": "https://a.kg/", "pad": "x" * 10_000}}, 413, "larger than"),
    ],
)
def test_bad_requests_get_a_clear_4xx(lab: LoopbackLab, kwargs: dict, status: int, message: str) -> None:
    """If the request is malformed or oversized, then the helper answers a 4xx that says what is wrong."""
    response = _post(lab, **kwargs)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_oversized_streamed_body_is_refused(lab: LoopbackLab) -> None:
    """If a client streams a large body without a length, then the helper stops reading and answers 413."""

    def chunks():
        for _ in range(100):
            yield b"x" * 1024

    response = _post(lab, content=chunks())
    assert response.status_code == 413


def test_wrong_method_and_health(lab: LoopbackLab) -> None:
    """If the endpoint is fetched with GET, then 405; the health endpoint answers ok."""
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{lab.control_url}/api/v1/control").status_code == 405
        assert client.get(f"{lab.control_url}/api/v1/health").json()["status"] == "ok"


def test_private_targets_refused_by_default() -> None:
    """If a helper is not configured for a lab, then URLs on private or loopback addresses are refused."""
    import trio

    from probe.server.control.app import ControlConfig, create_control_app
    from probe.settings import ProbeSettings

    app = create_control_app(ControlConfig(settings=ProbeSettings(system_resolver=False)))

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://helper") as client:
            return await client.post("/api/v1/control", json={"url": "https://127.0.0.1/"})

    response = trio.run(call)
    assert response.status_code == 403
