"""A screenshot-level review of the report in headless Chromium (Playwright, Debian's browser)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import kuzot

CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have playwright (the test extra)")
        pytest.skip("playwright is not installed (pip install 'kuzot[test]')")
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have chromium (.ci/run installs it)")
        pytest.skip("Debian's chromium is not installed")
    with sync_playwright() as p:
        # Never a downloaded browser: the system's chromium, no network.
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def lab_report(history_db, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "report"
    result = kuzot(
        "report", "--db", history_db["db"], "--domain", "azattyk.org", "--orders", str(history_db["orders"]),
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize("page_name", ["index.html", "index.ru.html", "index.ky.html"])
def test_report_renders_with_the_simulated_banner_and_no_console_errors(
    browser, lab_report, page_name, tmp_path_factory
):
    """If a lab report is opened in Chromium, then it renders without console errors, shows the simulated notice first, and both charts load."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(
        "request",
        lambda r: problems.append(f"fetched {r.url}") if not r.url.startswith(("file:", "data:")) else None,
    )
    page.goto((lab_report / page_name).as_uri())
    banner = page.locator("#simulated")
    assert banner.is_visible()
    box = banner.bounding_box()
    assert box is not None and box["y"] < page.locator("h1").bounding_box()["y"], (
        "the notice is above the title"
    )
    assert box["height"] > 40
    images = page.locator("img")
    assert images.count() == 2
    for i in range(2):
        width = images.nth(i).evaluate("img => img.complete && img.naturalWidth")
        assert width and width > 800, "each chart decoded"
    shots = tmp_path_factory.mktemp("screenshots")
    page.screenshot(path=str(shots / f"{page_name}.png"), full_page=True)
    images.nth(0).screenshot(path=str(shots / "timeline.png"))
    images.nth(1).screenshot(path=str(shots / "heatmap.png"))
    banner.screenshot(path=str(shots / "banner.png"))
    assert (shots / f"{page_name}.png").stat().st_size > 50_000
    assert not problems, problems
    page.close()
