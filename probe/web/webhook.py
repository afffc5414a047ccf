"""Webhook: tell a newsroom's endpoint when a new confirmed episode appears.

Why only confirmed episodes: a webhook wakes people up; an unconfirmed episode (two
timeouts in a row) can be noise, while a confirmed one rests on a blockpage fingerprint
or a known blocking address.  Episodes present at start-up are history, not news, and
are never sent.  A failed delivery is retried a few times and then given up (and said
so on stderr): the Atom feeds remain the record.
"""

from __future__ import annotations

import sys
from typing import Any

import httpx
import trio

from probe import __version__
from probe.web import queries
from probe.web.cache import AnalysisCache, Snapshot

ATTEMPTS = 3


def confirmed_ids(snap: Snapshot) -> set[str]:
    return {e["episode_id"] for e in queries.episode_records(snap) if e["confirmed"]}


def new_confirmed(snap: Snapshot, known: set[str]) -> list[dict[str, Any]]:
    return [e for e in queries.episode_records(snap) if e["confirmed"] and e["episode_id"] not in known]


async def deliver(client: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> bool:
    for attempt in range(ATTEMPTS):
        try:
            response = await client.post(url, json=payload)
            if response.status_code < 300:
                return True
        except httpx.HTTPError:
            pass
        await trio.sleep(2**attempt)
    print(f"webhook: gave up on episode {payload['episode']['episode_id']} after {ATTEMPTS} tries",
          file=sys.stderr)  # fmt: skip
    return False


async def refresh_and_notify(
    cache: AnalysisCache, every: float, *, webhook: str | None, base_url: str
) -> None:
    """Keep the snapshot current in the background (pages then rarely wait for a
    refresh) and post each new confirmed episode to ``webhook``."""
    assert cache.snapshot is not None
    known = confirmed_ids(cache.snapshot)
    async with httpx.AsyncClient(timeout=30, headers={"User-Agent": f"kuzot-web/{__version__}"}) as client:
        while True:
            await trio.sleep(every)
            if not await trio.to_thread.run_sync(cache.refresh):
                continue
            snap = cache.snapshot
            # Summarising a new snapshot's episodes takes a while on a big history: off the event loop.
            fresh = await trio.to_thread.run_sync(new_confirmed, snap, known)
            for episode in fresh:
                known.add(episode["episode_id"])
                if webhook:
                    await deliver(
                        client,
                        webhook,
                        {
                            "event": "episode_confirmed",
                            "episode": episode,
                            "url": f"{base_url}/en/episodes/{episode['episode_id']}",
                            "rules_version": snap.rules_version,
                        },
                    )
