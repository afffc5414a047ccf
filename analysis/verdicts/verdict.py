"""The verdict record, and the decision a rule returns before it becomes one.

Why apart from the rules: every layer module returns a :class:`Decision` (rule id,
reason, observations), and only :func:`make_verdict` turns it into the archival
:class:`Verdict` with the rule's status, so no rule can set a status its table entry
does not have.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from analysis.verdicts.rules import RULES, RULES_VERSION, Blocking, Status
from probe.records import Measurement, format_time

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one measurement says about one URL, with the rule and observations behind it."""

    measurement_id: str
    url: str
    domain: str
    probe_asn: int | None
    measured_at: datetime
    status: Status
    blocking: Blocking | None
    confirmed: bool
    reason: str
    rule_id: str
    rules_version: str
    observation_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values; ``measured_at`` as ISO 8601 UTC with ``Z``."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["measured_at"] = format_time(self.measured_at)
        data["observation_ids"] = list(self.observation_ids)
        return data


VERDICT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Verdict))


@dataclass(frozen=True, slots=True)
class Decision:
    rule_id: str
    reason: str
    observation_ids: tuple[str, ...] = ()
    #: For DNS lies: the addresses that are not the site's.
    addresses: frozenset[str] = frozenset()


def make_verdict(m: Measurement, decision: Decision) -> Verdict:
    rule = RULES[decision.rule_id]
    seen: dict[str, None] = dict.fromkeys(decision.observation_ids)
    return Verdict(
        measurement_id=m.id,
        url=m.url,
        domain=m.domain,
        probe_asn=m.probe_asn,
        measured_at=m.started_at.astimezone(UTC),
        status=rule.status,
        blocking=rule.blocking,
        confirmed=rule.confirmed,
        reason=decision.reason[:1].upper() + decision.reason[1:],
        rule_id=rule.id,
        rules_version=RULES_VERSION,
        observation_ids=list(seen),
    )


def verdicts_frame(verdicts: Iterable[Verdict]) -> pd.DataFrame:
    """One row per verdict, columns :data:`VERDICT_COLUMNS`; ``measured_at`` is a UTC
    timestamp, ``probe_asn`` a nullable integer, ``observation_ids`` a list.

    pandas is imported here, not with the module: ``kuzot run`` judges its run with
    these rules and never needs a frame (pandas and numpy are ~45 MiB of its RSS)."""
    import pandas as pd

    rows = [{name: getattr(v, name) for name in VERDICT_COLUMNS} for v in verdicts]
    frame = pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))
    frame["measured_at"] = pd.to_datetime(frame["measured_at"], utc=True)
    frame["probe_asn"] = frame["probe_asn"].astype("Int64")
    frame["confirmed"] = frame["confirmed"].astype(bool)
    frame["observation_ids"] = [list(ids) for ids in frame["observation_ids"]]
    return frame
