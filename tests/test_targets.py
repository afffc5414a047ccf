"""Target lists: Citizen Lab's format and its lint rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.bundled import default_targets_file
from probe.targets import TargetsError, load_targets, parse_targets, targets_from_urls

HEADER = "url,category_code,category_description,date_added,source,notes\n"
SHARED_KG = Path(__file__).resolve().parents[2] / "shared" / "data" / "citizenlab-test-lists" / "kg.csv"


def test_project_list_is_valid_and_has_the_ordered_sites() -> None:
    """If the project's own kg.csv is loaded, then it lints clean and holds the sites the orders name."""
    urls = {t.url for t in load_targets(default_targets_file())}
    for required in (
        "https://www.azattyk.org/",
        "https://rus.azattyk.org/",
        "https://24.kg/",
        "https://kloop.kg/",
        "https://respublica.kg/",
        "https://kaktus.media/",
    ):
        assert required in urls


@pytest.mark.skipif(not SHARED_KG.exists(), reason="shared Citizen Lab data not present (fresh clone)")
def test_upstream_citizenlab_list_parses() -> None:
    """If Citizen Lab's own kg.csv is read, then all 167 rows load."""
    assert len(load_targets(SHARED_KG)) == 167


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("ftp://x.kg/,NEWS,News Media,2020-01-01,s,", "http:// or https://"),
        ("https://x.kg,NEWS,News Media,2020-01-01,s,", "trailing slash"),
        ("https://x.kg/,BOGUS,News Media,2020-01-01,s,", "unknown category code"),
        ("https://x.kg/,NEWS,News Media,01/02/2020,s,", "YYYY-MM-DD"),
        ("https://x.kg/,NEWS,News Media,2020-01-01", "expected 6 columns"),
        ("https://x .kg/,NEWS,News Media,2020-01-01,s,", "whitespace"),
        ("https://bad_host!.kg/,NEWS,News Media,2020-01-01,s,", "invalid host"),
    ],
)
def test_malformed_rows_name_the_line(row: str, message: str) -> None:
    """If a row breaks a lint rule, then the error names the file, line 3 and the problem."""
    text = HEADER + "https://ok.kg/,NEWS,News Media,2020-01-01,s,\n" + row + "\n"
    with pytest.raises(TargetsError) as info:
        parse_targets(text, name="list.csv")
    assert "list.csv:3:" in str(info.value)
    assert message in str(info.value)


def test_duplicate_url_names_both_lines() -> None:
    """If a URL appears twice, then the error names the duplicate and the first line."""
    row = "https://x.kg/,NEWS,News Media,2020-01-01,s,\n"
    with pytest.raises(TargetsError, match=r"list.csv:3: duplicate URL .* line 2"):
        parse_targets(HEADER + row + row, name="list.csv")


def test_bad_header_and_empty_file(tmp_path: Path) -> None:
    """If the header is wrong or the file empty or missing, then the error says so."""
    with pytest.raises(TargetsError, match=":1: header must be"):
        parse_targets("url,category\nhttps://x.kg/,NEWS\n", name="f")
    with pytest.raises(TargetsError, match="empty"):
        parse_targets("", name="f")
    with pytest.raises(TargetsError, match="no such file"):
        load_targets(tmp_path / "missing.csv")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TargetsError, match="not UTF-8"):
        load_targets(binary)


def test_urls_from_the_command_line_are_checked() -> None:
    """If a --url is malformed, then it is rejected with the reason."""
    assert targets_from_urls(["https://a.kg/"])[0].port == 443
    with pytest.raises(TargetsError, match="--url"):
        targets_from_urls(["a.kg"])
