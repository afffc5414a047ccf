"""One scenario model, two backends: the loopback lab plays the rows the namespace lab reads."""

from __future__ import annotations

import pytest

from probe.lab.loopback import matrix, scenario_for
from probe.lab.scenarios import LOOPBACK_METHODS, METHODS, Expect, ScenarioError, SiteRule, load_scenario
from probe.lab.web_servers import Action


@pytest.mark.parametrize("method", [*METHODS, *LOOPBACK_METHODS])
def test_every_method_has_a_loopback_play(method: str) -> None:
    """If a blocking method exists in the scenario model, then the loopback lab can play it."""
    scenario = scenario_for(SiteRule("x.kg", block=method))
    assert scenario.domain == "x.kg" and scenario.name == ("honest" if method == "none" else method)


def test_an_unknown_method_is_a_scenario_error() -> None:
    """If a row names a method the loopback lab has no play for, then it says so instead of serving honestly."""
    with pytest.raises(ScenarioError, match="dpi"):
        scenario_for(SiteRule("x.kg", block="dpi"))


def test_loopback_matrix_is_the_shared_matrix_plus_injection() -> None:
    """If the loopback lab builds its matrix, then it has every row of matrix.toml with its expected verdict, plus DNS injection."""
    rows = {s.domain: s for s in matrix()}
    for rule in load_scenario("matrix").sites:
        played = rows.pop(rule.domain)
        assert (played.expect_status, played.expect_blocking, played.expect_confirmed) == (
            rule.expect.status,
            rule.expect.blocking,
            rule.expect.confirmed,
        )
        assert played.https == (rule.scheme == "https")
    assert [s.name for s in rows.values()] == ["dns_injection"]


def test_a_row_plays_as_its_method_says() -> None:
    """If a row says ip_reset, site_down or slow, then the loopback scenario resets, is down for everyone, or delays."""
    assert scenario_for(SiteRule("a.kg", block="ip_reset")).site.action is Action.RESET
    down = scenario_for(SiteRule("b.kg", block="site_down", expect=Expect(status="down")))
    assert down.down_for_everyone and down.expect_status == "down"
    slow = scenario_for(SiteRule("c.kg", block="slow", delay_ms=250)).site
    assert slow.action is Action.SLOW and slow.seconds == 0.25
