"""The surprise request: time ranges, mode and normalization choices, wide form and several series fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from atlas.queries import build_surprise_request, window_range
from atlas.settings import load_settings

T = datetime(2024, 1, 10, tzinfo=UTC)


def hours_aggs(body: dict[str, Any], key: str = "m0") -> dict[str, Any]:
    aggs: dict[str, Any] = body["aggs"][key]["aggs"]["series"]["aggs"]["hours"]["aggs"]
    return aggs


def test_window_ranges_for_max_and_last() -> None:
    for mode, score_from in (("max", datetime(2024, 1, 9, tzinfo=UTC)), ("last", datetime(2024, 1, 9, 23, tzinfo=UTC))):
        w = window_range(load_settings(None, {"surprise.mode": mode}).surprise, T)
        assert (w.fetch_start, w.start, w.end, w.score_from) == (
            datetime(2024, 1, 8, tzinfo=UTC),
            datetime(2024, 1, 9, tzinfo=UTC),
            T,
            score_from,
        )


def test_default_request() -> None:
    request = build_surprise_request(load_settings(None, {}), ["cpu", "mem"], T)
    body = request.body
    assert request.metric_keys == {"cpu": "m0", "mem": "m1"}
    time_range, metrics = body["query"]["bool"]["filter"]
    assert time_range == {"range": {"@timestamp": {"gte": "2024-01-08T00:00:00Z", "lt": "2024-01-10T00:00:00Z"}}}
    assert metrics == {"terms": {"metric": ["cpu", "mem"]}}
    assert body["aggs"]["m1"]["filter"] == {"term": {"metric": "mem"}}
    hours = hours_aggs(body)
    assert hours["baseline"]["moving_fn"]["window"] == 24
    # mode last (the default) scores only the window's last bucket, 2024-01-09T23:00Z
    assert hours["surprise"]["bucket_script"]["script"]["params"] == {"score_from": 1704841200000}
    assert "params.sd" not in hours["surprise"]["bucket_script"]["script"]["source"]
    assert body["aggs"]["m0"]["aggs"]["percentiles"]["percentiles_bucket"]["percents"] == [90.0, 99.0]
    assert body["aggs"]["m0"]["aggs"]["top"]["aggs"]["trim"]["bucket_sort"]["size"] == 5
    assert "runtime_mappings" not in body  # clusters before 7.11 refuse the key
    assert body["aggs"]["m0"]["aggs"]["series"]["terms"] == {"field": "query", "size": 65536}


def test_zscore_divides_by_the_baseline_std() -> None:
    body = build_surprise_request(load_settings(None, {"surprise.normalization": "zscore"}), ["cpu"], T).body
    script = hours_aggs(body)["surprise"]["bucket_script"]
    assert script["buckets_path"]["sd"] == "baseline_std"
    assert script["script"]["source"].endswith("/ params.sd;")


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
    for tree in ("series", "top"):
        terms = body["aggs"]["m0"]["aggs"][tree]["terms"]
        assert terms["script"] == {"source": "doc['host'].value + '|' + doc['disk'].value", "lang": "painless"}
