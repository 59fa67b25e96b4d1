"""A metric's WindowSurprise from every series' window surprise, computed here the way percentiles_bucket does
(for the surprise asked in parts of the series, and for the one-scan)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from atlas.queries import WindowRange
from atlas.records import SeriesSurprise, WindowSurprise
from atlas.settings import Settings

FloatArray = npt.NDArray[np.float64]


def exact_percentile(ascending: FloatArray, percent: float) -> float:
    """The value at index round-half-up(p / 100 * (n - 1)) of sorted values: percentiles_bucket's rule (no
    interpolation), as reference.py pins it down."""
    position = (percent / 100.0) * (len(ascending) - 1)
    index = math.floor(position)
    if position - index >= 0.5:
        index += 1
    return float(ascending[index])


def summarize_window(
    settings: Settings, metric: str, window: WindowRange, keys: Sequence[str], values: FloatArray
) -> WindowSurprise | None:
    """The WindowSurprise of one metric from every series' window surprise (`keys` ascending in terms' _key order,
    NaN where a series has none); None when no series has one. Top series: surprise descending, then key; a
    percentile the settings do not report for so few series is None, as in the per-window request."""
    scored = np.flatnonzero(~np.isnan(values))
    if not len(scored):
        return None
    found = values[scored]
    ascending = np.sort(found)
    top = scored[np.argsort(-found, kind="stable")[: settings.surprise.top_series]]
    return WindowSurprise(
        metric=metric,
        window_start=window.start,
        window_end=window.end,
        percentiles={
            float(p): exact_percentile(ascending, float(p))
            if settings.surprise.reports_percentile(p, len(found))
            else None
            for p in settings.surprise.percentiles
        },
        series_count=len(found),
        top_series=tuple(SeriesSurprise(str(keys[i]), float(values[i])) for i in top),
    )
