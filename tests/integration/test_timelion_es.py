"""The generated Timelion charts, evaluated with Kibana's semantics over the real surprise index, show bars at
exactly the points the Python threshold stage flags."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from elasticsearch import Elasticsearch

from atlas import es_client
from atlas.outputs.timelion import build_expression
from atlas.settings import load_settings
from atlas.threshold import threshold_points
from tests.surprise_series import (
    FLOOR,
    HOURS,
    START,
    assert_the_floor_matters,
    flagged_by_python,
    floor_series,
    index_series,
    sample_series,
    window_ends,
)
from tests.timelion_eval import Evaluator, parse

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("window", "sigmas", "min_value"),
    [(6, 3.0, 0.0), (4, 2.0, 0.0), (10, 1.5, 0.0), (6, 3.0, FLOOR), (4, 2.0, FLOOR)],
    ids=["w6-s3", "w4-s2", "w10-s1.5", "w6-s3-floor", "w4-s2-floor"],
)
def test_bars_are_the_python_stage_anomalies(
    es: Elasticsearch, es_url: str, index_name: str, window: int, sigmas: float, min_value: float
) -> None:
    overrides = {
        "results.prefix": index_name,
        "surprise.percentiles": [90.0, 99.0],
        "threshold.window": window,
        "threshold.lookback": window,  # Timelion draws the plain rule exactly; the sequential one only its closest
        "threshold.sigmas": sigmas,
        "threshold.min_value": min_value,
        "threshold.levels": [sigmas, sigmas + 1, sigmas + 2],
    }
    settings = load_settings(None, overrides)
    values = floor_series() if min_value else sample_series()
    index_series(es_client.EsClient(es, es_url), f"{index_name}-surprise", values)
    expected = flagged_by_python(values, settings.threshold)
    if min_value:
        assert_the_floor_matters(values, settings.threshold)
    evaluator = Evaluator(es, START, START + timedelta(hours=HOURS), timedelta(hours=1))
    times = [t.to_pydatetime() for t in window_ends()]
    shown: dict[object, set[tuple[str, float]]] = {t: set() for t in times}
    for metric, p in values:
        series, threshold, bars = parse(build_expression(settings, metric, p))
        plotted = evaluator.evaluate(series)
        assert plotted == [None if v != v else float(v) for v in values[(metric, p)]]  # NaN (missing) is null
        python_points = threshold_points(pd.Series(values[(metric, p)], index=window_ends()), settings.threshold)
        drawn = evaluator.evaluate(threshold)
        for point, line in zip(python_points, drawn, strict=True):
            if point.threshold is not None:  # a full window: Timelion's line is the same (combined) threshold
                assert line == pytest.approx(point.threshold, rel=1e-12)
        for t, bar in zip(times, evaluator.evaluate(bars), strict=True):
            if bar is not None:
                shown[t].add((metric, p))
    assert shown == expected
    assert sum(map(len, expected.values())) >= 6
