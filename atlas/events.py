"""Events: runs of consecutive anomalies of one metric and percentile, and the event id (built and parsed here only)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from atlas.clock import format_instant, parse_instant
from atlas.records import SEVERITIES, Anomaly, AnomalyEvent

_T = TypeVar("_T")


def format_event_id(metric: str, percentile: float, start: datetime) -> str:
    """The deterministic id of the event of `metric` and `percentile` whose first window end (UTC) is `start`."""
    return f"{metric}|p{percentile:g}|{format_instant(start)}"


def event_start(event_id: str) -> datetime:
    """The first window end of an event (UTC), from its id (`metric|p90|<start>`)."""
    return parse_instant(event_id.rsplit("|", 1)[1])


def anomaly_events(anomalies: Sequence[Anomaly], step: timedelta) -> list[AnomalyEvent]:
    """Runs of anomalies of the same metric and percentile whose window ends are `step` apart, ordered by start.

    The event id is recomputed from each run's first window end, so it equals the anomalies' `event_id` when the
    whole run is given.
    """
    by_series: dict[tuple[str, float], list[Anomaly]] = {}
    for anomaly in anomalies:
        by_series.setdefault((anomaly.metric, anomaly.percentile), []).append(anomaly)
    events: list[AnomalyEvent] = []
    for (metric, percentile), found in by_series.items():
        found.sort(key=lambda a: a.window_end)
        for run in split_runs(found, step, lambda a: a.window_end):
            events.append(
                AnomalyEvent(
                    metric=metric,
                    percentile=percentile,
                    start=run[0].window_end,
                    end=run[-1].window_end,
                    points=len(run),
                    peak_value=max(a.value for a in run),
                    severity=max((a.severity for a in run), key=SEVERITIES.index),
                    event_id=format_event_id(metric, percentile, run[0].window_end),
                )
            )
    return sorted(events, key=lambda e: (e.start, e.metric, e.percentile))


def split_runs(items: Sequence[_T], step: timedelta, end_of: Callable[[_T], datetime]) -> list[list[_T]]:
    """Split time-ordered items into runs whose consecutive window ends are exactly `step` apart."""
    runs: list[list[_T]] = []
    for item in items:
        if runs and end_of(item) - end_of(runs[-1][-1]) == step:
            runs[-1].append(item)
        else:
            if runs and end_of(item) == end_of(runs[-1][-1]):
                raise ValueError(f"two anomalies of one series at {format_instant(end_of(item))}")
            runs.append([item])
    return runs
