"""One window's result from Elasticsearch against reference.py's, to 1e-9: the comparison every parity test makes."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

import pandas as pd
import pytest

from atlas.es_client import EsClient
from atlas.records import WindowSurprise
from atlas.reference import ReferenceWindow, reference_window
from atlas.settings import Settings
from atlas.surprise import compute_top_series, compute_window_surprise


def with_top_series(client: EsClient, settings: Settings, result: WindowSurprise) -> WindowSurprise:
    """The result with the top series an anomaly of its window is given (compute_top_series): the per-window request
    answers the percentiles only."""
    assert not result.top_series, "the per-window request does not ask for top series"
    top = compute_top_series(client, settings, result.metric, result.window_end)
    return dataclasses.replace(result, top_series=top)


def assert_matches_reference(actual: WindowSurprise, expected: ReferenceWindow, where: object) -> None:
    """Series count, top series (order and surprise) and every percentile equal; a percentile the reference leaves
    out (a tail thinner than surprise.min_tail_series) is left out by Elasticsearch's side too."""
    assert actual.series_count == expected.result.series_count, where
    assert [s.series for s in actual.top_series] == [s.series for s in expected.result.top_series], where
    assert {s.series: s.surprise for s in actual.top_series} == pytest.approx(
        dict(expected.series_surprise), rel=1e-9, abs=1e-12
    ), where
    assert actual.percentiles.keys() == expected.result.percentiles.keys(), where
    for p, value in expected.result.percentiles.items():
        if value is None:
            assert actual.percentiles[p] is None, (where, p)
        else:
            assert actual.percentiles[p] == pytest.approx(value, rel=1e-9), (where, p)


def assert_windows_match_reference(
    client: EsClient, settings: Settings, frame: pd.DataFrame, ends: Sequence[datetime]
) -> int:
    """Every metric's result at every window end of `ends` (UTC), with its top series, against reference.py's from
    the same documents (`frame`: timestamp, metric, series, value); returns how many were compared."""
    metrics = sorted(frame["metric"].unique())
    compared = 0
    for end in ends:
        got = {r.metric: r for r in compute_window_surprise(client, settings, metrics, end)}
        want = reference_window(frame, settings.surprise, end)
        assert sorted(got) == sorted(want), end
        for metric, expected in want.items():
            assert_matches_reference(with_top_series(client, settings, got[metric]), expected, (metric, end))
            compared += 1
    return compared
