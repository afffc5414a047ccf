"""The OONI importer against hostile lines, a fuzz suite (bounded), and the Explorer link of what it imports."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.provenance import ooni_explorer_url
from probe.formats.ooni import measurement_from_ooni, parse_line
from tests.test_ooni_format import ooni_line


def _line(data: object) -> bytes:
    return json.dumps(data).encode() if not isinstance(data, bytes) else data


def test_unclosed_ipv6_input_is_skipped_with_its_reason() -> None:
    """If a line's input is "http://[::1", then that line is skipped saying the input is not a URL."""
    line = ooni_line()
    line["input"] = "http://[::1"
    result = parse_line(7, _line(line))
    assert result is not None and result.measurement is None
    assert "not a URL" in str(result.error)


def test_huge_integer_is_skipped_with_its_reason() -> None:
    """If a line holds a 5000-digit integer, then that line is skipped as not JSON, not raised."""
    raw = json.dumps(ooni_line()).replace('"test_runtime": 2.5', '"test_runtime": ' + "9" * 5000).encode()
    result = parse_line(1, raw)
    assert result is not None and result.measurement is None and "not JSON" in str(result.error)


def test_deeply_nested_test_keys_are_skipped_with_their_reason() -> None:
    """If test_keys nest 100,000 levels deep, then that line is skipped with a reason, not a RecursionError."""
    head = json.dumps(ooni_line())[:-1]
    raw = (head + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()
    result = parse_line(1, raw)
    assert result is not None and result.measurement is None and result.error is not None
    nested = ooni_line()
    body: object = "deep"
    for _ in range(3000):
        body = {"b": body}
    nested["test_keys"]["requests"][0]["response"]["body"] = body
    result = parse_line(2, json.dumps(nested).encode() if False else _deep_dump(nested))
    assert result is not None and (result.measurement is not None or result.error is not None)


def _deep_dump(data: dict) -> bytes:
    """json.dumps refuses 3000 levels; write the nested body by hand."""
    body = data["test_keys"]["requests"][0]["response"].pop("body")
    depth = 0
    while isinstance(body, dict):
        body = body["b"]
        depth += 1
    text = json.dumps(data)
    marker = '"response": {'
    nested = '{"b": ' * depth + json.dumps(body) + "}" * depth
    return text.replace(marker, marker + '"body": ' + nested + ", ", 1).encode()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    key=st.sampled_from(
        ["input", "measurement_start_time", "probe_asn", "probe_cc", "report_id", "measurement_uid", "test_keys"]
    ),
    value=JSON,
    tk_key=st.sampled_from(["queries", "tcp_connect", "tls_handshakes", "requests", "control", "control_failure"]),
    tk_value=JSON,
)
def test_fuzzed_fields_never_raise(key: str, value: object, tk_key: str, tk_value: object) -> None:
    """If any field or test key of a measurement holds arbitrary JSON, then the line converts or is skipped with a reason."""
    line = ooni_line()
    line[key] = value
    if isinstance(line.get("test_keys"), dict):
        line["test_keys"][tk_key] = tk_value
    result = parse_line(1, json.dumps(line).encode())
    assert result is not None
    assert (result.measurement is None) != (result.error is None)


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=300))
def test_fuzzed_bytes_never_raise(raw: bytes) -> None:
    """If a line is arbitrary bytes, then it is skipped with a reason or blank, never raised."""
    result = parse_line(1, raw)
    assert result is None or result.error is not None or result.measurement is not None


def test_explorer_url_by_uid_or_by_report_and_input() -> None:
    """If an imported measurement has OONI's uid, then its Explorer link is /m/<uid>; without one, the report id and input form."""
    line = ooni_line()
    line["measurement_uid"] = "20221027060102.123456_KG_webconnectivity_0123456789abcdef"
    m = measurement_from_ooni(line)
    assert ooni_explorer_url(m.annotations) == (
        "https://explorer.ooni.org/m/20221027060102.123456_KG_webconnectivity_0123456789abcdef"
    )
    bare = measurement_from_ooni(ooni_line())
    assert ooni_explorer_url(bare.annotations) == (
        "https://explorer.ooni.org/measurement/20221027T060100Z_webconnectivity_KG_8449_n1_AbCdEfGhIjKlMnOp"
        "?input=https%3A%2F%2Fkloop.kg%2F"
    )
    assert ooni_explorer_url({}) is None
    assert ooni_explorer_url({"kuzot.other": "x"}) is None
