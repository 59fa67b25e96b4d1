"""The threshold stage: flag points of a metric's percentile series above a moving mean plus sigmas times std, and
above the absolute floor `threshold.min_value`."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from atlas.events import format_event_id, split_runs
from atlas.records import SEVERITIES, Anomaly, SeriesSurprise, Severity
from atlas.settings import ThresholdSettings


@dataclass(frozen=True)
class ThresholdPoint:
    """One point of P(T) with its threshold, for charts; None marks a missing value or no full threshold window."""

    window_end: datetime
    value: float | None
    mean: float | None
    std: float | None
    threshold: float | None
    is_anomalous: bool
    sigmas_above_mean: float | None
    severity: Severity | None


def threshold_points(values: pd.Series[float], settings: ThresholdSettings) -> list[ThresholdPoint]:
    """Every point of `values` (indexed by regularly spaced tz-aware UTC window ends; NaN = missing), scored.

    The threshold history of point k is taken from the `settings.lookback` points before it by position (the point
    itself excluded, missing points skipped): the last `settings.window` of them that are not anomalous themselves,
    deciding each in time order by the same rule, within those points only; where fewer than `window` are not
    anomalous (a new normal), the last `window` present points. With `settings.recovery` above 0 a point below the
    threshold is still anomalous when the present point before it is and its value is at least `recovery`
    (hysteresis: an open event lasts while the value stays up); that point is decided within the same `lookback`
    points, by the same rule. With lookback == window this is the plain rule:
    the previous `window` points, all present. The threshold is `combined_threshold`: the moving one, raised to
    `settings.min_value` when that is above 0. Without `window` present points the point has no threshold and is
    never anomalous; charts show it without mean, std or threshold. Mean and population std are summed left to
    right exactly as `MovingFunctions.unweightedAvg` / `stdDev` do, so the Elasticsearch side (the watch's
    `moving_fn` script) gets the same floats and flags the same points.
    """
    return _score_series(values, settings, step=None)


def select_anomalies(
    metric: str,
    percentile: float,
    values: pd.Series[float],
    settings: ThresholdSettings,
    step: timedelta,
    top_series: Mapping[datetime, tuple[SeriesSurprise, ...]] | None = None,
) -> list[Anomaly]:
    """The anomalous points of one metric's percentile series `values` (window ends `step` apart, UTC), in time order.

    Points are anomalous when strictly above max(mean + sigmas * std, min_value) (no floor when min_value is 0), or
    at or above `recovery` right after an anomalous point (threshold_points says how);
    runs of consecutive anomalous points shorter than `settings.min_duration` (a run of n points lasts n * step)
    are dropped with all their points.
    `top_series` maps a window end to its most surprising series.
    """
    flagged = [p for p in _score_series(values, settings, step=step) if p.is_anomalous]
    anomalies: list[Anomaly] = []
    for run in split_runs(flagged, step, lambda p: p.window_end):
        if len(run) * step < settings.min_duration:
            continue
        event_id = format_event_id(metric, percentile, run[0].window_end)
        for point in run:
            tops = top_series.get(point.window_end, ()) if top_series is not None else ()
            anomalies.append(_to_anomaly(metric, percentile, point, event_id, tops))
    return anomalies


def _score_series(
    values: pd.Series[float], settings: ThresholdSettings, step: timedelta | None
) -> list[ThresholdPoint]:
    ends = _window_ends(values, step)
    numbers = [float(v) for v in values.to_numpy(dtype=float)]
    return [
        _score_point(end, numbers[k], *_history(numbers[max(0, k - settings.lookback) : k], settings), settings)
        for k, end in enumerate(ends)
    ]


def _window_ends(values: pd.Series[float], step: timedelta | None) -> list[datetime]:
    index = values.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ValueError("the threshold stage needs a series indexed by tz-aware UTC window ends")
    ends = [t.to_pydatetime().astimezone(UTC) for t in index]
    gaps = {later - earlier for earlier, later in itertools.pairwise(ends)}
    if len(gaps) > 1 or any(gap <= timedelta(0) for gap in gaps) or (step is not None and gaps - {step}):
        # Windows are counted by position, so a hole in the index would silently stretch them over time.
        raise ValueError(f"window ends must be increasing and regularly spaced{f' by {step}' if step else ''}")
    return ends


def _history(previous: list[float], settings: ThresholdSettings) -> tuple[tuple[float, float] | None, bool]:
    """Mean and std of the threshold history of the point after `previous` (oldest first, NaN = missing), or None;
    and whether the last present point of `previous` is anomalous (an event open for `recovery` to continue)."""
    # With lookback == window a missing point leaves fewer than `window` present ones: no threshold (the plain rule).
    present = [v for v in previous if math.isfinite(v)]
    w, unflagged, is_open = settings.window, list[float](), False
    for j, v in enumerate(present):
        stats = _stats_before(present, unflagged, j, w)
        is_open = stats is not None and _is_anomalous(v, _threshold(stats, settings), is_open, settings.recovery)
        if not is_open:
            unflagged.append(v)
    return _stats_before(present, unflagged, len(present), w), is_open


def _threshold(stats: tuple[float, float], settings: ThresholdSettings) -> float:
    return combined_threshold(stats[0], stats[1], settings.sigmas, settings.min_value)


def _is_anomalous(value: float, threshold: float, is_open: bool, recovery: float) -> bool:
    """Above the threshold, or continuing an open event at or above `recovery` (when that is above 0)."""
    return value > threshold or (is_open and 0 < recovery <= value)


def _stats_before(present: list[float], unflagged: list[float], j: int, w: int) -> tuple[float, float] | None:
    if len(unflagged) >= w:
        return _mean_and_std(unflagged[-w:])
    return _mean_and_std(present[j - w : j]) if j >= w else None


def _score_point(
    end: datetime, value: float, stats: tuple[float, float] | None, is_open: bool, settings: ThresholdSettings
) -> ThresholdPoint:
    present = value if math.isfinite(value) else None
    if stats is None:
        return ThresholdPoint(end, present, None, None, None, False, None, None)
    mean, std = stats
    threshold = _threshold(stats, settings)
    # Strictly above: Timelion's "show if greater".
    is_anomalous = present is not None and _is_anomalous(present, threshold, is_open, settings.recovery)
    # A flat history (std 0) makes any rise anomalous; its distance in sigmas is infinite, stored as None.
    sigmas = (present - mean) / std if present is not None and std > 0 else None
    severity = _severity(value, mean, std, settings) if is_anomalous else None
    return ThresholdPoint(end, present, mean, std, threshold, is_anomalous, sigmas, severity)


def _mean_and_std(history: list[float]) -> tuple[float, float]:
    """Mean and population std, in `MovingFunctions`' order of operations (no pairwise or compensated sums)."""
    total = 0.0
    for v in history:
        total += v
    mean = total / len(history)
    squares = 0.0
    for v in history:
        squares += (v - mean) * (v - mean)
    return mean, math.sqrt(squares / len(history))


def combined_threshold(mean: float, std: float, sigmas: float, min_value: float) -> float:
    """max(mean + sigmas * std, min_value), or the moving threshold alone when min_value is 0 (no floor: the moving
    threshold of a gaussian surprise, -ln of a density, can be negative and stays so)."""
    moving = mean + sigmas * std
    return max(moving, min_value) if min_value > 0 else moving


def _severity(value: float, mean: float, std: float, settings: ThresholdSettings) -> Severity:
    """The highest level L whose combined threshold max(mean + L * std, min_value) the value is above; a point flagged
    below the first level (sigmas < levels[0]) is still "low". (A flagged point is above the floor, so the floor
    never changes its level: this is the level of mean + L * std alone.)"""
    crossed = [
        name
        for name, level in zip(SEVERITIES, settings.levels, strict=True)
        if value > combined_threshold(mean, std, level, settings.min_value)
    ]
    return crossed[-1] if crossed else SEVERITIES[0]


def _to_anomaly(
    metric: str, percentile: float, point: ThresholdPoint, event_id: str, tops: tuple[SeriesSurprise, ...]
) -> Anomaly:
    if point.value is None or point.mean is None or point.std is None or point.threshold is None:
        raise AssertionError("an anomalous point always has a value and a full threshold window")
    if point.severity is None:
        raise AssertionError("an anomalous point always has a severity")
    return Anomaly(
        metric=metric,
        percentile=float(percentile),
        window_end=point.window_end,
        value=point.value,
        mean=point.mean,
        std=point.std,
        threshold=point.threshold,
        sigmas_above_mean=point.sigmas_above_mean,
        severity=point.severity,
        event_id=event_id,
        top_series=tuple(tops),
    )
