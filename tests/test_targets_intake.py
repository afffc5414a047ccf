"""Target intake: internationalised names and bad rows never end a run (issue 15, item 5)."""

from __future__ import annotations

import json
from pathlib import Path

from probe.lab.loopback import LoopbackLab, Scenario
from probe.targets import RefusedInput, load_targets, make_target, parse_targets, targets_from_urls
from tests.conftest import kuzot

HEADER = "url,category_code,category_description,date_added,source,notes\n"


def test_idn_url_becomes_a_labels_and_keeps_the_original() -> None:
    """If a URL has an internationalised host name, then it is measured under A-labels and the original is kept."""
    lower, upper = make_target("https://яндекс.рф/"), make_target("https://Яндекс.рф/")
    assert lower.url == upper.url == "https://xn--d1acpjx3f.xn--p1ai/"
    assert (lower.original_url, upper.original_url) == ("https://яндекс.рф/", "https://Яндекс.рф/")
    assert make_target("https://kloop.kg/").original_url == ""


def test_bad_rows_are_refused_with_their_reason_and_the_rest_kept() -> None:
    """If a list has bad rows, then each is refused with its line and reason and the good rows are kept."""
    text = (
        HEADER
        + "https://kloop.kg/,NEWS,,,,\nftp://x.kg/,NEWS,,,,\nhttps://a..kg/,NEWS,,,,\nhttps://b.kg/,NOPE,,,,\n"
    )
    refused: list[RefusedInput] = []
    targets = parse_targets(text, name="list.csv", refused=refused)
    assert [t.url for t in targets] == ["https://kloop.kg/"]
    assert [(r.line, r.url) for r in refused] == [
        (3, "ftp://x.kg/"),
        (4, "https://a..kg/"),
        (5, "https://b.kg/"),
    ]
    assert "http:// or https://" in refused[0].reason and "category" in refused[2].reason
    assert str(refused[0]).startswith("list.csv:3: ")
    refused_urls: list[RefusedInput] = []
    assert len(targets_from_urls(["https://ok.kg/", "https://я..рф/"], refused=refused_urls)) == 1
    assert "internationalised" in refused_urls[0].reason


def test_targets_check_reports_every_bad_row(tmp_path: Path) -> None:
    """If `targets check` reads a list with bad rows, then it names each one, the IDN conversions, and exits 2."""
    path = tmp_path / "list.csv"
    path.write_text(
        HEADER + "https://яндекс.рф/,NEWS,,,,\nftp://x.kg/,NEWS,,,,\nhttps://a..kg/,NEWS,,,,\n", "utf-8"
    )
    result = kuzot("targets", "check", str(path), "--json")
    assert result.returncode == 2, result.stderr
    report = json.loads(result.stdout)
    assert report["urls"] == 1 and report["valid"] is False
    assert [r["line"] for r in report["refused"]] == [3, 4]
    assert report["converted"] == [
        {"url": "https://яндекс.рф/", "ascii_url": "https://xn--d1acpjx3f.xn--p1ai/"}
    ]
    assert len(load_targets(path, refused=[])) == 1


def test_run_measures_idn_and_records_refused_inputs(tmp_path: Path) -> None:
    """If `kuzot run` gets an IDN URL and a bad one, then it measures the IDN site and records the bad one as refused."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    with LoopbackLab() as lab:
        site = lab.add(Scenario("idn", "xn--d1acpjx3f.xn--p1ai"))
        written = site.url.replace("xn--d1acpjx3f.xn--p1ai", "Яндекс.рф")
        result = kuzot(
            "run", "--db", db, "--url", written, "--url", "ftp://nope.kg/", *lab.probe_args(), "--json"
        )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["measured"] == 1
    assert [r["url"] for r in summary["refused_inputs"]] == ["ftp://nope.kg/"]
    assert "not measured: --url: URL must start with http:// or https://" in result.stderr
    shown = kuzot("show", "--db", db, "--format", "json")
    (m,) = [m for m in json.loads(shown.stdout) if m["role"] == "target"]
    assert m["domain"] == "xn--d1acpjx3f.xn--p1ai" and m["annotations"]["original_url"] == written
    verdicts = json.loads(kuzot("verdicts", "--db", db, "--format", "json").stdout)
    assert verdicts[0]["status"] == "accessible", verdicts[0]["reason"]
