"""Stored records read back by the fast decoder equal what the tolerant reader gives."""

from __future__ import annotations

import json

from probe.failures import Failure
from probe.formats.ooni import measurement_from_ooni
from probe.records import Measurement
from tests.test_ooni_format import dns_blocked_line, nxdomain_line, ooni_line


def test_fast_decoding_equals_from_dict_and_skips_unknown_fields() -> None:
    """If a stored record carries fields a newer writer added, then from_json skips them and equals from_dict."""
    for line in (ooni_line(), dns_blocked_line(), nxdomain_line()):
        m = measurement_from_ooni(line)
        data = m.to_dict()
        data["added_later"] = {"x": 1}
        if data["dns"]:
            data["dns"][0]["added_later"] = [1, 2]
        text = json.dumps(data)
        assert Measurement.from_json(text) == Measurement.from_dict(json.loads(text)) == m
        assert Measurement.from_json(text.encode()) == m


def test_unknown_failure_and_offset_time_take_the_tolerant_path() -> None:
    """If a record holds an unknown failure string or a time with an offset, then from_json reads it as from_dict does."""
    data = measurement_from_ooni(dns_blocked_line()).to_dict()
    data["dns"][0]["failure"] = "a_failure_from_the_future"
    data["started_at"] = "2022-10-27T03:00:00+03:00"
    got = Measurement.from_json(json.dumps(data))
    assert got == Measurement.from_dict(data)
    assert got.dns[0].failure is Failure.UNKNOWN
    assert got.started_at.utcoffset().total_seconds() == 0 and got.started_at.hour == 0
    naive = dict(data, started_at="2022-10-27T00:00:00")
    assert Measurement.from_json(json.dumps(naive)).started_at == got.started_at
