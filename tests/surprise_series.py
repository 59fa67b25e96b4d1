"""Hand-built percentile series stored as surprise documents, for the tests of what reads the surprise index."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from atlas import es_bulk, es_client
from atlas.es_client import EsClient
from atlas.indices import percentile_field, surprise_mapping
from atlas.settings import ThresholdSettings
from atlas.threshold import threshold_points

START = datetime(2024, 2, 1, tzinfo=UTC)
HOURS = 80
PERCENTILES = (90.0, 99.0)
# A floor for the sample series (noise around 10, around 30 for mem p99): above the small bumps and the rise after
# the flat stretch, below the large spikes and the whole of mem p99.
FLOOR = 16.0
Key = tuple[str, float]


def series_values(seed: int, scale: float = 1.0) -> np.ndarray:
    """Noise with spikes of several sizes, a flat stretch (std 0: any rise is anomalous) and a missing point."""
    rng = np.random.default_rng(seed)
    values = 10 + rng.normal(0, 1, HOURS)
    values[[20, 33, 34, 50]] += [30, 8, 25, 5]
    values[60:68] = 7.0
    values[68] = 7.5
    values[42] = math.nan  # no document: the next windows' thresholds are not full
    return values * scale


def sample_series() -> dict[Key, np.ndarray]:
    return {
        ("cpu", 90.0): series_values(1),
        ("cpu", 99.0): series_values(2),
        ("mem", 90.0): series_values(3),
        ("mem", 99.0): series_values(4, scale=3.0),
    }


def window_ends() -> pd.DatetimeIndex:
    return pd.date_range(START, periods=HOURS, freq="h", tz="UTC")


def index_series(client: EsClient, index: str, values: dict[Key, np.ndarray], job: str = "default") -> None:
    """One surprise document per metric and hour (a percentile left out where its value is NaN)."""
    es_client.create_index(client, index, {"mappings": surprise_mapping(PERCENTILES)})
    docs = []
    for metric in sorted({m for m, _ in values}):
        for h in range(HOURS):
            end = START + timedelta(hours=h)
            doc = {
                "job": job,
                "metric": metric,
                "window_end": end.isoformat(),
                "series_count": 10,
                "top_series": [{"series": f"q{h % 7}", "surprise": 1.5 * h}],
            }
            for (m, p), series in values.items():
                if m == metric and not math.isnan(series[h]):
                    doc[percentile_field(p)] = float(series[h])
            docs.append({"_source": doc})
    es_bulk.bulk_index(client, index, docs)


def flagged_by_python(values: dict[Key, np.ndarray], settings: ThresholdSettings) -> dict[datetime, set[Key]]:
    """For each window end, the (metric, percentile) series the Python threshold stage flags there."""
    flagged: dict[datetime, set[Key]] = {t.to_pydatetime(): set() for t in window_ends()}
    for key, raw in values.items():
        for point in threshold_points(pd.Series(raw, index=window_ends()), settings):
            if point.is_anomalous:
                flagged[point.window_end].add(key)
    return flagged


def flagged_in_payload(payload: dict[str, Any], t: datetime) -> set[Key]:
    """The (metric, percentile) points a watch's search answer flags at window end t."""
    return {
        (bucket["key"], p)
        for bucket in payload["aggregations"]["metrics"]["buckets"]
        for p in PERCENTILES
        for point in bucket[f"points_{percentile_field(p)}"]["buckets"]
        if point["key"] == int(t.timestamp() * 1000)
    }


def floor_series() -> dict[Key, np.ndarray]:
    """The sample series and one more, disk p90: quiet around 1, a bump to 15 that the moving threshold flags and
    the floor does not, then 16.3, above the floor. Left out of the history (the moving threshold's verdict), the
    bump would leave 16.3 above max(about 1.2, FLOOR) and flagged; kept in it (the combined threshold's verdict), it
    raises the next threshold to about 16.6 with window 4 and sigmas 2."""
    disk = 1 + np.random.default_rng(5).normal(0, 0.05, HOURS)
    disk[30:32] = [15.0, 16.3]
    return {**sample_series(), ("disk", 90.0): disk}


def threshold_section(window: int, sigmas: float, lookback: int, min_value: float, recovery: float) -> dict[str, Any]:
    """The `threshold` settings of the watch tests: levels one and two sigmas above `sigmas`."""
    return {
        "window": window,
        "lookback": lookback,
        "sigmas": sigmas,
        "min_value": min_value,
        "recovery": recovery,
        "levels": [sigmas, sigmas + 1, sigmas + 2],
    }


# With FLOOR: a recovery level the noise of the sample series (around 10) seldom reaches, which the tail after the
# net series' spike stays above.
RECOVERY = 12.0


def recovery_series() -> dict[Key, np.ndarray]:
    """The floor series and net p90: quiet around 1, a spike to 20 (above the floor) followed by 14, 13 and 12.5
    (below the floor, at or above RECOVERY: the event stays open), then quiet; later a spike to 20 followed by 11.9
    (below RECOVERY: the event ends with the spike)."""
    net = 1 + np.random.default_rng(6).normal(0, 0.05, HOURS)
    net[36:40] = [20.0, 14.0, 13.0, 12.5]
    net[55:57] = [20.0, 11.9]
    return {**floor_series(), ("net", 90.0): net}


def assert_recovery_matters(values: dict[Key, np.ndarray], settings: ThresholdSettings) -> None:
    """`settings.recovery` keeps at least the three points after net's first spike flagged, which the same settings
    without it leave unflagged, and not the point after its second spike."""
    held = flagged_by_python(values, settings)
    plain = flagged_by_python(values, dataclasses.replace(settings, recovery=0.0))
    added = {(key, t) for t in held for key in held[t] - plain[t]}
    assert {(("net", 90.0), START + timedelta(hours=h)) for h in (37, 38, 39)} <= added, added
    assert (("net", 90.0), START + timedelta(hours=56)) not in added


def assert_the_floor_matters(values: dict[Key, np.ndarray], settings: ThresholdSettings) -> None:
    """The floor of `settings` both removes points the moving threshold alone flags and keeps others, and, with a
    lookback longer than the window, also decides which points the history leaves out: a test with it checks the
    floor, not only the moving threshold."""
    floored = flagged_by_python(values, settings)
    plain = flagged_by_python(values, dataclasses.replace(settings, min_value=0.0))
    removed = sum(len(plain[t] - floored[t]) for t in plain)
    assert all(floored[t] <= plain[t] for t in plain)
    assert removed >= 2 and sum(map(len, floored.values())) >= 4, (removed, floored)
    if settings.lookback > settings.window:
        # the floor applied to the last comparison only, the history left as the moving threshold alone leaves it
        moving_only = dataclasses.replace(settings, min_value=0.0)
        last_only = {
            (key, point.window_end)
            for key, raw in values.items()
            for point in threshold_points(pd.Series(raw, index=window_ends()), moving_only)
            if point.is_anomalous and point.value is not None and point.value > settings.min_value
        }
        assert last_only - {(key, t) for t, keys in floored.items() for key in keys}, "the history rule is untested"
