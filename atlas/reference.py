"""Slow, obviously correct pure-Python surprise from raw documents: the test oracle the pipeline never imports."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from atlas.records import SeriesSurprise, WindowSurprise
from atlas.settings import SurpriseSettings

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ReferenceWindow:
    """One metric's window: the window surprise S(q, T) of every series that has one, and the summary record."""

    series_surprise: Mapping[str, float]
    result: WindowSurprise


def reference_window(
    docs: pd.DataFrame, settings: SurpriseSettings, window_end: datetime
) -> dict[str, ReferenceWindow]:
    """Every metric's window surprise for the window ending at `window_end` (UTC), from documents with columns
    timestamp (tz-aware UTC), metric, series, value; metrics without a scored series are left out."""
    window_start = window_end - settings.window
    score_from = window_start if settings.mode == "max" else window_end - settings.interval
    fetch_start = score_from - settings.warm_up_buckets * settings.interval  # the warm-up before the first scored
    in_range = docs[(docs["timestamp"] >= fetch_start) & (docs["timestamp"] < window_end)]
    found: dict[str, ReferenceWindow] = {}
    for metric, rows in sorted(in_range.groupby("metric"), key=lambda item: str(item[0])):
        scores: dict[str, float] = {}
        for series, points in rows.groupby("series"):
            score = _window_surprise(_bucket_means(points, settings.interval), settings, score_from)
            if score is not None:
                scores[str(series)] = score
        if scores:
            found[str(metric)] = _summary(str(metric), scores, settings, window_end)
    return found


def reference_combined(
    docs: pd.DataFrame, settings: SurpriseSettings, window_end: datetime, metrics: list[str], name: str
) -> ReferenceWindow | None:
    """DADS's combined score: with `docs`' series column holding the combining field's values, each value's sum of
    its window surprise over `metrics` (in that order), where every metric has one; None when no value has all."""
    per_metric = reference_window(docs, settings, window_end)
    if any(m not in per_metric for m in metrics):
        return None
    values = set.intersection(*(set(per_metric[m].series_surprise) for m in metrics))
    sums = {v: _plain_sum([per_metric[m].series_surprise[v] for m in metrics]) for v in sorted(values)}
    return _summary(name, sums, settings, window_end) if sums else None


def _summary(
    metric: str, scores: dict[str, float], settings: SurpriseSettings, window_end: datetime
) -> ReferenceWindow:
    """The WindowSurprise of one metric from its series' window surprise: percentiles, count and top series."""
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[: settings.top_series]
    result = WindowSurprise(
        metric=metric,
        window_start=window_end - settings.window,
        window_end=window_end,
        percentiles={
            float(p): _exact_percentile(sorted(scores.values()), p)
            if settings.reports_percentile(p, len(scores))
            else None
            for p in settings.percentiles
        },
        series_count=len(scores),
        top_series=tuple(SeriesSurprise(name, value) for name, value in ranked),
    )
    return ReferenceWindow(scores, result)


def _bucket_means(points: pd.DataFrame, interval: timedelta) -> list[tuple[datetime, float]]:
    """(bucket start, mean value) of the non-empty buckets, in time order; buckets align to the Unix epoch."""
    buckets: dict[datetime, list[float]] = {}
    for ts, value in zip(points["timestamp"], points["value"], strict=True):
        moment = ts.to_pydatetime()
        start = _EPOCH + ((moment - _EPOCH) // interval) * interval
        buckets.setdefault(start, []).append(float(value))
    return [(start, math.fsum(values) / len(values)) for start, values in sorted(buckets.items())]


def _window_surprise(
    buckets: list[tuple[datetime, float]], settings: SurpriseSettings, score_from: datetime
) -> float | None:
    best: float | None = None
    for i, (start, x) in enumerate(buckets):
        previous = [value for _, value in buckets[max(0, i - settings.baseline_window) : i]]
        if start < score_from or not previous:
            continue
        spread = [value for _, value in buckets[max(0, i - settings.std_window) : i]]
        surprise = _surprise(x, previous, spread, settings)
        if math.isfinite(surprise) and (best is None or surprise > best):
            best = surprise
    return best


def _surprise(x: float, previous: list[float], spread: list[float], settings: SurpriseSettings) -> float:
    """s(q, t) of value x after the baseline window `previous` and the std window `spread` (the values of the last
    std_window buckets); NaN where a zero baseline or std leaves it undefined."""
    mean = _plain_sum(previous) / len(previous)
    baseline = mean if settings.baseline == "mean" else _median(previous)
    if settings.normalization == "none":
        return abs(x - baseline)
    if settings.normalization == "relative":
        return abs(x - baseline) / abs(baseline) if baseline != 0 else math.nan
    spread_mean = _plain_sum(spread) / len(spread)
    std = math.sqrt(_plain_sum([(v - spread_mean) ** 2 for v in spread]) / len(spread))
    if std == 0:
        return math.nan
    if settings.normalization == "zscore":
        return abs(x - baseline) / std
    z = (x - baseline) / std  # gaussian: -ln of the normal density N(x; baseline, std)
    return 0.5 * z * z + math.log(std) + 0.5 * math.log(2 * math.pi)


def _median(values: list[float]) -> float:
    """The middle value, or the mean of the two middle values (their sum halved, as the painless script does)."""
    ordered, n = sorted(values), len(values)
    return ordered[n // 2] if n % 2 == 1 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2.0


def _plain_sum(values: list[float]) -> float:
    total = 0.0
    for v in values:
        total += v
    return total


def _exact_percentile(ascending: list[float], percent: float) -> float | None:
    """The value at index round-half-up(p / 100 * (n - 1)) of the sorted values, as Java's Math.round picks it."""
    if not ascending:
        return None
    position = (percent / 100.0) * (len(ascending) - 1)
    index = math.floor(position)
    if position - index >= 0.5:
        index += 1
    return ascending[index]
