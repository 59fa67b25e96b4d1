"""Frozen records passed between the stages: the only shapes one stage hands to the next."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from atlas.scoring import anomaly_score

Severity = Literal["low", "medium", "high"]
SEVERITIES: tuple[Severity, Severity, Severity] = ("low", "medium", "high")  # in the order of threshold.levels


@dataclass(frozen=True)
class SeriesSurprise:
    """One of a window's most surprising series: its key and its window surprise S(q, T)."""

    series: str
    surprise: float


@dataclass(frozen=True)
class Anomaly:
    """One anomalous point of one metric's percentile series P(T); window_end is the tz-aware UTC window end T.

    `sigmas_above_mean` is (value - mean) / std, or None when std is 0 (a flat history: any rise is anomalous and
    its severity is "high"; None rather than inf keeps the record JSON-safe). `event_id` names the event (run of
    consecutive anomalous points) the point belongs to.
    """

    metric: str
    percentile: float
    window_end: datetime
    value: float
    mean: float
    std: float
    threshold: float
    sigmas_above_mean: float | None
    severity: Severity
    event_id: str
    top_series: tuple[SeriesSurprise, ...] = ()

    @property
    def score(self) -> int:
        """0 to 100, how unlikely the value is above the typical value `mean` (docs/scores-and-grouping.md)."""
        return anomaly_score(self.value, self.mean, self.std)


@dataclass(frozen=True)
class AnomalyEvent:
    """A run of consecutive anomalous points of one metric and percentile.

    `start` and `end` are the window ends of its first and last points, both inclusive (tz-aware UTC); the event
    lasts `points * step`. `severity` is the highest of its points' and `peak_value` the largest value.
    """

    metric: str
    percentile: float
    start: datetime
    end: datetime
    points: int
    peak_value: float
    severity: Severity
    event_id: str


def event_peaks(anomalies: Sequence[Anomaly]) -> dict[str, Anomaly]:
    """Each event's peak point: its most unlikely anomaly, the highest score, then the largest value (the first
    such in the given order)."""
    peaks: dict[str, Anomaly] = {}
    for a in anomalies:
        best = peaks.get(a.event_id)
        if best is None or (a.score, a.value) > (best.score, best.value):
            peaks[a.event_id] = a
    return peaks


@dataclass(frozen=True)
class WindowSurprise:
    """One metric's result for the window [window_start, window_end) (tz-aware UTC): P(m, T, p) per percentile.

    `percentiles` maps each configured p to the p-th percentile of the window surprise S(q, T) over the metric's
    series, or None when no series has a window surprise. `series_count` counts the series that have one, and
    `top_series` names the most surprising of them (S descending, then series key ascending).
    """

    metric: str
    window_start: datetime
    window_end: datetime
    percentiles: Mapping[float, float | None]
    series_count: int
    top_series: tuple[SeriesSurprise, ...]


@dataclass(frozen=True)
class TruthInterval:
    """A known disruption from `start` to `end` (exclusive, UTC) of one metric, or of all when `metric` is None."""

    start: datetime
    end: datetime
    metric: str | None


# ---- influencers and grouped events (atlas/influencers.py, atlas/grouping.py) ----------------------------------
@dataclass(frozen=True)
class Influencer:
    """A series key (`field` "series") or one series field's value that contributed `share` (0 to 1) of an event's
    summed window surprise of its points' top series."""

    field: str
    value: str
    share: float


@dataclass(frozen=True)
class GroupMember:
    """One metric and percentile event inside a grouped event: the event, its anomalies in time order, and its
    influencers (series first, then each series field's values, shares descending)."""

    event: AnomalyEvent
    anomalies: tuple[Anomaly, ...]
    influencers: tuple[Influencer, ...]

    @property
    def peak(self) -> Anomaly:
        """The most unlikely point: the highest score, then the largest value (the first such)."""
        return max(self.anomalies, key=lambda a: (a.score, a.value))

    @property
    def score(self) -> int:
        """The highest score of its points."""
        return max(a.score for a in self.anomalies)


@dataclass(frozen=True)
class GroupedEvent:
    """Events of several metrics at overlapping hours, under one value of a series field (`field`=`value`; value
    "*" when no single value dominated) or, with `field` None, of all metrics.

    `start` and `end` are the first and last window ends of its members (UTC, inclusive); `members` are ordered by
    which turned first. `criticality` follows docs/scores-and-grouping.md.
    """

    group_id: str
    field: str | None
    value: str | None
    start: datetime
    end: datetime
    criticality: Severity
    members: tuple[GroupMember, ...]

    @property
    def label(self) -> str:
        """`node=node_3`, or the metrics' names for a grouping across metrics."""
        if self.field is not None:
            return f"{self.field}={self.value}"
        names = self.metrics
        return ", ".join(names[:3]) + (f" +{len(names) - 3} more" if len(names) > 3 else "")

    @property
    def metrics(self) -> tuple[str, ...]:
        """Its distinct metrics, in the order they turned."""
        return tuple(dict.fromkeys(m.event.metric for m in self.members))

    @property
    def score(self) -> int:
        """The highest score of its members."""
        return max(m.score for m in self.members)
