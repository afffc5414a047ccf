"""OONI's Web Connectivity QA scenarios in the loopback lab: the real probe against real
servers, each case judged by the rules and compared with OONI's expected outcome.

The cases (names, situations, OONI's outcome, Kuzot's, and why they differ where they do)
are data in :mod:`probe.lab.ooni_qa`; ``docs/ooni-qa.md`` lists the differences.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from analysis.fingerprints import load_fingerprints
from analysis.verdicts import Verdict, judge
from probe.control.client import ControlClient
from probe.lab.loopback import LoopbackLab
from probe.lab.ooni_qa import CASES, QaCase, loopback_cases, setup
from probe.measure import MeasurementContext, measure_url
from probe.records import Measurement
from probe.targets import make_target

DOC = Path(__file__).resolve().parents[1] / "docs" / "ooni-qa.md"
FPS = load_fingerprints()


@pytest.fixture(scope="module")
def qa_lab() -> Iterator[LoopbackLab]:
    with LoopbackLab() as lab:
        yield lab


@pytest.fixture(scope="module")
def qa_results(qa_lab: LoopbackLab) -> dict[str, tuple[Measurement, Verdict]]:
    """Every loopback case measured once, a few at a time, with the lab's control helper
    (a dead one for the control-failure cases)."""
    urls = {c.name: setup(qa_lab, c) for c in loopback_cases()}
    dead_control = f"http://{qa_lab.web.next_ip()}:9/"
    ctx = MeasurementContext(qa_lab.probe_settings(probe_cc="KG", probe_asn=64500))
    results: dict[str, tuple[Measurement, Verdict]] = {}

    async def main() -> None:
        limiter = trio.CapacityLimiter(6)
        live = ControlClient(qa_lab.control_url)
        dead = ControlClient(dead_control, timeout=5)

        async def one(name: str, url: str) -> None:
            async with limiter:
                client = dead if name.startswith("controlFailure") else live
                m = await measure_url(make_target(url), ctx, control=client)
                results[name] = (m, judge(m, fingerprints=FPS))

        try:
            async with trio.open_nursery() as nursery:
                for name, url in urls.items():
                    nursery.start_soon(one, name, url)
        finally:
            await live.aclose()
            await dead.aclose()

    trio.run(main)
    return results


def _param(c: QaCase) -> object:
    marks = [pytest.mark.xfail(strict=False, reason=c.pending)] if c.pending else []
    return pytest.param(c, id=c.name, marks=marks)


@pytest.mark.parametrize("qa", [_param(c) for c in loopback_cases()])
def test_ooni_qa_case(qa: QaCase, qa_results: dict[str, tuple[Measurement, Verdict]]) -> None:
    """If the lab plays one of OONI's QA scenarios, then Kuzot's verdict is the one the case table expects."""
    _, verdict = qa_results[qa.name]
    shown = f"{qa.name}: {verdict.status}/{verdict.blocking} by {verdict.rule_id}: {verdict.reason}"
    assert (verdict.status, verdict.blocking) == (qa.kuzot_status, qa.kuzot_blocking), shown
    assert verdict.reason and verdict.observation_ids
    if qa.ooni_blocking in (False, None):
        assert verdict.status != "blocked", shown  # never a false "blocked"


def test_idn_target_keeps_the_name_as_written(qa_results: dict[str, tuple[Measurement, Verdict]]) -> None:
    """If the URL has an internationalised name, then it is measured under A-labels and the original is kept."""
    m, _ = qa_results["idnaWithoutCensorshipWithFirstLetterUppercase"]
    assert m.domain.startswith("xn--") and m.url.startswith("http://xn--")
    assert m.annotations["original_url"].startswith("http://Яндекс.рф:")


def test_probe_tries_the_controls_addresses(qa_results: dict[str, tuple[Measurement, Verdict]]) -> None:
    """If the resolver's address refuses, then the probe also connects to the control's address and says so."""
    m, verdict = qa_results["tcpBlockingConnectionRefusedWithInconsistentDNS"]
    own = {a for o in m.dns for a in o.addresses()}
    assert any(o.ip not in own and o.failure is None for o in m.tcp), m.tcp
    assert verdict.rule_id == "dns.control_addresses_reachable"


def test_every_case_is_classified() -> None:
    """If a case is in the table, then it names its lab and, where Kuzot differs from OONI, why."""
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) and len(names) >= 45
    for c in CASES:
        assert c.lab in ("loopback", "netns", "none")
        if not c.agrees or c.lab != "loopback":
            assert c.difference, f"{c.name}: differs from OONI or is not replayed here, but says not why"


def test_differences_are_documented() -> None:
    """If Kuzot deliberately differs from OONI in a case, then docs/ooni-qa.md lists that case."""
    text = DOC.read_text(encoding="utf-8")
    for c in CASES:
        assert f"`{c.name}`" in text, c.name


@pytest.mark.parametrize("name", ["redirectWithBrokenLocationForHTTP", "redirectWithBrokenLocationForHTTPS"])
def test_broken_redirect_location_is_recorded(
    name: str, qa_results: dict[str, tuple[Measurement, Verdict]]
) -> None:
    """If a redirect's Location has no host, then the hop fails at once with http_invalid_redirect_location_host."""
    m, _ = qa_results[name]
    assert m.http[-1].failure == "http_invalid_redirect_location_host"
    assert len(m.http) <= 2, "the broken Location must not be followed until too many redirects"
