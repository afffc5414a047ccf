"""Issue 15's classes of wrong verdicts, each on hand-built records (pure rules, no network).

The records reuse the builders of :mod:`tests.test_verdicts`; addresses are documentation
ranges written as strings, never contacted.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from analysis.episodes import find_episodes
from analysis.fingerprints import Fingerprint, FingerprintSet
from analysis.verdicts import judge
from probe.failures import Failure
from probe.records import CertificateInfo, HttpObservation, TcpObservation
from tests.test_verdicts import (
    FPS,
    GOOD_CERT,
    HOST,
    OTHER_PUBLIC,
    PLAIN_URL,
    PUBLIC,
    ROGUE_CERT,
    control,
    dns,
    http,
    measurement,
    plain_http,
    tcp,
    tls,
    verdict_of,
)

CAPTCHA_TITLE = "Just a moment..."


def captcha(obs_id: str = "http/0", *, url: str = f"https://{HOST}/") -> HttpObservation:
    return http(obs_id, url=url, status=503, title=CAPTCHA_TITLE, length=7_000)


# --- 1. a CDN's CAPTCHA over validated TLS -----------------------------------------------------


def test_captcha_over_validated_tls_with_the_controls_certificate_is_accessible() -> None:
    """If a 503 CAPTCHA comes over TLS validated with the certificate the control saw, then the site is accessible."""
    v = verdict_of(measurement(http_obs=[captcha()], ctrl=control()))
    assert (v.status, v.blocking, v.rule_id) == ("accessible", None, "http.authenticated_site_answer")
    assert "tls/0" in v.observation_ids and "control/tls/0" in v.observation_ids


def test_captcha_over_validated_tls_with_another_certificate_is_inconclusive() -> None:
    """If the CAPTCHA's validated certificate is not the control's, then the verdict is inconclusive, never blocked."""
    other = CertificateInfo("cc" * 32, f"CN={HOST}", "CN=Real CA", [HOST], "2026-01-01", "2027-01-01")
    ctrl = control(tls_obs=[tls("tls/0", cert=other)])
    v = verdict_of(measurement(http_obs=[captcha()], ctrl=ctrl))
    assert (v.status, v.rule_id) == ("inconclusive", "http.authenticated_page_differs")


def test_captcha_over_plain_http_may_be_a_blockpage() -> None:
    """If the same 503 comes over plain HTTP, then it is an unconfirmed http-diff block."""
    v = verdict_of(plain_http(http_obs=[captcha(url=PLAIN_URL)]))
    assert (v.status, v.blocking, v.confirmed) == ("blocked", "http-diff", False)


# --- 2. ghost DNS -------------------------------------------------------------------------------


def _ghost_control() -> object:
    return control(
        dns_obs=[dns("dns/0", [], Failure.DNS_NXDOMAIN)],
        tcp_obs=[],
        tls_obs=[],
        http_obs=[http("http/0", status=None, failure=Failure.DNS_NXDOMAIN, ip=None)],
    )


def test_ghost_answer_serving_a_page_is_dns_blocking() -> None:
    """If the control gets NXDOMAIN while the probe's resolver gives an address serving a page, then it is DNS blocking."""
    m = plain_http(http_obs=[http("http/0", url=PLAIN_URL, ip=OTHER_PUBLIC, title="Blocked", length=900)])
    m = replace(
        m, dns=[dns("dns/0", [OTHER_PUBLIC])], tcp=[TcpObservation("tcp/0", OTHER_PUBLIC, 80, 0, 0.01)]
    )
    m.control = _ghost_control()  # type: ignore[assignment]
    v = verdict_of(m)
    assert (v.status, v.blocking, v.rule_id) == ("blocked", "dns", "dns.ghost_answer")


def test_ghost_answer_with_a_failed_handshake_is_dns_blocking() -> None:
    """If the control gets NXDOMAIN and the probe's invented address fails its handshake, then it is DNS blocking."""
    m = measurement(
        dns_obs=[dns("dns/0", [OTHER_PUBLIC])],
        tcp_obs=[tcp("tcp/0", OTHER_PUBLIC)],
        tls_obs=[tls("tls/0", OTHER_PUBLIC, Failure.CONNECTION_RESET, cert=None)],
        http_obs=[],
        ctrl=_ghost_control(),  # type: ignore[arg-type]
    )
    v = verdict_of(m)
    assert (v.status, v.blocking, v.rule_id) == ("blocked", "dns", "dns.ghost_answer")


def test_control_silence_is_no_ghost() -> None:
    """If the control's resolver timed out (not NXDOMAIN), then an address from the probe's resolver is no ghost."""
    ctrl = control(
        dns_obs=[dns("dns/0", [], Failure.GENERIC_TIMEOUT)],
        tcp_obs=[],
        tls_obs=[],
        http_obs=[http("http/0", status=None, failure=Failure.GENERIC_TIMEOUT, ip=None)],
    )
    v = verdict_of(measurement(http_obs=[http("http/0")], ctrl=ctrl))
    assert v.status != "blocked", v.reason


# --- 3. SNI evidence before the DNS comparison -------------------------------------------------


def test_sni_evidence_decides_before_inconsistent_dns() -> None:
    """If the handshake is reset for the site's name but completes for another, then it is SNI filtering even with odd DNS."""
    m = measurement(
        dns_obs=[dns("dns/0", [OTHER_PUBLIC])],
        tcp_obs=[tcp("tcp/0", OTHER_PUBLIC), tcp("tcp/1", OTHER_PUBLIC)],
        tls_obs=[
            tls("tls/0", OTHER_PUBLIC, Failure.CONNECTION_RESET, cert=None),
            tls("tls/1", OTHER_PUBLIC, purpose="comparison", server_name="example.org"),
        ],
        http_obs=[],
        ctrl=control(),
    )
    v = verdict_of(m)
    assert (v.status, v.blocking, v.rule_id) == ("blocked", "tls", "tls.sni_filtering")


# --- 4. the control's addresses -----------------------------------------------------------------


def test_site_reached_at_the_controls_address_while_the_resolvers_fail_is_dns_blocking() -> None:
    """If the resolver's address refuses while the control's address serves the control's page, then it is DNS blocking."""
    m = measurement(
        dns_obs=[dns("dns/0", [OTHER_PUBLIC])],
        tcp_obs=[tcp("tcp/0", OTHER_PUBLIC, Failure.CONNECTION_REFUSED), tcp("tcp/1", PUBLIC)],
        tls_obs=[tls("tls/0", PUBLIC)],
        http_obs=[http("http/0", ip=PUBLIC)],
        ctrl=control(),
    )
    v = verdict_of(m)
    assert (v.status, v.blocking, v.rule_id) == ("blocked", "dns", "dns.control_addresses_reachable")
    assert "tcp/0" in v.observation_ids and "tls/0" in v.observation_ids


def test_control_address_failing_too_stays_unblocked() -> None:
    """If the control's address fails for the probe as well, then inconsistent DNS plus a failed connect is not DNS blocking."""
    m = measurement(
        dns_obs=[dns("dns/0", [OTHER_PUBLIC])],
        tcp_obs=[
            tcp("tcp/0", OTHER_PUBLIC, Failure.CONNECTION_REFUSED),
            tcp("tcp/1", PUBLIC, Failure.CONNECTION_REFUSED),
        ],
        tls_obs=[],
        http_obs=[],
        ctrl=control(),
    )
    v = verdict_of(m)
    assert v.rule_id != "dns.control_addresses_reachable"
    assert v.status in ("inconclusive", "blocked") and v.blocking in (None, "tcp_ip"), v.reason


# --- 7. fingerprint semantics -------------------------------------------------------------------


def _fp(name: str, scope: str, pattern: str, countries: tuple[str, ...] = ()) -> Fingerprint:
    return Fingerprint(name, scope, "body", "contains", pattern, expected_countries=countries)


def test_false_positive_fingerprint_never_demotes_a_consistent_page() -> None:
    """If a page consistent with the control's matches an fp-scope fingerprint, then it stays accessible."""
    fps = FingerprintSet(http=(_fp("broad_twitter_card", "fp", "twitter:card"),))
    page = http("http/0", title="Other title words", body=b'<meta name="twitter:card">' + b"x" * 39_000)
    v = verdict_of(measurement(http_obs=[page], ctrl=control()), fps)
    assert v.status == "accessible", v.reason


def test_false_positive_fingerprint_stops_a_blockpage_match() -> None:
    """If a page matches a blockpage row and an fp row, then it is not counted as a blockpage."""
    fps = FingerprintSet(
        http=(_fp("vendor_page", "isp", "Access denied"), _fp("hosting_error", "fp", "hosting panel"))
    )
    body = b"<title>x</title>Access denied by the hosting panel" + b"y" * 38_000
    v = verdict_of(measurement(http_obs=[http("http/0", body=body)], ctrl=control()), fps)
    assert v.rule_id not in ("http.blockpage_fingerprint", "http.blockpage_fingerprint_unconfirmed")


def test_vendor_fingerprint_without_country_does_not_confirm() -> None:
    """If a page matches a vendor (prod) fingerprint with no expected country, then the block is not confirmed."""
    fps = FingerprintSet(http=(_fp("some_firewall_product", "prod", "Web Filter Block"),))
    m = plain_http(http_obs=[http("http/0", url=PLAIN_URL, body=b"Web Filter Block Override")])
    v = verdict_of(m, fps)
    assert (v.status, v.confirmed, v.rule_id) == ("blocked", False, "http.blockpage_fingerprint_unconfirmed")


def test_fingerprint_of_another_country_does_not_confirm_but_ours_do() -> None:
    """If a national fingerprint lists another country, then it does not confirm in KG; our Kyrgyz rows do."""
    fps = FingerprintSet(http=(_fp("elsewhere_national", "nat", "Blocked by order", ("IR",)),))
    m = plain_http(http_obs=[http("http/0", url=PLAIN_URL, body=b"Blocked by order")])
    assert verdict_of(m, fps).confirmed is False
    kg = FingerprintSet(http=(_fp("kg_isp", "isp", "Blocked by order", ("KG",)),))
    assert verdict_of(m, kg).confirmed is True
    assert verdict_of(m, FPS).rule_id != "http.blockpage_fingerprint"  # no bundled row matches this page


def test_body_length_hint_states_the_ratio_the_right_way_round() -> None:
    """If the probe's page is larger than the control's, then the reason says the control's is N% of the probe's."""
    m = plain_http(http_obs=[http("http/0", url=PLAIN_URL, length=7936)])
    m.control.http[0] = replace(m.control.http[0], body_length=272)  # type: ignore[union-attr]
    v = verdict_of(m)
    assert v.rule_id == "http.body_length_hint"
    assert "control's page (control/http/0, 272 bytes) is 3% the size of the probe's page" in v.reason


def test_rogue_certificate_is_still_a_block() -> None:
    """If the certificate does not validate and is not the control's, then the verdict stays a confirmed TLS block."""
    m = measurement(
        tls_obs=[tls("tls/0", failure=Failure.SSL_UNKNOWN_AUTHORITY, cert=ROGUE_CERT)],
        http_obs=[],
        ctrl=control(tls_obs=[tls("tls/0", cert=GOOD_CERT)]),
    )
    v = verdict_of(m)
    assert (v.status, v.blocking, v.confirmed) == ("blocked", "tls", True)


# --- 8. episodes across a change of method --------------------------------------------------------


def _frame(rows: list[tuple[int, str, str | None, bool]]) -> pd.DataFrame:
    t0 = pd.Timestamp("2022-10-27T00:00:00Z")
    return pd.DataFrame(
        {
            "measurement_id": [f"m{i}" for i in range(len(rows))],
            "domain": ["azattyk.org"] * len(rows),
            "probe_asn": [8449] * len(rows),
            "measured_at": [t0 + pd.Timedelta(minutes=minutes) for minutes, *_ in rows],
            "status": [status for _, status, _, _ in rows],
            "blocking": [blocking for *_, blocking, _ in rows],
            "confirmed": [confirmed for *_, confirmed in rows],
        }
    )


def test_isolated_other_method_neither_extends_nor_opens_an_episode() -> None:
    """If one http-failure follows a DNS episode's last blocked verdict, then the episode ends at its own last verdict."""
    rows = [(i * 60, "blocked", "dns", True) for i in range(6)]
    rows += [(6 * 60 + 66, "blocked", "http-failure", False)]
    rows += [(8 * 60 + i * 60, "accessible", None, False) for i in range(4)]
    episodes = find_episodes(_frame(rows))
    assert len(episodes) == 1
    episode = episodes.iloc[0]
    assert episode["blocking"] == "dns" and episode["measurements_blocked"] == 6
    assert episode["last_blocked"] == pd.Timestamp("2022-10-27T05:00:00Z")


def test_persistent_change_of_method_starts_a_new_episode() -> None:
    """If DNS blocking gives way to lasting SNI blocking, then there are two episodes, one per method."""
    rows = [(i * 60, "blocked", "dns", True) for i in range(4)]
    rows += [(240 + i * 60, "blocked", "tls", False) for i in range(4)]
    episodes = find_episodes(_frame(rows))
    assert list(episodes["blocking"]) == ["dns", "tls"]
    assert episodes.iloc[1]["last_accessible_before"] is None or pd.isna(
        episodes.iloc[1]["last_accessible_before"]
    )


def test_other_method_inside_an_episode_is_counted_in_it() -> None:
    """If one http-failure sits between DNS blocked verdicts, then it is part of the one DNS episode."""
    rows = [
        (0, "blocked", "dns", True),
        (60, "blocked", "http-failure", False),
        (120, "blocked", "dns", True),
    ]
    episodes = find_episodes(_frame(rows))
    assert len(episodes) == 1 and episodes.iloc[0]["measurements_blocked"] == 3


# --- 4b. answers in the control's network (an ASN database) ---------------------------------------


def test_answers_in_the_controls_network_count_as_consistent(tmp_path: Path) -> None:
    """If an ASN database puts the probe's answer in the control's network, then the DNS is not called inconsistent."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    from analysis.asn import AsnDatabase

    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-ASN")
    writer.insert_network(IPSet([f"{PUBLIC}/32", f"{OTHER_PUBLIC}/32"]), {"autonomous_system_number": 64496})
    path = tmp_path / "asn.mmdb"
    writer.to_db_file(str(path))
    headers = [("Content-Type", "text/html"), ("Server", "ISP-Filter"), ("X-Filter", "1")]
    m = plain_http(
        http_obs=[
            http("http/0", url=PLAIN_URL, ip=OTHER_PUBLIC, title="Restricted", length=900, headers=headers)
        ]
    )
    m = replace(
        m, dns=[dns("dns/0", [OTHER_PUBLIC])], tcp=[TcpObservation("tcp/0", OTHER_PUBLIC, 80, 0, 0.01)]
    )
    assert judge(m, fingerprints=FPS).rule_id == "dns.inconsistent_then_http_diff"
    database = AsnDatabase(path)
    assert database(PUBLIC) == 64496
    v = judge(m, fingerprints=FPS, asns=database)
    assert (v.status, v.blocking, v.rule_id) == ("blocked", "http-diff", "http.body_and_title_mismatch")
    database.close()


def test_unusable_asn_database_says_what_is_wrong(tmp_path: Path) -> None:
    """If the ASN database file is not one, then the error names the file."""
    import pytest

    from analysis.asn import AsnDatabase, AsnDatabaseError

    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"not a database")
    with pytest.raises(AsnDatabaseError, match=r"bad\.mmdb"):
        AsnDatabase(bad)
