"""Episodes from verdicts: the opening and closing rule, and bounds that contain the truth."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from analysis.episodes import EpisodeRule, bare_domain, episodes_to_records, find_episodes, site_of
from analysis.fingerprints import load_fingerprints
from analysis.synthetic import BlockTruth, HistorySpec, generate_history
from analysis.verdicts import judge_all, verdicts_frame

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _frame(statuses: str, *, step: timedelta = timedelta(hours=6), confirmed: str = "") -> pd.DataFrame:
    """Verdicts from a string: B blocked, A accessible, D down, O probe offline, I inconclusive;
    positions listed in ``confirmed`` (as 'C' marks) are confirmed."""
    words = {"B": "blocked", "A": "accessible", "D": "down", "O": "probe_offline", "I": "inconclusive"}
    return pd.DataFrame(
        {
            "measurement_id": [f"m{i}" for i in range(len(statuses))],
            "domain": "www.example.kg",
            "probe_asn": 64500,
            "measured_at": [T0 + i * step for i in range(len(statuses))],
            "status": [words[c] for c in statuses],
            "blocking": ["dns" if c == "B" else None for c in statuses],
            "confirmed": [confirmed[i : i + 1] == "C" for i in range(len(statuses))],
        }
    )


def test_a_lone_timeout_opens_nothing():
    assert find_episodes(_frame("AAAABAAAA")).empty


def test_a_confirmed_lone_block_opens_an_episode():
    episodes = find_episodes(_frame("AAAABAAAA", confirmed="    C"))
    assert len(episodes) == 1
    assert episodes.loc[0, "measurements_blocked"] == 1


def test_a_lone_success_inside_a_block_closes_nothing():
    episodes = find_episodes(_frame("AABBBBABBBBAA"))
    assert len(episodes) == 1
    ep = episodes.iloc[0]
    assert (ep["measurements_blocked"], ep["measurements_total"], ep["measurements_accessible"]) == (8, 9, 1)
    assert ep["first_blocked"] == T0 + 2 * timedelta(hours=6)
    assert ep["last_blocked"] == T0 + 10 * timedelta(hours=6)


def test_down_and_offline_neither_open_nor_close():
    assert find_episodes(_frame("AADDDDOOOOAA")).empty
    episodes = find_episodes(_frame("AABBDDOOBBAA"))
    assert len(episodes) == 1
    assert episodes.loc[0, "measurements_total"] == 8
    # Blocked, then offline, then blocked again: one episode, not two.
    assert len(find_episodes(_frame("ABBOOOOBBA A".replace(" ", "A")))) == 1


def test_duration_is_a_bracket():
    ep = find_episodes(_frame("AABBBBAA")).iloc[0]
    assert ep["duration_days_min"] == pytest.approx(0.75)  # first to last blocked: 3 steps of 6 h
    assert ep["duration_days_max"] == pytest.approx(1.25)  # last accessible before to first after
    assert ep["last_accessible_before"] == T0 + timedelta(hours=6)
    assert ep["first_accessible_after"] == T0 + 6 * timedelta(hours=6)
    assert not ep["ongoing"]


def test_ongoing_and_unknown_onset_have_no_upper_bound():
    ep = find_episodes(_frame("BBBB")).iloc[0]
    assert ep["ongoing"]
    assert pd.isna(ep["duration_days_max"]) and pd.isna(ep["last_accessible_before"])
    records = episodes_to_records(find_episodes(_frame("AABBB")))
    assert records[0]["duration_days_max"] is None and records[0]["ongoing"] is True
    assert records[0]["first_blocked"] == "2024-01-01T12:00:00Z"


def test_rule_is_configurable():
    assert len(find_episodes(_frame("AABAA"), EpisodeRule(open_after=1))) == 1
    assert len(find_episodes(_frame("AABBBABBBAA"), EpisodeRule(close_after=1))) == 2
    with pytest.raises(ValueError):
        EpisodeRule(open_after=0)


def test_domains_are_compared_without_www_and_mirrors_group_by_site():
    assert bare_domain("WWW.Azattyk.org.") == "azattyk.org"
    assert site_of("azattyk.gitlab.io") == "azattyk.org"
    assert site_of("kaktus.media") == "kaktus.media"
    episodes = find_episodes(_frame("AABBBAA"))
    assert episodes.loc[0, "domain"] == "example.kg"


def test_every_episode_keeps_its_measurements():
    ep = find_episodes(_frame("AABBABBAA")).iloc[0]
    assert ep["measurement_ids"] == ["m2", "m3", "m4", "m5", "m6"]
    assert len(ep["episode_id"]) == 16


def _random_spec(seed: int) -> HistorySpec:
    rng = random.Random(seed)
    start = datetime(2023, 1, 1, tzinfo=UTC)
    asns = {64610 + i: f"net {i}" for i in range(3)}
    domains = ["a.kg", "b.kg", "c.kg"]
    blocks = []
    for asn in asns:
        for domain in domains:
            cursor = start + timedelta(days=rng.uniform(3, 20))
            while cursor < start + timedelta(days=110) and rng.random() < 0.7:
                length = timedelta(days=rng.uniform(3, 40))
                end = cursor + length
                method = rng.choice(["dns", "tcp_ip", "tls", "http-failure", "blockpage"])
                blocks.append(
                    BlockTruth(
                        domain, asn, cursor, None if end > start + timedelta(days=120) else end, method
                    )
                )
                cursor = end + timedelta(days=rng.uniform(4, 30))
    offline = {asn: [date(2023, 1, 1) + timedelta(days=rng.randrange(120)) for _ in range(4)] for asn in asns}
    return HistorySpec(
        start=start,
        end=start + timedelta(days=120),
        asns=asns,
        domains=domains,
        blocks=blocks,
        every=timedelta(hours=8),
        noise=0.03,
        outage=0.02,
        offline_days=offline,
        seed=seed,
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bounds_contain_the_truth_in_months_of_noisy_history(seed):
    """Generated months with known blocks, outages, offline days and noise: one episode per block,
    and every episode's bracket contains the true start and end."""
    spec = _random_spec(seed)
    measurements = list(generate_history(spec))
    verdicts = verdicts_frame(judge_all(measurements, fingerprints=load_fingerprints()))
    assert {"down", "probe_offline"} <= set(verdicts["status"])
    episodes = find_episodes(verdicts)
    assert len(episodes) == len(spec.blocks), "no false episodes from noise, outages or offline days"
    for truth in spec.blocks:
        mine = episodes[(episodes["domain"] == truth.domain) & (episodes["probe_asn"] == truth.probe_asn)]
        hits = mine[
            (mine["first_blocked"] >= truth.start)
            & (mine["first_blocked"] <= truth.start + timedelta(days=2))
        ]
        assert len(hits) == 1, truth
        ep = hits.iloc[0]
        before = ep["last_accessible_before"]
        assert pd.isna(before) or before <= truth.start <= ep["first_blocked"]
        if truth.end is None:
            assert ep["ongoing"]
        else:
            assert not ep["ongoing"]
            assert ep["last_blocked"] < truth.end <= ep["first_accessible_after"]
            true_days = (truth.end - truth.start).total_seconds() / 86400
            assert ep["duration_days_min"] <= true_days
            if not pd.isna(ep["duration_days_max"]):
                assert true_days <= ep["duration_days_max"]


def _plain_and_compact(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One verdict frame twice: with plain object columns (ties in time, rows shuffled,
    times in seconds, a missing network) and as the verdict frames hold it (categoricals,
    Arrow-backed ids when pyarrow is installed)."""
    from analysis.verdicts import compact_verdicts

    measurements = list(generate_history(_random_spec(seed)))
    frame = verdicts_frame(judge_all(measurements, fingerprints=load_fingerprints()))
    plain = frame.astype({c: object for c in ("measurement_id", "domain", "status", "blocking")})
    plain = plain.sample(frac=1, random_state=seed).reset_index(drop=True)
    plain["measured_at"] = plain["measured_at"].dt.floor("D").dt.as_unit("s")  # many ties, by id
    plain.loc[plain.index % 50 == 0, "probe_asn"] = pd.NA
    plain.loc[plain.index % 7 == 0, "domain"] = "www." + plain["domain"].astype(str)
    return plain, compact_verdicts(plain.copy())


@pytest.mark.parametrize("by_site", [False, True])
def test_compact_frames_give_the_same_episodes_as_plain_ones(by_site):
    """If the verdict frame holds categoricals and Arrow ids, then its episodes equal those of the same frame in plain columns, ties in time ordered by id."""
    plain, compact = _plain_and_compact(2)
    assert isinstance(compact["status"].dtype, pd.CategoricalDtype)
    expected = find_episodes(plain, by_site=by_site)
    assert len(expected) > 3
    pd.testing.assert_frame_equal(find_episodes(compact, by_site=by_site), expected)
