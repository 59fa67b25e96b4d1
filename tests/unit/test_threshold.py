"""Threshold stage: moving mean + sigmas * population std of the previous points, severities, events."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from atlas.events import anomaly_events, event_start, format_event_id
from atlas.records import Anomaly, SeriesSurprise, Severity
from atlas.settings import ThresholdSettings
from atlas.threshold import select_anomalies, threshold_points

T0 = datetime(2024, 5, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
# The blog's plain rule (lookback = window): the numbers below were worked out by hand for it.
DEFAULTS = ThresholdSettings(window=6, lookback=6, sigmas=3.0, levels=(3.0, 4.0, 5.0))
NAN = float("nan")
# mean 1, population std 1: every point is 1 away from the mean, so variance = 6 * 1 / 6 = 1.
# (The sample std would be sqrt(6 / 5) = 1.0954, threshold 1 + 3 * 1.0954 = 4.286.)
ZIGZAG = [0.0, 2.0, 0.0, 2.0, 0.0, 2.0]


def hourly(values: list[float], start: datetime = T0) -> pd.Series[float]:
    index = pd.date_range(start, periods=len(values), freq="h")
    return pd.Series(values, index=index, dtype=float)


def at(hours: int) -> datetime:
    return T0 + hours * HOUR


@dataclass(frozen=True)
class LastPointCase:
    id: str
    values: list[float]
    is_anomalous: bool
    severity: Severity | None
    mean: float
    std: float
    sigmas_above_mean: float | None
    settings: ThresholdSettings = DEFAULTS


LAST_POINT_CASES = [
    # threshold = 1 + 3 * 1 = 4; levels 3/4/5 sigmas are the values 4 / 5 / 6.
    LastPointCase("exactly-at-threshold-is-not-anomalous", [*ZIGZAG, 4.0], False, None, 1.0, 1.0, 3.0),
    LastPointCase("above-3-sigmas-is-low", [*ZIGZAG, 4.5], True, "low", 1.0, 1.0, 3.5),
    LastPointCase("exactly-4-sigmas-is-still-low", [*ZIGZAG, 5.0], True, "low", 1.0, 1.0, 4.0),
    LastPointCase("above-4-sigmas-is-medium", [*ZIGZAG, 5.5], True, "medium", 1.0, 1.0, 4.5),
    LastPointCase("exactly-5-sigmas-is-still-medium", [*ZIGZAG, 6.0], True, "medium", 1.0, 1.0, 5.0),
    LastPointCase("above-5-sigmas-is-high", [*ZIGZAG, 6.5], True, "high", 1.0, 1.0, 5.5),
    # mean 11, std 1 (every point 1 away): 20 is (20 - 11) / 1 = 9 sigmas.
    LastPointCase("flat-then-spike-is-high", [10, 12, 10, 12, 10, 12, 20], True, "high", 11.0, 1.0, 9.0),
    LastPointCase("dip-is-never-anomalous", [*ZIGZAG, -100.0], False, None, 1.0, 1.0, -101.0),
    # 4.2 is 3.2 population sigmas (anomalous) but only 2.92 sample sigmas (4.2 < 4.286).
    LastPointCase("population-not-sample-std", [*ZIGZAG, 4.2], True, "low", 1.0, 1.0, 3.2),
    # mean 2, std sqrt(((-1)^2 + 0 + 1^2) * 2 / 6) = sqrt(2/3) = 0.8165; threshold 2 + 3 * 0.8165 = 4.449.
    LastPointCase("population-std-hand-computed", [1, 2, 3, 1, 2, 3, 4.5], True, "low", 2.0, math.sqrt(2 / 3), 3.0619),
    # A flat history has std 0: equal is not above, any rise is anomalous, "high", sigmas infinite -> None.
    LastPointCase("std-0-equal-is-not-anomalous", [5.0] * 7, False, None, 5.0, 0.0, None),
    LastPointCase("std-0-any-rise-is-high", [5.0] * 6 + [5.001], True, "high", 5.0, 0.0, None),
    LastPointCase("std-0-fall-is-not-anomalous", [5.0] * 6 + [4.0], False, None, 5.0, 0.0, None),
    # sigmas 2 is below the first level (3): 3.5 is 2.5 sigmas, anomalous, and still "low".
    LastPointCase(
        "sigmas-below-first-level-is-low",
        [*ZIGZAG, 3.5],
        True,
        "low",
        1.0,
        1.0,
        2.5,
        dataclasses.replace(DEFAULTS, sigmas=2.0),
    ),
]


@pytest.mark.parametrize("case", LAST_POINT_CASES, ids=[c.id for c in LAST_POINT_CASES])
def test_last_point(case: LastPointCase) -> None:
    last = threshold_points(hourly(case.values), case.settings)[-1]
    assert last.is_anomalous is case.is_anomalous
    assert last.severity == case.severity
    assert last.mean == pytest.approx(case.mean, rel=1e-12)
    assert last.std == pytest.approx(case.std, rel=1e-12, abs=1e-15)
    assert last.threshold == pytest.approx(case.mean + case.settings.sigmas * case.std, rel=1e-12)
    if case.sigmas_above_mean is None:
        assert last.sigmas_above_mean is None
    else:
        assert last.sigmas_above_mean == pytest.approx(case.sigmas_above_mean, rel=1e-4)


def test_points_without_a_full_window_are_never_anomalous() -> None:
    # 7 points, window 6: only the 7th has 6 points before it; the huge 6th point has only 5.
    points = threshold_points(hourly([*ZIGZAG[:5], 1000.0, 1.0]), DEFAULTS)
    assert [p.mean is None for p in points] == [True] * 6 + [False]
    assert not any(p.is_anomalous for p in points[:6])
    assert threshold_points(hourly([*ZIGZAG[:5], 1000.0]), DEFAULTS) == points[:6]


def test_empty_series_has_no_points() -> None:
    assert threshold_points(hourly([]), DEFAULTS) == []
    assert select_anomalies("m", 90, hourly([]), DEFAULTS, HOUR) == []


def test_a_missing_point_blocks_every_window_that_holds_it() -> None:
    # idx 6 is missing (its own window idx 0..5 is full, so charts still get its threshold); idx 7..12 have it
    # in their window (no full window); idx 14's window is idx 8..13.
    # Skipping the gap instead would flag idx 7: window [2, 0, 2, 0, 2] has mean 1.2, std 0.98.
    values = [*ZIGZAG, NAN, 100.0, *ZIGZAG, 100.0]
    points = threshold_points(hourly(values), DEFAULTS)
    assert points[6].value is None and not points[6].is_anomalous
    assert [k for k, p in enumerate(points) if p.mean is not None] == [6, 13, 14]
    assert [k for k, p in enumerate(points) if p.is_anomalous] == [14]


def test_two_separate_runs_are_two_events() -> None:
    # idx 6 (100 vs mean 1, std 1) and idx 14 (window idx 8..13 = ZIGZAG) are anomalous; idx 7 = 1 is not
    # (its window [2, 0, 2, 0, 2, 100] has mean 17.67, std 36.8).
    values = [*ZIGZAG, 100.0, 1.0, *ZIGZAG, 100.0]
    anomalies = select_anomalies("latency", 90, hourly(values), DEFAULTS, HOUR)
    assert [a.window_end for a in anomalies] == [at(6), at(14)]
    assert [a.event_id for a in anomalies] == ["latency|p90|2024-05-01T06:00:00Z", "latency|p90|2024-05-01T14:00:00Z"]
    events = anomaly_events(anomalies, HOUR)
    assert [(e.start, e.end, e.points, e.event_id) for e in events] == [
        (at(6), at(6), 1, anomalies[0].event_id),
        (at(14), at(14), 1, anomalies[1].event_id),
    ]


def test_min_duration_drops_short_events_with_their_points() -> None:
    # Run idx 6..7 (2 points = 2h): idx 7's window [2, 0, 2, 0, 2, 100] has mean 106/6 = 17.67 and
    # std sqrt(8139.33 / 6) = 36.83, threshold 128.2 < 1000. Run idx 15 (1 point = 1h) is dropped by 2h.
    values = [*ZIGZAG, 100.0, 1000.0, 1.0, *ZIGZAG, 100.0]
    kept_all = select_anomalies("latency", 90, hourly(values), DEFAULTS, HOUR)
    assert [a.window_end for a in kept_all] == [at(6), at(7), at(15)]
    two_hours = dataclasses.replace(DEFAULTS, min_duration=2 * HOUR)
    anomalies = select_anomalies("latency", 90, hourly(values), two_hours, HOUR)
    assert [a.window_end for a in anomalies] == [at(6), at(7)]
    assert {a.event_id for a in anomalies} == {"latency|p90|2024-05-01T06:00:00Z"}
    (event,) = anomaly_events(anomalies, HOUR)
    assert (event.start, event.end, event.points, event.peak_value, event.severity) == (at(6), at(7), 2, 1000.0, "high")


def test_anomaly_carries_its_numbers_and_top_series() -> None:
    tops = (SeriesSurprise("q1", 9.5), SeriesSurprise("q2", 7.0))
    anomalies = select_anomalies("cpu", 99.0, hourly([*ZIGZAG, 5.5]), DEFAULTS, HOUR, {at(6): tops, at(5): ()})
    assert anomalies == [
        Anomaly(
            metric="cpu",
            percentile=99.0,
            window_end=at(6),
            value=5.5,
            mean=1.0,
            std=1.0,
            threshold=4.0,
            sigmas_above_mean=4.5,
            severity="medium",
            event_id="cpu|p99|2024-05-01T06:00:00Z",
            top_series=tops,
        )
    ]
    assert type(anomalies[0].window_end) is datetime and type(anomalies[0].value) is float


def test_std_0_anomaly_is_json_safe() -> None:
    (anomaly,) = select_anomalies("cpu", 90, hourly([5.0] * 6 + [6.0]), DEFAULTS, HOUR)
    assert (anomaly.sigmas_above_mean, anomaly.severity, anomaly.std) == (None, "high", 0.0)


def test_percentiles_are_thresholded_independently() -> None:
    # The caller passes each percentile's series on its own: p99 spikes, p90 stays on its zigzag.
    p90 = hourly([*ZIGZAG, 2.0])
    p99 = hourly([*ZIGZAG, 9.0])
    assert select_anomalies("latency", 90, p90, DEFAULTS, HOUR) == []
    (anomaly,) = select_anomalies("latency", 99, p99, DEFAULTS, HOUR)
    assert (anomaly.percentile, anomaly.event_id) == (99, "latency|p99|2024-05-01T06:00:00Z")
    both = [*select_anomalies("latency", 90, p99, DEFAULTS, HOUR), anomaly]
    assert [e.event_id for e in anomaly_events(both, HOUR)] == [
        "latency|p90|2024-05-01T06:00:00Z",
        "latency|p99|2024-05-01T06:00:00Z",
    ]


def _anomaly(hours: int, severity: Severity, value: float, percentile: float = 90.0) -> Anomaly:
    return Anomaly("m", percentile, at(hours), value, 1.0, 1.0, 4.0, value - 1.0, severity, "ignored")


def test_anomaly_events_takes_the_highest_severity_and_peak() -> None:
    anomalies = [
        _anomaly(3, "medium", 5.5),  # out of order on purpose
        _anomaly(1, "low", 4.5),
        _anomaly(2, "high", 9.0),
        _anomaly(5, "low", 4.1),  # idx 4 missing: a new event
        _anomaly(2, "low", 4.2, percentile=99.0),  # another percentile: its own event
    ]
    events = anomaly_events(anomalies, HOUR)
    assert [(e.percentile, e.start, e.end, e.points, e.peak_value, e.severity) for e in events] == [
        (90.0, at(1), at(3), 3, 9.0, "high"),
        (99.0, at(2), at(2), 1, 4.2, "low"),
        (90.0, at(5), at(5), 1, 4.1, "low"),
    ]
    assert events[0].event_id == "m|p90|2024-05-01T01:00:00Z"


def test_event_id_format() -> None:
    assert format_event_id("cpu", 99.9, at(0)) == "cpu|p99.9|2024-05-01T00:00:00Z"
    assert format_event_id("cpu", 90.0, datetime(2024, 5, 1, 2, tzinfo=UTC)) == "cpu|p90|2024-05-01T02:00:00Z"


def test_event_start_reads_back_the_start_an_event_id_was_built_from() -> None:
    assert event_start(format_event_id("a|b", 99.9, at(3))) == at(3)  # a metric name may hold the separator


def test_rejects_series_that_are_not_regular_utc() -> None:
    with pytest.raises(ValueError, match="tz-aware"):
        threshold_points(pd.Series([1.0, 2.0], index=pd.date_range("2024-05-01", periods=2, freq="h")), DEFAULTS)
    holey = pd.Series([1.0, 2.0, 3.0], index=pd.DatetimeIndex([at(0), at(1), at(3)]))
    with pytest.raises(ValueError, match="regularly spaced"):
        threshold_points(holey, DEFAULTS)
    with pytest.raises(ValueError, match="regularly spaced by 0:30:00"):
        select_anomalies("m", 90, hourly([1.0, 2.0]), DEFAULTS, timedelta(minutes=30))


def test_matches_pandas_rolling_population_std() -> None:
    rng = np.random.default_rng(7)
    raw = rng.normal(20.0, 3.0, 300)
    raw[[50, 51, 120, 200]] = [60.0, 80.0, 45.0, 70.0]  # spikes
    raw[[90, 250]] = np.nan  # missing points
    values = hourly([float(v) for v in raw])
    previous = values.shift(1).rolling(DEFAULTS.window)
    expected_mean, expected_std = previous.mean(), previous.std(ddof=0)
    points = threshold_points(values, DEFAULTS)
    for point, mean, std, value in zip(points, expected_mean, expected_std, values, strict=True):
        assert (point.mean is None) == math.isnan(mean)
        if point.mean is None:
            assert not point.is_anomalous
            continue
        assert point.mean == pytest.approx(mean, rel=1e-9)
        assert point.std == pytest.approx(std, rel=1e-9)
        assert point.is_anomalous == (not math.isnan(value) and value > mean + 3 * std)
    assert sum(p.is_anomalous for p in points) >= 4


UNFLAGGED = ThresholdSettings(window=4, lookback=12, sigmas=3.0, levels=(3.0, 4.0, 5.0))
NOISE = [10.0, 11.0, 10.0, 9.0, 10.0, 11.0, 10.0, 9.0]


def test_flagged_points_stay_out_of_the_history_so_a_second_rise_is_seen() -> None:
    values = [*NOISE, 40.0, 42.0, 10.0, 35.0]  # two rises 1 h apart; the plain rule's history holds the first
    flagged = [p.is_anomalous for p in threshold_points(hourly(values), UNFLAGGED)]
    plain = [p.is_anomalous for p in threshold_points(hourly(values), dataclasses.replace(UNFLAGGED, lookback=4))]
    assert flagged[8:] == [True, True, False, True]
    assert plain[8:] == [True, False, False, False]
    last = threshold_points(hourly(values), UNFLAGGED)[-1]
    history = [*NOISE[-3:], 10.0]  # the unflagged points before the last: the two rises left out
    assert (last.mean, last.std) == pytest.approx((np.mean(history), np.std(history)))


def test_a_level_that_stays_is_flagged_for_lookback_minus_window_plus_one_points() -> None:
    values = [*NOISE, *[40.0 + (i % 2) for i in range(12)]]  # a new normal from hour 8 on
    flagged = [p.is_anomalous for p in threshold_points(hourly(values), UNFLAGGED)]
    # From hour 17 the 12 points before it start with fewer than 4 old ones: the new level is the history.
    assert flagged[8:] == [True] * 9 + [False] * 3


@dataclass(frozen=True)
class FloorCase:
    id: str
    values: list[float]
    min_value: float
    is_anomalous: bool
    threshold: float
    severity: Severity | None


# ZIGZAG: mean 1, std 1, so the moving threshold is 4 and levels 3/4/5 sigmas are 4 / 5 / 6 (DEFAULTS).
# The point is anomalous above max(4, min_value); its level is the highest L with value > max(1 + L, min_value).
FLOOR_CASES = [
    FloorCase("floor-0-is-the-moving-threshold", [*ZIGZAG, 4.5], 0.0, True, 4.0, "low"),
    FloorCase("floor-below-the-moving-threshold-changes-nothing", [*ZIGZAG, 4.5], 3.0, True, 4.0, "low"),
    FloorCase("floor-equal-to-the-moving-threshold", [*ZIGZAG, 4.5], 4.0, True, 4.0, "low"),
    FloorCase("floor-above-the-moving-threshold-blocks-a-medium-bump", [*ZIGZAG, 5.5], 6.0, False, 6.0, None),
    FloorCase("exactly-at-the-floor-is-not-anomalous", [*ZIGZAG, 6.0], 6.0, False, 6.0, None),
    FloorCase("above-the-floor-is-anomalous", [*ZIGZAG, 6.2], 6.0, True, 6.0, "high"),
    # 5.2 is above the floor 4.8 and the 4-sigma line 5, not the 5-sigma line 6: medium, as without the floor.
    FloorCase("floor-between-levels-keeps-the-moving-level", [*ZIGZAG, 5.2], 4.8, True, 4.8, "medium"),
    # A flat history (std 0): without a floor any rise is "high"; with one, only a rise above it, still "high".
    FloorCase("std-0-floor-0-any-rise-is-high", [5.0] * 6 + [5.001], 0.0, True, 5.0, "high"),
    FloorCase("std-0-rise-below-the-floor-is-not-anomalous", [5.0] * 6 + [5.5], 6.0, False, 6.0, None),
    FloorCase("std-0-rise-above-the-floor-is-high", [5.0] * 6 + [6.5], 6.0, True, 6.0, "high"),
    # Gaussian surprise (-ln of a density) can be negative: floor 0 is no floor, the threshold stays -1.
    FloorCase("floor-0-keeps-a-negative-threshold", [-5.0, -3.0] * 3 + [-0.5], 0.0, True, -1.0, "low"),
    FloorCase("a-positive-floor-lifts-a-negative-threshold", [-5.0, -3.0] * 3 + [-0.5], 0.5, False, 0.5, None),
]


@pytest.mark.parametrize("case", FLOOR_CASES, ids=[c.id for c in FLOOR_CASES])
def test_last_point_with_a_floor(case: FloorCase) -> None:
    settings = dataclasses.replace(DEFAULTS, min_value=case.min_value)
    last = threshold_points(hourly(case.values), settings)[-1]
    plain = threshold_points(hourly(case.values), DEFAULTS)[-1]
    assert (last.is_anomalous, last.severity) == (case.is_anomalous, case.severity)
    assert last.threshold == pytest.approx(case.threshold, rel=1e-12)
    # The floor changes the threshold only: mean, std and distance in sigmas are the moving ones.
    assert (last.mean, last.std, last.sigmas_above_mean) == (plain.mean, plain.std, plain.sigmas_above_mean)
    if case.min_value == 0:
        assert last == plain


def test_floor_0_is_the_old_rule_on_a_long_noisy_series() -> None:
    rng = np.random.default_rng(11)
    raw = rng.normal(0.0, 1.0, 400)
    raw[[40, 41, 150, 300]] += [9.0, 12.0, 7.0, 20.0]
    raw[[99, 250]] = np.nan
    values = hourly([float(v) for v in raw])
    for settings in (DEFAULTS, UNFLAGGED):
        assert threshold_points(values, dataclasses.replace(settings, min_value=0.0)) == threshold_points(
            values, settings
        )


def test_the_history_leaves_out_only_points_above_the_combined_threshold() -> None:
    # 13 is above the moving threshold of 10, 11, 10, 9 (10 + 3 * 0.707 = 12.1) but below the floor 20: with the
    # floor it is not flagged and so stays in the next point's history.
    values = [*NOISE, 13.0, 10.0]
    plain = threshold_points(hourly(values), UNFLAGGED)
    floored = threshold_points(hourly(values), dataclasses.replace(UNFLAGGED, min_value=20.0))
    assert (plain[8].is_anomalous, floored[8].is_anomalous) == (True, False)
    assert plain[9].mean == pytest.approx(np.mean([10.0, 11.0, 10.0, 9.0]))
    assert floored[9].mean == pytest.approx(np.mean([11.0, 10.0, 9.0, 13.0]))
    assert floored[9].threshold == 20.0


def test_an_anomaly_stores_the_combined_threshold() -> None:
    floored = dataclasses.replace(DEFAULTS, min_value=6.0)
    (anomaly,) = select_anomalies("cpu", 90, hourly([*ZIGZAG, 6.5, 5.5]), floored, HOUR)
    assert (anomaly.window_end, anomaly.threshold, anomaly.mean, anomaly.std) == (at(6), 6.0, 1.0, 1.0)
    assert (anomaly.sigmas_above_mean, anomaly.severity) == (5.5, "high")


# Recovery (hysteresis): ZIGZAG's threshold is 4; with recovery 2.5 a point after an anomalous one stays anomalous
# down to 2.5, while a point that would only continue an event does not start one.
RECOVERING = dataclasses.replace(DEFAULTS, lookback=12, recovery=2.5)


def flags(values: list[float], settings: ThresholdSettings) -> list[bool]:
    return [p.is_anomalous for p in threshold_points(hourly(values), settings)]


def test_recovery_keeps_an_event_open_while_the_value_stays_up() -> None:
    values = [*ZIGZAG, 9.0, 3.0, 2.5, 2.4, 3.0]
    # 9 crosses; 3 and 2.5 continue (at or above 2.5) though below the threshold; 2.4 ends it; 3 alone starts nothing.
    assert flags(values, RECOVERING)[6:] == [True, True, True, False, False]
    assert flags(values, dataclasses.replace(RECOVERING, recovery=0.0))[6:] == [True, False, False, False, False]
    anomalies = select_anomalies("cpu", 90.0, hourly(values), RECOVERING, HOUR)
    assert [a.window_end for a in anomalies] == [at(6), at(7), at(8)]
    assert {a.event_id for a in anomalies} == {format_event_id("cpu", 90.0, at(6))}
    # a continued point is below every level's threshold: its severity is the lowest
    assert [a.severity for a in anomalies[1:]] == ["low", "low"]


def test_recovered_points_stay_out_of_the_history() -> None:
    # Left in the history, 3.0 and 3.0 would raise the mean and std that judge 5.0; left out, the history of 5.0 is
    # 2, 0, 2, 0, 2, 1 (mean 7/6) and 5.0 is above its threshold.
    values = [*ZIGZAG, 9.0, 3.0, 3.0, 1.0, 5.0]
    points = threshold_points(hourly(values), RECOVERING)
    assert [p.is_anomalous for p in points[6:]] == [True, True, True, False, True]
    assert points[10].mean == pytest.approx(7 / 6)
    plain = threshold_points(hourly(values), dataclasses.replace(RECOVERING, recovery=0.0))
    assert plain[10].mean == pytest.approx((2 + 0 + 2 + 3 + 3 + 1) / 6)


def test_a_missing_point_does_not_end_an_open_event() -> None:
    # The rule runs over present points (as the watch's moving_fn sees them): the point after the gap continues.
    values = [*ZIGZAG, 9.0, NAN, 3.0, 2.0]
    assert flags(values, dataclasses.replace(RECOVERING, lookback=12))[6:] == [True, False, True, False]


def test_recovery_at_or_above_the_threshold_changes_nothing() -> None:
    rng = np.random.default_rng(11)
    values = list(10 + rng.normal(0, 1, 200) + np.where(rng.random(200) < 0.05, 8.0, 0.0))
    high = dataclasses.replace(DEFAULTS, lookback=30, recovery=1_000.0)
    assert flags(values, high) == flags(values, dataclasses.replace(high, recovery=0.0))
