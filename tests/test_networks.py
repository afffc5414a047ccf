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
