"""Bounded, deterministic fuzzing of every parser that reads someone else's bytes:
test lists, orders files, config.toml and the collector's batch parser.

The property is the same for each: any input either parses or is refused with the
parser's own error (which names the line, key or field), never another exception.
Examples are derandomized and few enough to run in CI in seconds.
"""

from __future__ import annotations

import hashlib
import json
import string
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from analysis.orders import ORDER_COLUMNS, OrdersFileError, orders_frame, parse_orders
from probe.records import canonical_json
from probe.server.collector.validate import Problem, Refusal, validate_batch
from probe.store.database import PreparedItem
from probe.store.record_codec import decode_record
from probe.targets import HEADER, TargetsError, parse_targets
from probe.volunteer.config import SETTINGS, Config, ConfigError, load_config, parse_value, save_config
from tests.test_store import make_measurement

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: Cells that look like what the files hold, plus the hostile characters.
_cell = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "https://24.kg/",
            "http://[::1",
            "https://xn--80ak6aa92e.com/",
            "NEWS",
            "2022-10-26",
            "60",
            "9" * 5000,
            "-1",
            "azattyk.org",
            "\x00",
            '"',
            "\ud800",
            "9999-12-31",
        ]
    ),
)


def _csv_text(header: list[str] | tuple[str, ...]) -> st.SearchStrategy[str]:
    row = st.lists(_cell, min_size=len(header) - 1, max_size=len(header) + 1)
    quoted = row.map(lambda cells: ",".join(c.replace("\n", " ") for c in cells))
    return st.lists(quoted, max_size=6).map(lambda rows: "\n".join([",".join(header), *rows]) + "\n")


@FUZZ
@given(st.one_of(_csv_text(HEADER), st.text(max_size=200)))
@example("url,category_code,category_description,date_added,source,notes\n" + '"' + "x" * 200_000 + '"\n')
def test_targets_parse_or_refuse(text: str) -> None:
    """If a test list holds anything at all, then it parses or is refused with a TargetsError."""
    try:
        targets = parse_targets(text, name="fuzz.csv")
    except TargetsError as exc:
        assert str(exc).startswith("fuzz.csv")
    else:
        assert targets and all(t.url for t in targets)


@FUZZ
@given(st.one_of(_csv_text(ORDER_COLUMNS), st.text(max_size=200)))
@example(",".join(ORDER_COLUMNS) + "\n" + '"' + "x" * 200_000 + '"\n')
@example(",".join(ORDER_COLUMNS) + "\nO1,2022-10-26,MoC,law,azattyk.org,999999999,,,,\n")
def test_orders_parse_or_refuse(text: str) -> None:
    """If an orders file holds anything at all, then it parses (and frames) or is refused with an OrdersFileError."""
    try:
        orders = parse_orders(text, name="fuzz.csv")
    except OrdersFileError as exc:
        assert str(exc).startswith("fuzz.csv")
    else:
        orders_frame(orders)


_toml_value = st.one_of(
    st.integers(),
    st.text(max_size=20),
    st.booleans(),
    st.floats(allow_nan=False),
    st.lists(st.one_of(st.text(max_size=10), st.integers()), max_size=3),
)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=200),
        st.dictionaries(st.sampled_from(sorted(SETTINGS)), _toml_value, max_size=4).map(
            lambda d: "".join(f"{k} = {json.dumps(v)}\n" for k, v in d.items()).encode()
        ),
    )
)
def test_config_file_loads_or_names_the_problem(
    tmp_path_factory: pytest.TempPathFactory, content: bytes
) -> None:
    """If config.toml holds any bytes at all, then it loads or gives one ConfigError line."""
    directory = tmp_path_factory.mktemp("config")
    (directory / "config.toml").write_bytes(content)
    try:
        config = load_config(directory)
    except ConfigError as exc:
        assert "\n" not in str(exc).strip()
    else:
        save_config(config)  # what was read can be written and read back
        assert load_config(directory).values == config.values


@FUZZ
@given(
    st.sampled_from(sorted(SETTINGS)), st.text(alphabet=string.printable + "²\x00\x7fкг\ud800", max_size=20)
)
def test_config_set_values_round_trip(tmp_path_factory: pytest.TempPathFactory, key: str, text: str) -> None:
    """If config set gets any text, then it is refused naming the key, or written so it reads back the same."""
    try:
        value = parse_value(key, text)
    except ConfigError as exc:
        assert key in str(exc)
        return
    directory = tmp_path_factory.mktemp("config")
    config = Config(Path(directory) / "config.toml", {key: value})
    save_config(config)
    assert load_config(directory).values == {key: value}


_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
_RECORD = make_measurement().to_dict()
_PATHS = [
    ("url",),
    ("started_at",),
    ("probe_asn",),
    ("format_version",),
    ("dns",),
    ("dns", 0, "answers"),
    ("dns", 0, "started"),
    ("http", 0, "title"),
    ("http", 0, "headers"),
    ("http", 0, "body_sample"),
    ("annotations",),
    ("control",),
    ("zz_unknown",),
]


def _replace(record: dict, path: tuple, value: object) -> dict:
    copy = json.loads(json.dumps(record))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy


@FUZZ
@given(st.sampled_from(_PATHS), _json, st.booleans())
def test_batch_parser_never_fails_on_a_mutated_record(path: tuple, value: object, hashed: bool) -> None:
    """If one field of an uploaded record is replaced by any JSON value, then the batch parser stores it or names a problem, never raising."""
    record = _replace(_RECORD, path, value)
    item: dict = {"record": record}
    if hashed:
        item["content_hash"] = "0" * 64
    body = json.dumps({"measurements": [item]}).encode()
    outcome = validate_batch(body, 10, "probe")
    assert isinstance(outcome, Refusal | list)
    if isinstance(outcome, list):
        assert all(isinstance(x, PreparedItem | Problem) for x in outcome)
        if hashed:
            assert outcome and isinstance(outcome[0], Problem)


@FUZZ
@given(st.binary(max_size=300))
@example(b'{"measurements": [' + b"[" * 50_000 + b"]" * 50_000 + b"]}")
@example(b'{"measurements": [{"record": {"id": "\\ud800"}}]}')
def test_batch_parser_never_fails_on_bytes(body: bytes) -> None:
    """If a batch body is any bytes at all, then the parser refuses it or names problems, never raising."""
    outcome = validate_batch(body, 10, None)
    assert isinstance(outcome, Refusal | list)


@pytest.mark.parametrize("number", [1e16, 1.5e-07, 2.5, -1e22, 5.9e-05, 1e-05, 9.999999999999999e-05])
def test_batch_parser_hashes_exponent_numbers_as_python_writes_them(number: float) -> None:
    """If a record holds a float the way msgspec writes it (1e16, not Python's 1e+16; 0.000059, not 5.9e-05), then the parser still stores it under the hash of Python's canonical JSON, as the probe computed it."""
    record = json.loads(make_measurement().canonical_json())
    record["x_newer_probe_field"] = number  # a field a newer probe added: kept as sent
    canonical = canonical_json(record)
    compact = canonical.replace(b"e+", b"e")  # an exponent as msgspec spells it
    msgspecs = msgspec.json.encode(record, order="sorted")  # and below 1e-4, no exponent
    for sent in {canonical, compact, msgspecs}:
        body = b'{"measurements":[{"record":' + sent + b"}]}"
        (item,) = validate_batch(body, 10, None)
        assert isinstance(item, PreparedItem)
        assert item.content_hash == hashlib.sha256(canonical).hexdigest()
        assert decode_record(item.row["record"]) == canonical.decode()
