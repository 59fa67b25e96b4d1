"""The surprise request: time ranges, mode and normalization choices, wide form and several series fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from atlas.queries import build_surprise_request, window_range
from atlas.settings import load_settings

T = datetime(2024, 1, 10, tzinfo=UTC)


def hours_aggs(body: dict[str, Any], key: str = "m0") -> dict[str, Any]:
    aggs: dict[str, Any] = body["aggs"][key]["aggs"]["series"]["aggs"]["hours"]["aggs"]
    return aggs


def test_window_ranges_for_max_and_last() -> None:
    """The warm-up (24 buckets) precedes the first bucket scored: the window's first in mode max, its last in mode
    last, which reads 25 buckets instead of 48."""
    for mode, score_from in (("max", datetime(2024, 1, 9, tzinfo=UTC)), ("last", datetime(2024, 1, 9, 23, tzinfo=UTC))):
        w = window_range(load_settings(None, {"surprise.mode": mode}).surprise, T)
        assert (w.fetch_start, w.start, w.end, w.score_from) == (
            score_from - timedelta(hours=24),
            datetime(2024, 1, 9, tzinfo=UTC),
            T,
            score_from,
        )


def test_default_request() -> None:
    request = build_surprise_request(load_settings(None, {}), ["cpu", "mem"], T)
    body = request.body
    assert request.metric_keys == {"cpu": "m0", "mem": "m1"}
    time_range, metrics = body["query"]["bool"]["filter"]
    assert time_range == {"range": {"@timestamp": {"gte": "2024-01-08T23:00:00Z", "lt": "2024-01-10T00:00:00Z"}}}
    assert metrics == {"terms": {"metric": ["cpu", "mem"]}}
    assert body["aggs"]["m1"]["filter"] == {"term": {"metric": "mem"}}
    histogram = body["aggs"]["m0"]["aggs"]["series"]["aggs"]["hours"]["date_histogram"]
    # every bucket from 2024-01-08T23:00Z to 2024-01-09T23:00Z, empty ones too, so that positions are fixed
    assert histogram["extended_bounds"] == {"min": 1704754800000, "max": 1704841200000}
    hours = hours_aggs(body)
    fn = hours["surprise"]["moving_fn"]
    assert (fn["window"], fn["shift"]) == (25, 1)  # 24 values before the bucket, then its own
    assert "sd" not in fn["script"]
    # mode last (the default) scores only the window's last bucket, the 25th, after its 24 buckets of warm-up
    assert hours["window_only"] == {"bucket_sort": {"from": 24, "size": 1}}
    assert body["aggs"]["m0"]["aggs"]["percentiles"]["percentiles_bucket"]["percents"] == [90.0, 99.0]
    assert "top" not in body["aggs"]["m0"]["aggs"]  # top series are asked for anomalies only
    assert "runtime_mappings" not in body  # clusters before 7.11 refuse the key
    assert body["aggs"]["m0"]["aggs"]["series"]["terms"] == {"field": "query", "size": 65536}


def test_the_trim_is_declared_after_every_other_pipeline() -> None:
    """Elasticsearch runs a bucket's pipeline aggregations in the order the body declares them: trimming first
    would leave the moving_fn one bucket to look back on."""
    for api_version in ((7, 10), (6, 8)):
        for normalization in ("none", "zscore"):
            settings = load_settings(None, {"surprise.normalization": normalization})
            body = build_surprise_request(settings, ["cpu"], T, api_version=api_version).body
            names = list(json.loads(json.dumps(body))["aggs"]["m0"]["aggs"]["series"]["aggs"]["hours"]["aggs"])
            pipelines = [n for n in names if n != "x"]
            assert pipelines[-1] == "window_only", (api_version, normalization, names)


def test_mode_max_keeps_the_window_buckets() -> None:
    body = build_surprise_request(load_settings(None, {"surprise.mode": "max"}), ["cpu"], T).body
    assert hours_aggs(body)["window_only"] == {"bucket_sort": {"from": 24, "size": 24}}


def test_zscore_divides_by_the_baseline_std() -> None:
    settings = load_settings(None, {"surprise.normalization": "zscore"})
    fused = hours_aggs(build_surprise_request(settings, ["cpu"], T).body)["surprise"]["moving_fn"]["script"]
    assert "Math.pow(values[i] - mean, 2)" in fused and fused.endswith("/ sd;")
    two_step = hours_aggs(build_surprise_request(settings, ["cpu"], T, api_version=(6, 8)).body)
    assert two_step["baseline_std"]["moving_fn"]["window"] == 24
    script = two_step["surprise"]["bucket_script"]
    assert script["buckets_path"] == {"x": "x", "b": "baseline", "sd": "baseline_std"}
    assert script["script"].endswith("/ sd;")


def test_a_scale_window_gives_the_std_its_own_moving_fn_and_warm_up() -> None:
    """scale_window 288 on 5-minute buckets: the baseline stays the median of 24 buckets, the std takes its own
    moving_fn of 288 (the two-step form, also where moving_fn has a shift), and the warm-up covers 288 buckets."""
    overrides = {"surprise.interval": "5m", "surprise.step": "5m", "surprise.window": "1h"}
    overrides["surprise.scale_window"] = 288
    for normalization, formula in (("zscore", "/ sd;"), ("gaussian", "Math.log(sd)")):
        settings = load_settings(None, {**overrides, "surprise.normalization": normalization})
        for api_version in ((7, 10), (6, 8)):
            request = build_surprise_request(settings, ["cpu"], T, api_version=api_version)
            hours = hours_aggs(request.body)
            assert hours["baseline"]["moving_fn"]["window"] == 24
            assert hours["baseline_std"]["moving_fn"]["window"] == 288
            assert formula in hours["surprise"]["bucket_script"]["script"]
            # mode last: the warm-up's 288 buckets before the last one (24 h 5 min), not the hour's 12 buckets too
            assert request.window.fetch_start == T - 289 * timedelta(minutes=5)
            time_range = request.body["query"]["bool"]["filter"][0]["range"]["@timestamp"]
            assert time_range["gte"] == "2024-01-08T23:55:00Z"
            assert hours["window_only"] == {"bucket_sort": {"from": 288, "size": 1}}
    max_mode = load_settings(None, {**overrides, "surprise.normalization": "zscore", "surprise.mode": "max"})
    assert window_range(max_mode.surprise, T).fetch_start == T - timedelta(hours=1) - 288 * timedelta(minutes=5)


def test_a_scale_window_equal_to_the_baseline_window_keeps_the_fused_request() -> None:
    base = {"surprise.normalization": "gaussian"}
    same = build_surprise_request(load_settings(None, {**base, "surprise.scale_window": 24}), ["cpu"], T).body
    assert same == build_surprise_request(load_settings(None, base), ["cpu"], T).body
    assert sorted(hours_aggs(same)) == ["surprise", "window_only", "x"]


def test_a_scale_window_shorter_than_the_baseline_keeps_the_baseline_warm_up() -> None:
    settings = load_settings(None, {"surprise.normalization": "zscore", "surprise.scale_window": 6})
    hours = hours_aggs(build_surprise_request(settings, ["cpu"], T).body)
    assert (hours["baseline"]["moving_fn"]["window"], hours["baseline_std"]["moving_fn"]["window"]) == (24, 6)
    assert window_range(settings.surprise, T).fetch_start == datetime(2024, 1, 8, 23, tzinfo=UTC)


def test_wide_form_and_two_series_fields() -> None:
    overrides = {"source.value_fields": {"cpu": "system.cpu.pct"}, "source.series_fields": ["host", "disk"]}
    body = build_surprise_request(load_settings(None, overrides), ["cpu"], T).body
    assert body["aggs"]["m0"]["filter"] == {
        "bool": {
            "filter": [
                {"exists": {"field": "system.cpu.pct"}},
                {"exists": {"field": "host"}},
                {"exists": {"field": "disk"}},
            ]
        }
    }
    assert hours_aggs(body)["x"] == {"avg": {"field": "system.cpu.pct"}}
    assert len(body["query"]["bool"]["filter"]) == 1  # no metric terms filter in wide form
    terms = body["aggs"]["m0"]["aggs"]["series"]["terms"]
    assert terms["script"] == {"source": "doc['host'].value + '|' + doc['disk'].value", "lang": "painless"}
