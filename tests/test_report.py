"""kuzot report: a self-contained page, citable sentences, signed evidence that kuzot verify checks."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import kuzot


@pytest.fixture(scope="module")
def report_dir(history_db, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "azattyk"
    result = kuzot(
        "report",
        "--db",
        history_db["db"],
        "--domain",
        "www.azattyk.org",
        "--orders",
        str(history_db["orders"]),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    return out


def test_report_files(report_dir):
    for name in (
        "index.html",
        "citation.txt",
        "episodes.csv",
        "orders.csv",
        "verdicts.csv",
        "charts/timeline.png",
        "charts/timeline.svg",
        "charts/heatmap.png",
        "charts/heatmap.svg",
        "index.ru.html",
        "index.ky.html",
        "evidence/measurements.jsonl",
        "evidence/MANIFEST.sha256",
    ):
        assert (report_dir / name).is_file(), name
    episodes = (report_dir / "episodes.csv").read_text().splitlines()
    assert episodes[0].startswith("domain,probe_asn,blocking,first_blocked")
    assert len(episodes) == 3  # ISP A by DNS, ISP C by TLS
    assert "enforced" in (report_dir / "orders.csv").read_text()


def test_citation_sentences_have_counts_and_intervals_in_three_languages(report_dir):
    citation = (report_dir / "citation.txt").read_text()
    assert re.search(
        r"azattyk\.org was blocked by DNS tampering on ISP A \(synthetic\) \(AS64601\) from 2\d October "
        r"2022 to 2\d December 2022: between \d+ and \d+ days, \d+ of \d+ measurements\.",
        citation,
    )
    assert "On ISP B (synthetic) (AS64602), azattyk.org was not seen blocked" in citation
    assert "был заблокирован в сети ISP A (synthetic) (AS64601) (подмена DNS) с 2" in citation
    assert re.search(r"от \d+ до \d+ (дня|дней); \d+ из \d+ измерений", citation)
    assert "тармагында бөгөттөлгөн" in citation


def test_every_figure_is_traceable_to_evidence(report_dir):
    lines = (report_dir / "evidence" / "measurements.jsonl").read_text().splitlines()
    ids = {json.loads(line)["id"] for line in lines}
    page = (report_dir / "index.html").read_text()
    anchors = set(re.findall(r'<details id="ep-([0-9a-f]{16})">', page))
    assert len(anchors) == 2
    for row in (report_dir / "verdicts.csv").read_text().splitlines()[1:]:
        assert row.split(",", 1)[0] in ids
    cited = set(re.findall(r'<span class="tag">([0-9a-f]+)</span>', page))
    assert cited and cited <= ids
    assert any(json.loads(line)["record"]["role"] == "canary" for line in lines), (
        "canaries back probe_offline"
    )


def test_page_is_self_contained(report_dir):
    page = (report_dir / "index.html").read_text()
    assert "<script" not in page
    assert not re.search(r'src="(?!data:)', page), "every image is embedded"
    assert "default-src 'none'" in page
    png = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(png)[:4] == b"\x89PNG"


def test_verify_passes_then_names_a_changed_measurement_and_a_bad_signature(report_dir, tmp_path):
    ok = kuzot("verify", str(report_dir))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("OK:")

    copy = tmp_path / "copy"
    shutil.copytree(report_dir, copy)
    path = copy / "evidence" / "measurements.jsonl"
    lines = path.read_text().splitlines()
    first, second = json.loads(lines[10]), json.loads(lines[20])
    lines[10] = lines[10].replace('"runtime":1.0', '"runtime":2.0', 1)
    assert lines[10] != json.dumps(first)
    forged = json.loads(lines[20])
    forged["signature"] = first["signature"]
    lines[20] = json.dumps(forged, separators=(",", ":"), ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n")
    bad = kuzot("verify", str(copy))
    assert bad.returncode == 1
    assert first["id"] in bad.stdout and second["id"] in bad.stdout
    assert "evidence/measurements.jsonl:11:" in bad.stdout and "evidence/measurements.jsonl:21:" in bad.stdout


def test_report_refuses_unsafe_output_and_empty_data(history_db, tmp_path):
    (tmp_path / "mine.txt").write_text("do not delete")
    busy = kuzot(
        "report", "--db", history_db["db"], "--domain", "azattyk.org", "--out", str(tmp_path), "--overwrite"
    )
    assert busy.returncode == 2 and "refusing" in busy.stderr
    assert (tmp_path / "mine.txt").exists()
    none = kuzot("report", "--db", history_db["db"], "--domain", "nosuch.kg", "--out", str(tmp_path / "r"))
    assert none.returncode == 1 and "no measurements of nosuch.kg" in none.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="Debian's chromium is not installed (.ci/run installs it)",
)
def test_page_renders_in_headless_chromium(report_dir, tmp_path):
    """The page loads in a real browser without console errors, shows the episodes, and is not blank."""
    assert CHROMIUM, "CI must have chromium (.ci/run installs it)"
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    url = (report_dir / "index.html").as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Block episodes" in dom.stdout and "ISP A (synthetic) (AS64601)" in dom.stdout
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Refused to" in line]
    assert not [line for line in console if "error" in line.lower() or "Refused" in line], console

    shot = tmp_path / "page.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1200,2400", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    from matplotlib import image

    pixels = image.imread(shot)
    colours = {tuple(p) for p in pixels.reshape(-1, pixels.shape[-1])[::37].round(2).tolist()}
    assert len(colours) > 20, "the screenshot is not blank"


def test_simulated_data_is_said_in_every_language_on_every_page_and_in_the_citation(report_dir):
    """If the evidence is synthetic or lab data, then the pages and citation.txt say so in English, Russian and Kyrgyz."""
    citation = (report_dir / "citation.txt").read_text()
    head = citation.split("Kuzot evidence report")[0]
    for words in ("SIMULATED DATA", "СМОДЕЛИРОВАННЫЕ ДАННЫЕ", "СИМУЛЯЦИЯЛАНГАН МААЛЫМАТ"):
        assert words in head
    for name in ("index.html", "index.ru.html", "index.ky.html"):
        page = (report_dir / name).read_text()
        banner = page.index('class="simulated"')
        assert banner < page.index("<h1>"), "the notice comes before anything else"
        for words in ("SIMULATED DATA", "СМОДЕЛИРОВАННЫЕ ДАННЫЕ", "СИМУЛЯЦИЯЛАНГАН МААЛЫМАТ"):
            assert words in page, (name, words)
        assert "Volunteers in Kyrgyzstan run" not in page
    assert "<h1>Блокировка azattyk.org" in (report_dir / "index.ru.html").read_text()


def _real_looking_db(directory: Path, *, add_synthetic: bool = False, doh_and_ooni: bool = False) -> str:
    """The example history re-labelled as if measured on public networks, one without an AS number."""
    from dataclasses import replace
    from datetime import timedelta

    from analysis.synthetic import example_history
    from probe.signing import SigningKey
    from probe.store import Store

    history = example_history(every=timedelta(days=1))
    asns = {64601: 8449, 64602: None, 64603: 39659}
    real = [replace(m, probe_asn=asns.get(m.probe_asn), probe_network=None, annotations={}) for m in history]
    if doh_and_ooni:
        from probe.records import ControlObservations

        real = [
            replace(
                m,
                control=ControlObservations(source="doh:https://dns.example/dns-query", dns=m.control.dns)
                if m.control is not None
                else None,
                annotations={"ooni.measurement_uid": f"20221027000000.{i:06d}_KG_webconnectivity_abc"},
            )
            for i, m in enumerate(real)
        ]
    if add_synthetic:
        lab = next(m for m in history if m.role == "target" and m.domain.endswith("azattyk.org"))
        real.append(replace(lab, id="f" * 32))
    url = f"sqlite:///{directory / 'real.db'}"
    store = Store.open(url)
    try:
        store.save_measurements(real, sign=SigningKey.generate().sign)
    finally:
        store.close()
    return url


def test_real_data_names_each_network_and_survives_a_missing_asn(tmp_path):
    """If measurements lack an AS number, then the report still builds, calls it an unknown network, and shows no simulated notice."""
    db = _real_looking_db(tmp_path)
    out = tmp_path / "out" / "report"
    result = kuzot("report", "--db", db, "--domain", "azattyk.org", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    citation = (out / "citation.txt").read_text()
    assert "SIMULATED" not in citation and "ElCat (AS8449)" in citation
    assert "unknown network" in citation
    page = (out / "index.html").read_text()
    assert 'class="simulated"' not in page and "Volunteers in Kyrgyzstan run" in page
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["report"], "no temporary folder is left behind"
    assert kuzot("verify", str(out)).returncode == 0


def test_mixed_real_and_simulated_data_is_refused_and_writes_nothing(tmp_path):
    """If real and synthetic measurements meet in one report, then kuzot report refuses with a clear error and writes nothing."""
    db = _real_looking_db(tmp_path, add_synthetic=True)
    out = tmp_path / "out" / "report"
    result = kuzot("report", "--db", db, "--domain", "azattyk.org", "--out", str(out))
    assert result.returncode == 1
    assert "mix 1 simulated or lab ones" in result.stderr and "one or the other" in result.stderr
    assert not out.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_method_text_names_the_controls_used_and_ooni_measurements_link_to_explorer(tmp_path):
    """If only a DoH resolver served as control and records came from OONI, then "How we measured" says so and each measurement links to OONI Explorer."""
    db = _real_looking_db(tmp_path, doh_and_ooni=True)
    out = tmp_path / "report"
    result = kuzot("report", "--db", db, "--domain", "azattyk.org", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    page = (out / "index.html").read_text()
    method = page[page.index('id="method"') :]
    assert "DNS over HTTPS" in method
    assert "A control server outside the country does the same" not in method
    if '<details id="ep-' in page:
        assert re.search(r'href="https://explorer\.ooni\.org/m/20221027000000\.\d{6}_KG_webconnectivity_abc"', page)
    rows = (out / "verdicts.csv").read_text()
    assert "https://explorer.ooni.org/m/20221027000000.000" in rows


def test_overwrite_swaps_in_a_complete_report_and_leaves_no_temporary_folder(history_db, tmp_path):
    """If an earlier report is overwritten, then the new one replaces it whole, verifies, and nothing else is left beside it."""
    out = tmp_path / "r"
    args = ["report", "--db", history_db["db"], "--domain", "24.kg", "--orders", str(history_db["orders"])]
    assert kuzot(*args, "--out", str(out)).returncode == 0
    stale = out / "left-from-the-old-report.txt"  # the generation time has only minute precision
    stale.write_text("old")
    again = kuzot(*args, "--out", str(out), "--overwrite")
    assert again.returncode == 0, again.stderr
    assert not stale.exists() and (out / "citation.txt").exists()
    assert kuzot("verify", str(out)).returncode == 0
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_the_composer_needs_no_database_and_no_disk() -> None:
    """If measurements and orders are handed to compose_report, then it returns the report's figures without opening a file or database."""
    from analysis.fingerprints import load_fingerprints
    from analysis.orders import orders_frame, parse_orders
    from analysis.report import compose_report
    from analysis.synthetic import EXAMPLE_ORDERS_CSV, example_history

    measurements = example_history(every=timedelta(hours=12))
    orders = orders_frame(parse_orders(EXAMPLE_ORDERS_CSV))
    report = compose_report("azattyk.org", measurements, orders=orders, fingerprints=load_fingerprints())
    assert report.domain == "azattyk.org" and report.simulated == len(report.verdicts) > 0
    assert {n.label for n in report.networks} >= {"ISP A (synthetic) (AS64601)"}
    assert not report.episodes.empty and set(report.evidence_ids) >= set(report.verdicts["measurement_id"])
    assert "azattyk.org" in report.citation()
