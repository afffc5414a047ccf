"""kuzot web: the Explorer over real lab runs and a synthetic history, through HTTP and a real browser."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from probe.lab.loopback import LoopbackLab, matrix
from tests.conftest import REPO, kuzot
from tests.web_support import HOSTILE_DOMAIN, HOSTILE_TITLE, WebProcess, hostile_page

LAB_ASN = "64500"
OONI_UID = "20221027060102.000000_KG_webconnectivity_0123456789abcdef"


@pytest.fixture(scope="module")
def lab() -> LoopbackLab:
    with LoopbackLab() as running:
        for scenario in matrix():
            if scenario.name in ("honest", "dns_blockpage"):
                running.add(scenario)
        site = running.web.site(cert_names=[HOSTILE_DOMAIN], pages=hostile_page)
        running.zone.set(HOSTILE_DOMAIN, [site.ip])
        running.hostile_url = site.url(HOSTILE_DOMAIN)  # type: ignore[attr-defined]
        yield running


def run_probe(lab: LoopbackLab, db: str) -> None:
    urls: list[str] = []
    for target in lab.targets.values():
        urls += ["--url", target.url]
    urls += ["--url", lab.hostile_url]  # type: ignore[attr-defined]
    result = kuzot("run", "--db", db, *urls, *lab.probe_args(), "--probe-asn", LAB_ASN, "--probe-cc", "KG")
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def explorer_db(lab: LoopbackLab, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A synthetic history (three networks, months, with orders) plus two real lab runs."""
    from analysis.synthetic import EXAMPLE_ORDERS_CSV, example_history
    from probe.signing import SigningKey
    from probe.store import Store

    directory = tmp_path_factory.mktemp("explorer")
    url = f"sqlite:///{directory / 'explorer.db'}"
    store = Store.open(url)
    try:
        store.save_measurements(example_history(every=timedelta(hours=12)), sign=SigningKey.generate().sign)
    finally:
        store.close()
    run_probe(lab, url)
    run_probe(lab, url)
    from tests.test_ooni_format import ooni_line

    line = ooni_line("https://ooni-only.kg/")
    line["measurement_uid"] = OONI_UID
    imported = directory / "ooni.jsonl"
    imported.write_text(json.dumps(line) + "\n")
    result = kuzot("import-ooni", "--db", url, str(imported))
    assert result.returncode == 0, result.stderr
    orders = directory / "orders.csv"
    orders.write_text(EXAMPLE_ORDERS_CSV)
    return {"db": url, "orders": orders, "dir": directory}


@pytest.fixture(scope="module")
def explorer(explorer_db: dict, tmp_path_factory: pytest.TempPathFactory):
    web = WebProcess(
        explorer_db["db"],
        tmp_path_factory.mktemp("web"),
        "--orders",
        str(explorer_db["orders"]),
        "--refresh",
        "1",
        "--mode",
        "public",
    ).start()
    try:
        yield web
    finally:
        web.stop()


@pytest.fixture(scope="module")
def client(explorer: WebProcess):
    with httpx.Client(base_url=explorer.url, timeout=120) as c:
        yield c


def first_episode(client: httpx.Client, domain: str = "azattyk.org") -> dict:
    episodes = client.get("/api/v1/episodes", params={"domain": domain}).json()["episodes"]
    return next(e for e in episodes if e["probe_asn"] == 64601)


def test_pages_answer_in_every_language(client):
    """If each page is requested in en, ru and ky, then each answers 200 with its language in the html tag."""
    ep = first_episode(client)
    detail = client.get(f"/api/v1/episodes/{ep['episode_id']}").json()
    measurement = detail["bounds"]["first_blocked"]["measurement_id"]
    order = client.get("/api/v1/orders").json()["orders"][0]["order_id"]
    for lang in ("en", "ru", "ky"):
        for path in (
            "/",
            "/sites/azattyk.org",
            f"/episodes/{ep['episode_id']}",
            "/episodes/",
            "/orders/",
            f"/orders/{order}",
            f"/measurements/{measurement}",
        ):
            response = client.get(f"/{lang}{path}")
            assert response.status_code == 200, (lang, path, response.text[-500:])
            assert f'<html lang="{lang}">' in response.text


SIMULATED_WORDS = {"en": "SIMULATED DATA", "ru": "СМОДЕЛИРОВАННЫЕ ДАННЫЕ", "ky": "СИМУЛЯЦИЯЛАНГАН МААЛЫМАТ"}


def test_every_page_carries_the_reports_simulated_banner(client):
    """If a page shows lab or synthetic measurements, then it opens with the report's own banner, in all three languages, its own first."""
    ep = first_episode(client)
    detail = client.get(f"/api/v1/episodes/{ep['episode_id']}").json()
    measurement = detail["bounds"]["first_blocked"]["measurement_id"]
    order = client.get("/api/v1/orders").json()["orders"][0]["order_id"]
    paths = ("/", "/sites/azattyk.org", f"/episodes/{ep['episode_id']}", "/episodes/", "/orders/",
             f"/orders/{order}", f"/measurements/{measurement}")  # fmt: skip
    for lang in ("en", "ru", "ky"):
        for path in paths:
            html = client.get(f"/{lang}{path}").text
            banner = html.index('<section class="simulated" id="simulated" role="alert">')
            assert banner < html.index("<h1>"), (lang, path)
            notice = html[banner : html.index("</section>", banner)]
            assert all(words in notice for words in SIMULATED_WORDS.values()), (lang, path)
            assert notice.index(SIMULATED_WORDS[lang]) == min(notice.index(w) for w in SIMULATED_WORDS.values())
    # The same sentence as the report's (one message, one translation per language).
    from analysis.report_text import simulated_sentence

    assert simulated_sentence("ru", 1, 1) in client.get(f"/ru/measurements/{measurement}").text


def test_translations_are_used(client):
    """If the overview is read in Russian or Kyrgyz, then its headings are not the English ones."""
    english = client.get("/en/").text
    assert "Which networks block which sites" in english
    for lang in ("ru", "ky"):
        assert "Which networks block which sites" not in client.get(f"/{lang}/").text


def test_episode_figures_match_the_cli(client, explorer_db):
    """If the Explorer shows an episode, then its bounds and counts are those of kuzot episodes."""
    result = kuzot("episodes", "--db", explorer_db["db"], "--domain", "azattyk.org", "--asn", "64601",
                   "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    cli = json.loads(result.stdout)[0]
    ep = first_episode(client)
    for key in ("first_blocked", "last_blocked"):
        assert datetime.fromisoformat(ep[key]) == datetime.fromisoformat(cli[key]), key
    for key in ("measurements_blocked", "measurements_total"):
        assert ep[key] == cli[key], key
    page = client.get(f"/en/episodes/{ep['episode_id']}").text
    assert f"{ep['measurements_blocked']} of {ep['measurements_total']} measurements" in page


def test_episode_page_has_evidence_rules_orders_and_citations(client):
    """If an episode is shown, then its bounds link measurements, its rules are listed, and en/ru/ky citations are there."""
    ep = first_episode(client)
    data = client.get(f"/api/v1/episodes/{ep['episode_id']}").json()
    assert data["bounds"]["first_blocked"]["measurement_id"]
    assert data["bounds"]["last_accessible_before"]["measurement_id"]
    assert data["rules"] and all(r["rule_id"] for r in data["rules"])
    assert any(o["status"] in ("enforced", "enforced_after_withdrawal") for o in data["orders"])
    assert set(data["citation"]) == {"en", "ru", "ky"}
    assert "azattyk.org was blocked by DNS tampering" in data["citation"]["en"]
    assert data["simulated"]
    from analysis import report_text

    n = data["measurement_total"]
    for lang in ("en", "ru", "ky"):
        assert data["citation"][lang].endswith(report_text.simulated_sentence(lang, n, n))


def test_evidence_bundle_verifies(client, tmp_path):
    """If an episode's evidence bundle is downloaded and unzipped, then kuzot verify passes on it."""
    ep = first_episode(client)
    response = client.get(f"/api/v1/episodes/{ep['episode_id']}/evidence.zip")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    zipfile.ZipFile(io.BytesIO(response.content)).extractall(tmp_path)
    (folder,) = list(tmp_path.iterdir())
    result = kuzot("verify", str(folder))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (folder / "citation.txt").is_file()


def test_measurement_shows_observations_control_and_signature(client):
    """If a lab measurement is shown, then its DNS answers, the control's view, the verdict and the signature are there."""
    verdicts = client.get("/api/v1/sites/azattyk.org/verdicts", params={"asn": LAB_ASN}).json()["verdicts"]
    assert verdicts and verdicts[0]["status"] == "blocked"
    data = client.get(f"/api/v1/measurements/{verdicts[0]['measurement_id']}").json()
    assert data["probe"]["dns"] and data["control"] and data["control"]["dns"]
    assert data["verdict"]["rule_id"] and data["verdict"]["reason"]
    assert data["signature"]["signature"] and data["signature"]["content_hash"]
    assert data["simulated"]  # a lab network is labelled as such
    page = client.get(f"/en/measurements/{verdicts[0]['measurement_id']}").text
    assert "Control" in page and "127.66.66.66" in page
    assert 'id="simulated"' in page and "SIMULATED DATA: 1 of the 1 measurements shown here" in page


def test_imported_ooni_measurement_links_to_ooni_explorer(client):
    """If a measurement came from OONI with a measurement_uid, then its page links to it on OONI Explorer and names the network."""
    verdicts = client.get("/api/v1/sites/ooni-only.kg/verdicts").json()["verdicts"]
    assert verdicts[0]["network"].endswith("(AS8449)")
    page = client.get(f"/en/measurements/{verdicts[0]['measurement_id']}").text
    assert f'href="https://explorer.ooni.org/m/{OONI_UID}"' in page


def test_measured_markup_is_escaped(client):
    """If a site's title holds a script tag, then pages and feeds carry it escaped, never as markup."""
    verdicts = client.get(f"/api/v1/sites/{HOSTILE_DOMAIN}/verdicts").json()["verdicts"]
    data = client.get(f"/api/v1/measurements/{verdicts[0]['measurement_id']}").json()
    assert data["probe"]["http"][-1]["title"].startswith("<script>")
    page = client.get(f"/en/measurements/{verdicts[0]['measurement_id']}").text
    assert "<script>window.kuzotPwned" not in page
    assert "&lt;script&gt;window.kuzotPwned" in page


def test_security_headers_and_no_writes(client):
    """If any page, API answer or feed is fetched, then it carries a strict CSP and nosniff, and a write is refused."""
    for path in ("/en/", "/api/v1/overview", "/en/feeds/episodes.atom", "/static/kuzot.css", "/en/nowhere"):
        response = client.get(path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "server" not in response.headers
    assert client.get("/en/").headers["cache-control"].startswith("public, max-age=")
    assert client.post("/api/v1/overview").status_code == 405
    assert client.delete("/en/").status_code == 405


def test_no_inline_script_or_style(client):
    """If a page is rendered, then it has no inline script, event handler or style attribute (the CSP would block them)."""
    ep = first_episode(client)
    for path in ("/en/", "/en/sites/azattyk.org", f"/en/episodes/{ep['episode_id']}"):
        html = client.get(path).text
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
        assert not re.search(r"\son[a-z]+=", html)
        assert " style=" not in html


def test_lists_are_bounded(client):
    """If a client asks for a huge page or a malformed filter, then it gets at most 500 rows or a 400."""
    assert client.get("/api/v1/episodes", params={"limit": 10**9}).json()["limit"] == 500
    assert client.get("/api/v1/overview", params={"asn": "x"}).status_code == 400
    assert client.get("/api/v1/overview", params={"from": "yesterday"}).status_code == 400
    assert client.get("/api/v1/episodes/0000").status_code == 404
    assert client.get("/xx/").status_code == 404


def test_overview_filters_and_open_episodes(client):
    """If the overview is filtered by network or period, then only that network and period's verdicts show."""
    everything = client.get("/api/v1/overview").json()
    assert {n["asn"] for n in everything["networks"]} >= {64601, 64602, 64603, int(LAB_ASN)}
    only = client.get("/api/v1/overview", params={"asn": "AS64601"}).json()
    assert [n["asn"] for n in only["networks"]] == [64601]
    early = client.get("/api/v1/overview", params={"to": "2022-09-01"}).json()
    cell = next(c for s in early["sites"] if s["domain"] == "azattyk.org" for c in s["cells"] if c["status"])
    assert cell["measured_at"] < "2022-09-01"
    if everything["open_episodes"]:
        assert everything["sites"][0]["open_episodes"] >= 1


def test_csv_downloads(client):
    """If a table is downloaded as CSV, then it has a header and one row per item."""
    rows = list(csv.DictReader(io.StringIO(client.get("/api/v1/episodes.csv").text)))
    assert rows and rows[0]["episode_id"]
    rows = list(csv.DictReader(io.StringIO(client.get("/api/v1/overview.csv").text)))
    assert any(r["domain"] == "azattyk.org" for r in rows)
    verdicts = client.get(f"/api/v1/sites/{HOSTILE_DOMAIN}/verdicts.csv").text
    assert verdicts.startswith("measurement_id,")


def test_atom_feeds(client):
    """If the feeds are read, then they are Atom with opened and closed entries, overall, per site and per network."""
    ns = {"a": "http://www.w3.org/2005/Atom"}
    for path in (
        "/en/feeds/episodes.atom",
        "/ru/feeds/sites/azattyk.org.atom",
        "/ky/feeds/networks/64601.atom",
    ):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/atom+xml")
        root = ET.fromstring(response.content)
        entries = root.findall("a:entry", ns)
        assert entries, path
        ids = [e.find("a:id", ns).text for e in entries]
        assert any(i.endswith("/opened") for i in ids)
    ids = [e.find("a:id", ns).text for e in ET.fromstring(client.get("/en/feeds/episodes.atom").content)
           .findall("a:entry", ns)]  # fmt: skip
    assert any(i.endswith("/closed") for i in ids)


def test_atom_entries_of_simulated_episodes_say_so(client):
    """If a feed lists episodes built from synthetic or lab measurements, then each entry's title and summary say so, in the feed's language."""
    from analysis import report_text

    ns = {"a": "http://www.w3.org/2005/Atom"}
    episodes = {e["episode_id"]: e for e in client.get("/api/v1/episodes", params={"limit": 500}).json()["episodes"]}
    for lang, mark in (("en", "[simulated or lab data]"), ("ru", "[смоделированные"), ("ky", "[симуляцияланган")):
        root = ET.fromstring(client.get(f"/{lang}/feeds/episodes.atom").content)
        entries = root.findall("a:entry", ns)
        assert entries
        for entry in entries:
            episode = episodes[entry.find("a:id", ns).text.split("/")[-2]]
            assert episode["simulated"]
            assert entry.find("a:title", ns).text.startswith(mark)
            sentence = report_text.simulated_sentence(
                lang, episode["simulated_measurements"], episode["measurements_total"]
            )
            assert entry.find("a:summary", ns).text.endswith(sentence)


def test_conditional_requests_get_304(client):
    """If a client revalidates a page, feed, API answer or CSV it holds, then an unchanged one is a 304 without a body and a stale tag gets the page."""
    ep = first_episode(client)
    for path in ("/en/episodes/", f"/ru/episodes/{ep['episode_id']}", "/ky/feeds/episodes.atom",
                 "/api/v1/episodes", "/api/v1/overview", "/api/v1/episodes.csv", "/en/"):  # fmt: skip
        first = client.get(path)
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        assert etag.startswith('W/"')
        again = client.get(path, headers={"If-None-Match": etag})
        if again.status_code == 200:  # a refresh or (pages showing ages) the clock moved on
            etag = again.headers["etag"]
            again = client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304, path
        assert again.content == b"" and again.headers["etag"] == etag
        assert again.headers["cache-control"].startswith("public")
        assert client.get(path, headers={"If-None-Match": 'W/"other"'}).status_code == 200
        since = client.get(path, headers={"If-Modified-Since": again.headers["last-modified"]})
        assert since.status_code == 304, path
        assert client.get(path, headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 200
        assert modified
    assert "etag" not in client.get("/en/nowhere").headers


def test_openapi_lists_every_endpoint(client):
    """If the OpenAPI document is read, then it describes every /api/v1/ GET endpoint the Explorer serves."""
    doc = client.get("/api/v1/explorer/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in ("/api/v1/overview", "/api/v1/sites/{domain}", "/api/v1/episodes/{episode_id}",
                 "/api/v1/orders/{order_id}", "/api/v1/measurements/{measurement_id}"):  # fmt: skip
        assert "get" in doc["paths"][path]


def test_volunteer_page_only_in_local_mode(client):
    """If the Explorer runs in public mode, then the volunteer page does not exist."""
    assert client.get("/en/volunteer").status_code == 404
    assert "/en/volunteer" not in client.get("/en/").text


def test_no_client_address_logged(explorer, client):
    """If pages are requested, then the server's output holds no access-log line or client port."""
    client.get("/en/")
    client.get("/api/v1/overview")
    logs = explorer.logs()
    assert "GET /en/" not in logs
    assert not re.search(r"127\.0\.0\.1:\d+ -", logs)


def test_new_measurements_appear_without_restart(explorer, client, lab, explorer_db):
    """If the probe stores new measurements while the Explorer runs, then they are judged and shown within a refresh, under a new ETag."""
    path = "/api/v1/sites/honest.kg/verdicts"
    first = client.get(path)
    before, etag = first.json()["total"], first.headers["etag"]
    run_probe(lab, explorer_db["db"])
    deadline = time.monotonic() + 60
    after = before
    while time.monotonic() < deadline and after == before:
        time.sleep(1.5)
        after = client.get(path).json()["total"]
    assert after == before + 1
    changed = client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_refuses_a_missing_database(tmp_path):
    """If kuzot web is given a database file that does not exist, then it exits 2 and creates nothing."""
    missing = tmp_path / "nothing.db"
    result = kuzot("web", "--db", f"sqlite:///{missing}", "--listen", "127.0.0.1:0")
    assert result.returncode == 2
    assert "no such database" in result.stderr
    assert not missing.exists()


def test_a_busy_address_is_one_clear_line(explorer_db):
    """If kuzot web's listening address is already taken, then it exits 1 saying it cannot listen there, with no traceback."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = kuzot("web", "--db", explorer_db["db"], "--listen", address)
    assert result.returncode == 1, result.stderr
    assert f"cannot listen on {address}" in result.stderr
    assert "Traceback" not in result.stderr


def test_database_is_opened_read_only(explorer_db, explorer, client):
    """If the Explorer serves pages, then its database file's schema and rows are those the probe wrote."""
    import sqlite3

    path = explorer_db["db"].removeprefix("sqlite:///")
    client.get("/en/")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "measurements" in tables


# --- a real browser ----------------------------------------------------------------------

BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    if not Path("/usr/bin/chromium").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have /usr/bin/chromium (apt-get install chromium)")
        pytest.skip("no /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        running = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        try:
            yield running
        finally:
            running.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    directory = Path(os.environ.get("KUZOT_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def page(browser, explorer):
    context = browser.new_context(base_url=explorer.url, accept_downloads=True)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    tab.on("pageerror", lambda e: problems.append(str(e)))
    tab.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    tab.problems = problems  # type: ignore[attr-defined]
    yield tab
    context.close()


@pytest.mark.browser
def test_browser_overview_to_measurement_in_three_clicks(page, screenshots):
    """If a reader clicks from the overview to a site, an episode and a measurement, then each page renders without console errors."""
    page.goto("/en/")
    page.screenshot(path=str(screenshots / "overview.png"), full_page=True)
    page.click("a.site-link:text-is('azattyk.org')")
    page.wait_for_url("**/en/sites/azattyk.org")
    assert page.locator("svg.timeline").count() >= 3
    page.screenshot(path=str(screenshots / "site.png"), full_page=True)
    page.locator("a.episode-link").first.click()
    page.wait_for_url("**/en/episodes/*")
    assert page.locator("blockquote#citation-en").inner_text().startswith("azattyk.org was blocked")
    page.screenshot(path=str(screenshots / "episode.png"), full_page=True)
    page.locator("a.measurement-link").first.click()
    page.wait_for_url("**/en/measurements/*")
    assert page.locator("h2", has_text="Signature").count() == 1
    page.screenshot(path=str(screenshots / "measurement.png"), full_page=True)
    assert page.problems == []  # type: ignore[attr-defined]


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["en", "ru", "ky"])
def test_browser_overview_to_a_citable_episode_in_three_clicks(page, screenshots, lang):
    """If a reader starts on the English overview, then the language switch, a site and an episode (three clicks) show a citation in that language, the evidence download and the simulated banner."""
    page.goto("/en/")
    clicks = 0
    if lang != "en":
        page.click(f"a[data-lang='{lang}']")
        page.wait_for_url(f"**/{lang}/")
        clicks += 1
    page.click("a.site-link:text-is('azattyk.org')")
    page.wait_for_url(f"**/{lang}/sites/azattyk.org")
    clicks += 1
    page.locator("a.episode-link").first.click()
    page.wait_for_url(f"**/{lang}/episodes/*")
    clicks += 1
    assert clicks <= 3
    assert page.locator("html").get_attribute("lang") == lang
    quote = page.locator(f"blockquote#citation-{lang}")
    assert quote.is_visible() and "azattyk.org" in quote.inner_text()
    assert page.locator("#evidence-download").is_visible()
    banner = page.locator("#simulated")
    assert banner.is_visible() and SIMULATED_WORDS[lang] in banner.inner_text()
    page.screenshot(path=str(screenshots / f"episode-{lang}.png"), full_page=True)
    assert page.problems == []  # type: ignore[attr-defined]


@pytest.mark.browser
def test_browser_language_switch_keeps_the_page(page, screenshots):
    """If a reader switches language on a site page, then the same site shows in Russian, then Kyrgyz."""
    page.goto("/en/sites/azattyk.org")
    page.click("a[data-lang='ru']")
    page.wait_for_url("**/ru/sites/azattyk.org")
    assert page.locator("html").get_attribute("lang") == "ru"
    page.screenshot(path=str(screenshots / "site-ru.png"), full_page=True)
    page.click("a[data-lang='ky']")
    page.wait_for_url("**/ky/sites/azattyk.org")
    assert page.locator("h1").inner_text() == "azattyk.org"
    page.screenshot(path=str(screenshots / "site-ky.png"), full_page=True)
    assert page.problems == []  # type: ignore[attr-defined]


@pytest.mark.browser
def test_browser_evidence_download_verifies(page, client, tmp_path):
    """If a reader downloads an episode's evidence from its page, then the unzipped folder passes kuzot verify."""
    ep = first_episode(client)
    page.goto(f"/ky/episodes/{ep['episode_id']}")
    with page.expect_download(timeout=120_000) as info:
        page.click("#evidence-download")
    target = tmp_path / "evidence.zip"
    info.value.save_as(target)
    zipfile.ZipFile(target).extractall(tmp_path / "unzipped")
    (folder,) = list((tmp_path / "unzipped").iterdir())
    result = subprocess.run([sys.executable, "-m", "probe", "verify", str(folder)], capture_output=True,
                            text=True, cwd=REPO, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert page.problems == []  # type: ignore[attr-defined]


@pytest.mark.browser
def test_browser_hostile_title_stays_text(page, client, screenshots):
    """If a measured page title holds a script tag, then the browser shows it as text and runs nothing."""
    verdicts = client.get(f"/api/v1/sites/{HOSTILE_DOMAIN}/verdicts").json()["verdicts"]
    page.goto(f"/en/measurements/{verdicts[0]['measurement_id']}")
    shown = page.locator(".measured-title").last.inner_text()
    assert shown == HOSTILE_TITLE
    assert page.evaluate("typeof window.kuzotPwned") == "undefined"
    page.screenshot(path=str(screenshots / "hostile-title.png"), full_page=True)
    assert page.problems == []  # type: ignore[attr-defined]


@pytest.fixture
def local_explorer(lab, tmp_path, monkeypatch):
    """``kuzot web`` in local mode over a volunteer's own database, with a config directory
    of its own (no consent yet) and the button's run pointed at the loopback lab."""
    db = f"sqlite:///{tmp_path / 'mine.db'}"
    run_probe(lab, db)
    config = tmp_path / "config"
    config.mkdir()
    monkeypatch.setenv("KUZOT_CONFIG_DIR", str(config))
    monkeypatch.delenv("KUZOT_ACCEPT_RISKS", raising=False)
    args = ["--url", lab.targets["honest"].url, *lab.probe_args(), "--probe-asn", LAB_ASN, "--probe-cc", "KG"]
    monkeypatch.setenv("KUZOT_WEB_RUN_ARGS", shlex.join(args))
    web = WebProcess(db, tmp_path / "web", "--refresh", "1", "--mode", "local").start()
    try:
        yield web, config
    finally:
        web.stop()


def _run_state(tab) -> str | None:
    marks = tab.locator(".run-state")
    return marks.get_attribute("data-state") if marks.count() else None


@pytest.mark.browser
def test_browser_run_now_starts_a_run_in_local_mode(browser, local_explorer, screenshots):
    """If a volunteer with consent on record clicks "Run now" on the local page, then a kuzot run starts, shows as running then finished, and its measurements appear; without consent, a token or from another origin nothing starts."""
    from probe.volunteer.consent import record_consent, withdraw_consent

    web, config = local_explorer
    context = browser.new_context(base_url=web.url)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    tab.goto("/en/volunteer")
    assert tab.locator("button.run-now-button").count() == 0  # no consent yet
    record_consent("test", config)
    tab.reload()
    token = tab.locator("input[name=csrf]").get_attribute("value")
    post = f"{web.url}/en/volunteer/run"
    assert httpx.post(post, data={"csrf": "forged"}).status_code == 403
    assert httpx.post(post, data={"csrf": token}, headers={"Origin": "http://elsewhere.example"}).status_code == 403
    assert httpx.post(post, data={"csrf": token}, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert httpx.post(post, data={"csrf": token}, headers={"Host": "rebound.example:80"}).status_code == 403
    withdraw_consent(config)
    assert httpx.post(post, data={"csrf": token}).status_code == 403
    record_consent("test", config)
    before = httpx.get(f"{web.url}/api/v1/sites/honest.kg/verdicts").json()["total"]
    tab.click("button.run-now-button")
    tab.wait_for_url("**/en/volunteer")
    assert _run_state(tab) in ("running", "finished")
    tab.screenshot(path=str(screenshots / "volunteer-run-now.png"), full_page=True)
    deadline = time.monotonic() + 180
    while _run_state(tab) != "finished" and time.monotonic() < deadline:
        time.sleep(1)
        tab.reload()
    assert _run_state(tab) == "finished", web.logs()[-2000:]
    assert "has finished" in tab.locator(".run-state").inner_text()
    tab.screenshot(path=str(screenshots / "volunteer-run-finished.png"), full_page=True)
    after = before
    while after == before and time.monotonic() < deadline:
        time.sleep(1)
        after = httpx.get(f"{web.url}/api/v1/sites/honest.kg/verdicts").json()["total"]
    assert after == before + 1
    tab.reload()
    assert tab.locator("table tbody tr").count() == 2  # both runs, with their bytes
    assert problems == []
    context.close()


def test_run_now_does_not_exist_in_public_mode(client):
    """If the Explorer runs in public mode, then there is no form to start a run and posting to its address is refused."""
    assert client.post("/en/volunteer/run", data={"csrf": "x"}).status_code in (404, 405)
    assert "csrf" not in client.get("/en/").text


@pytest.mark.postgres
def test_explorer_over_postgresql_is_read_only(postgres_admin_url, tmp_path):
    """If the Explorer reads a PostgreSQL database, then pages answer and its connection cannot write."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from analysis.synthetic import example_history
    from probe.store import Store
    from probe.web.source import Source
    from tests.collector_support import fresh_postgres_url

    url, drop = fresh_postgres_url(postgres_admin_url)
    try:
        store = Store.open(url)
        try:
            store.save_measurements(example_history(every=timedelta(days=2)))
        finally:
            store.close()
        source = Source(url)
        try:
            with pytest.raises(DBAPIError, match="read-only"), source.engine.begin() as conn:
                conn.execute(text("CREATE TABLE intruder (a integer)"))
        finally:
            source.close()
        web = WebProcess(url, tmp_path / "web", "--mode", "public").start()
        try:
            with httpx.Client(base_url=web.url, timeout=60) as c:
                assert c.get("/api/v1/overview").json()["measurements"] > 0
                assert c.get("/ru/sites/azattyk.org").status_code == 200
        finally:
            web.stop()
    finally:
        drop()  # type: ignore[operator]


def test_serve_with_web_mounts_the_explorer(explorer_db, tmp_path):
    """If kuzot serve runs with --with-web, then the collector's endpoints and the Explorer's pages answer on one port."""
    import shutil

    from tests.collector_support import CollectorProcess

    path = tmp_path / "collector.db"
    shutil.copy(explorer_db["db"].removeprefix("sqlite:///"), path)
    collector = CollectorProcess(
        f"sqlite:///{path}", tmp_path / "serve", "--with-web", "--orders", str(explorer_db["orders"])
    ).start()
    try:
        with httpx.Client(base_url=collector.url, timeout=60) as c:
            assert c.get("/api/v1/health").json()["service"] == "collector"
            assert c.post("/api/v1/probes").status_code == 201
            page = c.get("/en/sites/azattyk.org")
            assert page.status_code == 200 and "azattyk.org" in page.text
            assert "/en/volunteer" not in page.text  # a collector is public
            assert c.get("/en/volunteer").status_code == 404
            assert c.get("/api/v1/overview").json()["measurements"] > 0
    finally:
        collector.stop()


def test_webhook_posts_a_new_confirmed_episode(lab, explorer_db, tmp_path):
    """If a new confirmed episode appears while kuzot web runs with --webhook, then its JSON is posted once, and history is not."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from probe.lab.dns_server import Behaviour as DnsBehaviour
    from probe.lab.loopback import BLOCKPAGE_IP, Scenario

    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    web = WebProcess(
        explorer_db["db"], tmp_path / "web", "--orders", str(explorer_db["orders"]), "--refresh", "1",
        "--webhook", hook_url,
    ).start()  # fmt: skip
    try:
        target = lab.add(
            Scenario(
                "hooked", "newly-blocked.kg", dns=DnsBehaviour.address(BLOCKPAGE_IP), expect_status="blocked"
            )
        )
        result = kuzot("run", "--db", explorer_db["db"], "--url", target.url, *lab.probe_args(),
                       "--probe-asn", LAB_ASN, "--probe-cc", "KG")  # fmt: skip
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not received:
            time.sleep(0.5)
        time.sleep(3)  # a second refresh must not send it again
    finally:
        web.stop()
        receiver.shutdown()
    assert [r["episode"]["domain"] for r in received] == ["newly-blocked.kg"]
    assert received[0]["event"] == "episode_confirmed"
    assert received[0]["url"].startswith(web.url) and received[0]["episode"]["confirmed"]
