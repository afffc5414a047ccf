"""The measurement page's data: the stored record read back, beside its verdict.

Why apart from the snapshot queries: this is the one page that reads the database per
request (the record itself, with every observation and its signature); everything else
about the measurement comes from the snapshot.
"""

from __future__ import annotations

from typing import Any

from analysis.networks import network_label
from probe.web.cache import SIMULATED_MARKS, Snapshot, lab_network
from probe.web.rows import NotFound, episode_of_measurement, verdict_row
from probe.web.source import Source

OONI_EXPLORER = "https://explorer.ooni.org/m/"


def _obs_list(items: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return list(items or [])


def _observations(side: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        "dns": _obs_list(side.get("dns")),
        "tcp": _obs_list(side.get("tcp")),
        "tls": _obs_list(side.get("tls")),
        "http": [_http(h) for h in _obs_list(side.get("http"))],
    }


def measurement(snap: Snapshot, source: Source, measurement_id: str) -> dict[str, Any]:
    """Every observation, the verdict and its reason, the control's view, the signature."""
    stored = source.record(measurement_id)
    if stored is None:
        raise NotFound(f"no measurement {measurement_id}")
    record = stored.record
    verdict = verdict_row(snap, snap.rows[measurement_id]) if measurement_id in snap.rows else None
    annotations = record.get("annotations") or {}
    uid = annotations.get("ooni.measurement_uid")
    control = record.get("control") or {}
    simulated = any(annotations.get(mark) == "true" for mark in SIMULATED_MARKS) or lab_network(
        record.get("probe_asn")
    )
    episode_ids = episode_of_measurement(snap).get(measurement_id, []) if verdict else []
    return {
        "id": stored.id,
        "url": record.get("url"),
        "domain": record.get("domain"),
        "role": record.get("role"),
        "started_at": record.get("started_at"),
        "runtime": record.get("runtime"),
        "run_id": record.get("run_id"),
        "probe_asn": record.get("probe_asn"),
        "probe_cc": record.get("probe_cc"),
        "network": network_label(record.get("probe_asn"), record.get("probe_network")),
        "software": f"{record.get('software_name', '')} {record.get('software_version', '')}".strip(),
        "source": stored.source,
        "simulated": simulated,
        "annotations": annotations,
        "verdict": verdict,
        "episode_ids": episode_ids,
        "probe": _observations(record),
        "control": _control(control),
        "signature": {
            "content_hash": stored.content_hash,
            "signature": stored.signature,
            "key_id": stored.key_id,
            "public_key": stored.public_key,
        },
        "ooni_explorer_url": f"{OONI_EXPLORER}{uid}" if uid else None,
    }


def _control(control: dict[str, Any]) -> dict[str, Any] | None:
    if not control:
        return None
    return {"source": control.get("source"), "failure": control.get("failure"), **_observations(control)}


def _http(obs: dict[str, Any]) -> dict[str, Any]:
    """An HTTP observation without its raw body sample (which may be a hostile page):
    the length, hash and title say what was received."""
    return {k: v for k, v in obs.items() if k != "body_sample"}
