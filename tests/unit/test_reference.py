"""reference.py's surprise on hand-computed series: the baseline and the std over their own windows."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from atlas.reference import reference_window
from atlas.settings import SurpriseSettings, load_settings

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _settings(**overrides: object) -> SurpriseSettings:
    base = {"surprise.window": "1h", "surprise.baseline_window": 2, "surprise.normalization": "zscore"}
    return load_settings(None, {**base, **{f"surprise.{k}": v for k, v in overrides.items()}}).surprise


def _last_surprise(values: dict[int, float], settings: SurpriseSettings, end_hour: int) -> float:
    """The window surprise of one series with one document at each hour of `values`, window ending at end_hour."""
    docs = pd.DataFrame(
        {
            "timestamp": [T0 + timedelta(hours=h, minutes=30) for h in values],
            "metric": "m",
            "series": "q",
            "value": list(values.values()),
        }
    )
    (score,) = reference_window(docs, settings, T0 + timedelta(hours=end_hour))["m"].series_surprise.values()
    return score


def test_the_std_comes_from_the_scale_window_and_the_baseline_from_its_own() -> None:
    values = {0: 0.0, 1: 4.0, 2: 1.0, 3: 3.0, 4: 10.0}
    # baseline: median of [1, 3] = 2 either way; std of [1, 3] = 1, of [0, 4, 1, 3] = sqrt(2.5)
    assert _last_surprise(values, _settings(), 5) == pytest.approx(8.0, rel=1e-12)
    assert _last_surprise(values, _settings(scale_window=4), 5) == pytest.approx(8 / math.sqrt(2.5), rel=1e-12)
    gaussian = _settings(scale_window=4, normalization="gaussian")
    z = 8 / math.sqrt(2.5)
    expected = 0.5 * z * z + math.log(math.sqrt(2.5)) + 0.5 * math.log(2 * math.pi)
    assert _last_surprise(values, gaussian, 5) == pytest.approx(expected, rel=1e-12)


def test_the_scale_window_skips_gaps_and_starts_with_the_warm_up() -> None:
    """Hour 3 is empty and the warm-up starts 4 buckets before the window (hour 2): the std takes [4, 1, 3]."""
    values = {0: 5.0, 1: 0.0, 2: 4.0, 4: 1.0, 5: 3.0, 6: 10.0}
    std = math.sqrt(((4 - 8 / 3) ** 2 + (1 - 8 / 3) ** 2 + (3 - 8 / 3) ** 2) / 3)
    assert _last_surprise(values, _settings(scale_window=4), 7) == pytest.approx(8 / std, rel=1e-12)
