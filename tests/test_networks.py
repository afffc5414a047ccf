"""The network-name table and its labels."""

from analysis.networks import known_networks, network_label


def test_known_network_is_named_with_its_number() -> None:
    """If the table knows an AS, then its label is ``Name (ASn)``."""
    assert network_label(8449) == "ElCat (AS8449)"
    assert network_label("AS8449") == "ElCat (AS8449)"
    assert network_label(8449.0) == "ElCat (AS8449)"


def test_unknown_or_missing_networks_have_honest_labels() -> None:
    """If no name is known, then the label is the bare number, or says the network is unknown."""
    assert network_label(64601) == "AS64601"
    assert network_label(64601, "Lab ISP") == "Lab ISP (AS64601)"
    assert network_label(None) == "unknown network"
    assert network_label(float("nan")) == "unknown network"


def test_every_row_cites_a_source() -> None:
    """If a network is in the table, then its row says where the name comes from."""
    assert all(n.source and n.name for n in known_networks().values())


def test_episodes_and_orders_name_the_network(history_db: dict) -> None:
    """If episodes and orders are asked for as JSON, then each row keeps probe_asn and adds its network label."""
    import json

    from tests.conftest import kuzot

    for command in (["episodes"], ["orders", "--orders", str(history_db["orders"])]):
        result = kuzot(*command, "--db", history_db["db"], "--json")
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)
        assert rows, command
        for row in rows:
            assert "probe_asn" in row
            assert row["network"] == network_label(row["probe_asn"])


def test_the_table_names_kyrgyz_networks_with_sources() -> None:
    """If the packaged table is read, then the major Kyrgyz networks are named and every row cites a source."""
    table = known_networks()
    assert network_label(12997) == "Kyrgyztelecom (AS12997)"
    assert network_label(50223) == "MegaCom (AS50223)"
    assert network_label(41329) == "Beeline (Sky Mobile) (AS41329)"
    assert network_label(29061) == "Saima Telecom (AS29061)"
    assert all(n.source and n.operator for n in table.values())
