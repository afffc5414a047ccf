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
    timestamp, ``probe_asn`` a nullable integer, ``observation_ids`` a list, and the
    columns of few distinct values categoricals (:func:`compact_verdicts`).

    pandas is imported here, not with the module: ``kuzot run`` judges its run with
    these rules and never needs a frame (pandas and numpy are ~45 MiB of its RSS)."""
    import pandas as pd

    rows = [{name: getattr(v, name) for name in VERDICT_COLUMNS} for v in verdicts]
    frame = pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))
    frame["measured_at"] = pd.to_datetime(frame["measured_at"], utc=True)
    frame["probe_asn"] = frame["probe_asn"].astype("Int64")
    frame["confirmed"] = frame["confirmed"].astype(bool)
    frame["observation_ids"] = [list(ids) for ids in frame["observation_ids"]]
    return compact_verdicts(frame)


#: Verdict columns with few distinct values (targets, rules, reasons), held as
#: categoricals: one small integer code per row instead of a pointer to a string.
CATEGORY_COLUMNS: tuple[str, ...] = (
    "url",
    "domain",
    "status",
    "blocking",
    "reason",
    "rule_id",
    "rules_version",
)


def id_dtype() -> pd.StringDtype:
    """The measurement-id column's dtype: Arrow-backed strings when pyarrow is installed
    (the ``analysis`` extra), pandas' own (Python string objects) otherwise.

    Why: one id per row is the one column a categorical cannot shrink; as Python
    objects ten million ids take about 0.6 GB, as one Arrow buffer about a fifth."""
    import numpy as np
    import pandas as pd

    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return pd.StringDtype("python", na_value=np.nan)
    return pd.StringDtype("pyarrow", na_value=np.nan)


def compact_verdicts(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (verdict columns) with :data:`CATEGORY_COLUMNS` as categoricals and the
    measurement ids as :func:`id_dtype` strings; the values stay the same.

    Why: the frame an analyst loads over ten million verdicts must fit in memory with
    room for the work on it (issue 18: episodes within 1.5 GB).  Categories are the
    distinct values in sorted order, so sorting and comparing behave as on strings."""
    import pandas as pd

    for name in CATEGORY_COLUMNS:
        if name in frame.columns and not isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].astype("category")
    if "measurement_id" in frame.columns and frame["measurement_id"].dtype != id_dtype():
        frame["measurement_id"] = frame["measurement_id"].astype(id_dtype())
    return frame
