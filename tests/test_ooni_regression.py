"""A regression corpus of real OONI measurements: OONI's own outcome beside Kuzot's verdict.

The measurements are public OONI data under ``../shared/data/`` (read when present, never
copied into the project; the tests skip on a fresh clone).  Each row names OONI's outcome
(the probe's ``test_keys.blocking``/``accessible``, or Explorer's fastpath ``anomaly``/
``confirmed``) and the verdict Kuzot gives now; a change of either is a regression to
look at.  Where the two differ on purpose, the row says why.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from analysis.fingerprints import load_fingerprints
from analysis.verdicts import judge
from probe.formats.ooni import measurement_from_ooni

#: ``../shared/data`` beside the checkout (a worktree sits one level deeper), if present.
_CANDIDATES = [Path(__file__).resolve().parents[n] / "shared" / "data" for n in (2, 3)]
SHARED = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])
FPS = load_fingerprints()

#: file (under SHARED) -> (OONI's outcome, Kuzot's status, Kuzot's blocking, why they differ)
FILES: dict[str, tuple[str, str, str | None, str]] = {
    "ooni-samples/ooni-backend/20250527233111.802678_ID_webconnectivity_5a37ec909dbf14e3.json": (
        "accessible",
        "blocked",
        "http-diff",
        "the probe is redirected to lamanlabuh.aduankonten.id (Indonesia's TrustPositif blockpage, title "
        "'Trustpositif'); OONI's probe-side keys say accessible, its fingerprint database knows the page",
    ),
    "ooni-samples/ooni-backend/bug_351.json": (
        "http-failure",
        "inconclusive",
        None,
        "no rule explains it: never a guess",
    ),
    "ooni-samples/ooni-backend/bug_352.json": ("dns", "blocked", "dns", ""),
    "ooni-samples/ooni-backend/report1.json": (
        "accessible",
        "inconclusive",
        None,
        "OONI's developers cut the fixture's body to '...'; status and an uncommon header match the control's",
    ),
    "ooni-samples/ooni-backend/report2.json": (
        "accessible",
        "inconclusive",
        None,
        "the fixture's body is a placeholder ('BODY-IS-HERE', no markup): only its length differs",
    ),
    "ooni-samples/ooni-backend/requests_none.json": (
        "dns",
        "down",
        None,
        "the control could not resolve the name either: Kuzot does not call that blocking",
    ),
    "ooni-samples/ooni-backend/web_connectivity_b64_hdr.json": (
        "http-failure",
        "blocked",
        "http-failure",
        "",
    ),
    "ooni-samples/ooni-backend/web_connectivity_b64_incorrect.json": (
        "accessible",
        "inconclusive",
        None,
        "only the body length differs: a hint",
    ),
    "ooni-samples/ooni-backend/web_connectivity_ir_fp.json": ("dns", "blocked", "dns", ""),
    "ooni-samples/ooni-backend/web_connectivity_no_body.json": (
        "accessible",
        "down",
        None,
        "the control failed to load the page",
    ),
    "ooni-samples/ooni-backend/web_connectivity_null.json": ("null", "inconclusive", None, ""),
    "ooni-samples/ooni-backend/web_connectivity_null2.json": ("null", "down", None, ""),
    "ooni-samples/ooni-backend/web_connectivity_odd_hdr.json": ("dns", "blocked", "dns", ""),
    "ooni-samples/ooni-probe-cli/8844.measurement.json": ("null", "accessible", None, ""),
    "ooni-samples/ooni-probe-cli/dnsgoogle80.measurement.json": ("null", "down", None, ""),
    "ooni-samples/ooni-probe-cli/firefoxcom.measurement.json": ("accessible", "accessible", None, ""),
    "ooni-samples/ooni-probe-cli/issue-2456.measurement.json": ("accessible", "accessible", None, ""),
    "ooni-samples/ooni-probe-cli/noipv6.measurement.json": ("accessible", "accessible", None, ""),
    "real-data/ooni-probe-cli/cmd-minipipeline.measurement.json": ("accessible", "accessible", None, ""),
    "real-data/ooni-probe-cli/youtube.measurement.json": ("accessible", "accessible", None, ""),
    "real-data/ooni-probe-cli/20230706183840.201925_PK_webconnectivity_19f5e0d803cbaea7.reconstructed.json": (
        "dns",
        "down",
        None,
        "the control's request failed too (reconstructed envelope)",
    ),
}

#: Explorer's fixtures (input URL -> Kuzot's status, blocking), OONI's fastpath outcome from the CSV.
EXPLORER: dict[str, tuple[str, str | None]] = {
    "http://thepiratebay.org/": ("inconclusive", None),
    "http://prachatai.com": ("accessible", None),
    "http://rutor.org/": ("blocked", "http-diff"),
    "http://www.efindlove.com/": ("inconclusive", None),
    "http://www.pokerroom.com/": ("down", None),
    "https://www.theguardian.com/": ("accessible", None),
    "https://www.instagram.com/": ("accessible", None),
}


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not present (public OONI data under ../shared/data)")
    return path


def _ooni_outcome(tk: dict) -> str:
    blocking, accessible = tk.get("blocking"), tk.get("accessible")
    if isinstance(blocking, str):
        return blocking
    if accessible is True:
        return "accessible"
    if blocking is False and accessible is False:
        return "down"
    return "null"


@pytest.mark.parametrize("name", sorted(FILES))
def test_real_measurement_verdict(name: str) -> None:
    """If a real OONI measurement is judged, then Kuzot's verdict is the recorded one beside OONI's own outcome."""
    data = json.loads(_need(SHARED / name).read_text(encoding="utf-8"))
    ooni, status, blocking, why = FILES[name]
    assert _ooni_outcome(data.get("test_keys") or {}) == ooni
    verdict = judge(measurement_from_ooni(data), fingerprints=FPS)
    assert (verdict.status, verdict.blocking) == (status, blocking), verdict.reason
    if ooni == "accessible" and status == "blocked":
        assert why, "a block OONI did not see needs its reason written down"
    kuzot = blocking if status == "blocked" else status
    if kuzot != ooni and not (ooni == "null" or why):
        pytest.fail(f"{name}: Kuzot says {kuzot}, OONI {ooni}, and no reason is recorded")


def test_explorer_measurements_beside_ooni_fastpath() -> None:
    """If Explorer's real measurements are judged, then none OONI's fastpath found clean is called blocked."""
    lines = _need(SHARED / "real-data/ooni-explorer/explorer-web_connectivity.jsonl").read_text(
        encoding="utf-8"
    )
    with (SHARED / "real-data/ooni-explorer/explorer-ooni-outputs.csv").open(encoding="utf-8") as fh:
        fastpath = {row["input"]: row for row in csv.DictReader(fh)}
    seen = set()
    for line in lines.splitlines():
        data = json.loads(line)
        url = data["input"]
        verdict = judge(measurement_from_ooni(data), fingerprints=FPS)
        assert (verdict.status, verdict.blocking) == EXPLORER[url], f"{url}: {verdict.reason}"
        row = fastpath.get(url)
        if row is not None and row["api_anomaly"] == "False":
            assert verdict.status != "blocked", f"{url}: OONI saw no anomaly: {verdict.reason}"
        seen.add(url)
    assert seen == set(EXPLORER)
