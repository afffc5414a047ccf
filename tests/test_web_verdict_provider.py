"""The Explorer's stored-verdict provider: cached verdicts read back, only the rest judged."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import probe.web.cache as web_cache
from analysis.fingerprints import load_fingerprints
from analysis.verdict_cache import cached_verdicts
from probe.formats.ooni import measurement_from_ooni
from probe.store import Store
from probe.web.source import Source
from tests.test_ooni_format import dns_blocked_line, nxdomain_line, ooni_line
from tests.test_verdict_cache import _history


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("measurement_id", kind="mergesort").reset_index(drop=True)


def test_stored_provider_reads_the_cache_and_judges_only_what_is_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the verdict cache holds a database's verdicts, then the stored provider judges nothing at start-up, gives the judging provider's frame, and judges only a measurement stored later."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    store = Store.open(db)
    store.save_measurements([*_history(), measurement_from_ooni(ooni_line())], source="lab")
    store.close()
    cached_verdicts(db, fingerprints=load_fingerprints())
    source = Source(db)
    try:
        assert isinstance(web_cache.provider_for(source), web_cache.StoredVerdictProvider)
        expected, _ = web_cache.JudgingProvider(source).verdicts_since(None)
        judged: list[int] = []
        real = web_cache.judge_all

        def counting(items, **kw):
            items = list(items)
            judged.append(sum(1 for m in items if m.role != "canary"))
            return real(items, **kw)

        monkeypatch.setattr(web_cache, "judge_all", counting)
        provider = web_cache.StoredVerdictProvider(source)
        got, mark = provider.verdicts_since(None)
        assert sum(judged) == 0
        pd.testing.assert_frame_equal(_sorted(got), _sorted(expected))
        store = Store.open(db)
        store.save_measurements([measurement_from_ooni(x) for x in (dns_blocked_line(), nxdomain_line())])
        store.close()
        new, _ = provider.verdicts_since(mark)
        assert sum(judged) == 2 and len(new) == 2
    finally:
        source.close()
