"""Settings in, Elasticsearch request bodies (dicts) out: every request atlas sends is built here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from atlas.clock import format_duration, format_instant
from atlas.settings import Settings, SourceSettings, SurpriseSettings
from atlas.templating import render_json

MAX_METRICS = 10_000
# Series per metric one window request asks for; more are reported as an error, never silently dropped.
MAX_SERIES = 65_536
SERIES_KEY_SEPARATOR = "|"  # joins the values of several series fields into one series key
GAUSSIAN_LOG_NORM = 0.9189385332046727  # ln(2 pi) / 2 as a literal, the double Python's 0.5 * log(2 pi) gives

_BASELINE_SCRIPTS = {
    "mean": "MovingFunctions.unweightedAvg(values)",
    # Painless has no Arrays.sort for double[]: an insertion sort of the (at most baseline_window) values.
    "median": "int n = values.length; if (n == 0) { return Double.NaN; } double[] v = new double[n];"
    " for (int i = 0; i < n; ++i) { double x = values[i]; int j = i - 1;"
    " while (j >= 0 && v[j] > x) { v[j + 1] = v[j]; j--; } v[j + 1] = x; }"
    " return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;",
}
_SURPRISE_SCRIPTS = {
    "none": "if (params.first < params.score_from) { return null; } return Math.abs(params.x - params.baseline);",
    # A zero baseline gives Infinity or NaN, a gap like a zero std below.
    "relative": "if (params.first < params.score_from) { return null; }"
    " return Math.abs(params.x - params.baseline) / Math.abs(params.baseline);",
    # Division by a zero std gives Infinity or NaN, which every later pipeline aggregation treats as a gap.
    "zscore": "if (params.first < params.score_from) { return null; }"
    " return Math.abs(params.x - params.baseline) / params.sd;",
    # -ln of the Gaussian density of x under the baseline and std (DADS's p(x)): 0.5 z^2 + ln(sd) + ln(2 pi) / 2.
    "gaussian": "if (params.first < params.score_from) { return null; }"
    " double z = (params.x - params.baseline) / params.sd;"
    f" return 0.5 * z * z + Math.log(params.sd) + {GAUSSIAN_LOG_NORM!r};",
}
_SURPRISE_PATHS = {
    "none": {"x": "x", "baseline": "baseline", "first": "first"},
    "relative": {"x": "x", "baseline": "baseline", "first": "first"},
    "zscore": {"x": "x", "baseline": "baseline", "sd": "baseline_std", "first": "first"},
    "gaussian": {"x": "x", "baseline": "baseline", "sd": "baseline_std", "first": "first"},
}
SURPRISE_FILTER_PATH = ",".join(
    f"aggregations.*.{path}"
    for path in (
        "percentiles.values",
        "scored.count",
        "series.sum_other_doc_count",
        "top.buckets.key",
        "top.buckets.window.value",
    )
)


@dataclass(frozen=True)
class WindowRange:
    """The window [start, end) scored, the warm-up range before it that feeds baselines, and where scoring begins."""

    fetch_start: datetime
    start: datetime
    end: datetime
    score_from: datetime


@dataclass(frozen=True)
class SurpriseRequest:
    """One window's request: the body, the aggregation key of each metric, and the response's filter_path."""

    body: dict[str, Any]
    metric_keys: dict[str, str]
    window: WindowRange
    filter_path: str = SURPRISE_FILTER_PATH


def source_query(source: SourceSettings) -> dict[str, Any]:
    """The query selecting the source documents: the configured extra filter, or everything."""
    if not source.filter:
        return {"match_all": {}}
    return {"bool": {"filter": [dict(source.filter)]}}


def build_source_summary(source: SourceSettings) -> dict[str, Any]:
    """Documents, time range and series count per metric of a long-form source index."""
    return render_json(
        "source_summary.json.j2",
        time_field=source.time_field,
        group_field=source.metric_field,
        series_field=source.series_fields[0],
        max_groups=MAX_METRICS,
        query=source_query(source),
    )


def window_range(surprise: SurpriseSettings, window_end: datetime) -> WindowRange:
    """The time ranges of the window ending at `window_end` (UTC): mode `last` scores only its last bucket."""
    end = window_end.astimezone(UTC)
    start = end - surprise.window
    score_from = start if surprise.mode == "max" else end - surprise.interval
    return WindowRange(start - surprise.baseline_window * surprise.interval, start, end, score_from)


def build_surprise_request(settings: Settings, metrics: Sequence[str], window_end: datetime) -> SurpriseRequest:
    """The pipeline aggregation computing every metric's percentile surprise for the window ending at window_end."""
    source, surprise = settings.source, settings.surprise
    window = window_range(surprise, window_end)
    keys = {metric: f"m{i}" for i, metric in enumerate(metrics)}
    metric_aggs = {
        keys[metric]: render_json(
            "surprise_metric.json.j2",
            metric_filter=_metric_filter(source, metric),
            series_terms=_series_terms(source),
            time_field=source.time_field,
            value_field=source.value_fields.get(metric, source.value_field),
            interval=format_duration(surprise.interval),
            baseline_window=surprise.baseline_window,
            baseline_script=_BASELINE_SCRIPTS[surprise.baseline],
            surprise_paths=_SURPRISE_PATHS[surprise.normalization],
            surprise_script=_SURPRISE_SCRIPTS[surprise.normalization],
            score_from_ms=int(window.score_from.timestamp() * 1000),
            percents=[float(p) for p in surprise.percentiles],
            top_series=surprise.top_series,
        )
        for metric in metrics
    }
    time_range = {
        "range": {source.time_field: {"gte": format_instant(window.fetch_start), "lt": format_instant(window.end)}}
    }
    query = {"bool": {"filter": [time_range, *_source_filters(source, metrics)]}}
    body = render_json("surprise.json.j2", query=query, metric_aggs=metric_aggs)
    return SurpriseRequest(body=body, metric_keys=keys, window=window)


def _metric_filter(source: SourceSettings, metric: str) -> dict[str, Any]:
    """The documents of one metric; with several series fields, only those that have every one of them."""
    if source.value_fields:
        selected: dict[str, Any] = {"exists": {"field": source.value_fields[metric]}}
    else:
        selected = {"term": {source.metric_field: metric}}
    if len(source.series_fields) == 1:
        return selected
    return {"bool": {"filter": [selected, *({"exists": {"field": f}} for f in source.series_fields)]}}


def _source_filters(source: SourceSettings, metrics: Sequence[str]) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = [dict(source.filter)] if source.filter else []
    if not source.value_fields:
        filters.append({"terms": {source.metric_field: list(metrics)}})
    return filters


def _series_terms(source: SourceSettings) -> dict[str, Any]:
    """The `terms` source of the series key: the one series field, or a painless script joining several with `|`
    (a script, not a runtime field, so that clusters before 7.11 run it too)."""
    if len(source.series_fields) == 1:
        return {"field": source.series_fields[0], "size": MAX_SERIES}
    parts = f" + '{SERIES_KEY_SEPARATOR}' + ".join(f"doc[{_painless_string(f)}].value" for f in source.series_fields)
    return {"script": {"source": parts, "lang": "painless"}, "size": MAX_SERIES}


def _painless_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --- Series partitions and the one-scan backfill (issue 11): new builders on the per-window request's parts. ---

SERIES_WINDOW_FILTER_PATH = "aggregations.*.series.buckets.key,aggregations.*.series.buckets.window.value"
SCAN_FILTER_PATH = "aggregations.series.buckets.key,aggregations.series.buckets.hours.buckets.scan_window.value"
SERIES_KEYS_FILTER_PATH = "aggregations.keys.after_key,aggregations.keys.buckets.key.key"


@dataclass(frozen=True)
class ScanRequest:
    """One metric's one-scan request over some of its series: each series' histogram has `positions` buckets from
    `first_bucket` (UTC) on, and the bucket starting at a window end T carries the window surprise S(q, T)."""

    body: dict[str, Any]
    first_bucket: datetime
    positions: int
    filter_path: str = SCAN_FILTER_PATH


def build_series_keys_request(
    settings: Settings, metric: str, start: datetime, end: datetime, size: int, after: str | None
) -> dict[str, Any]:
    """One page (`size` keys after `after`, ascending) of the series keys of `metric` with documents in [start, end)."""
    composite: dict[str, Any] = {"size": size, "sources": [{"key": {"terms": _key_source(settings.source)}}]}
    if after is not None:
        composite["after"] = {"key": after}
    query = _range_query(settings.source, metric, start, end, ())
    return render_json("scan_series_keys.json.j2", query=query, composite=composite)


def build_subset_window_request(
    settings: Settings, metric: str, window_end: datetime, keys: Sequence[str]
) -> SurpriseRequest:
    """The per-window request of one metric restricted to the series `keys`, answering each series' window surprise
    S(q, T) (filter_path) instead of the percentiles, which the caller computes over every subset."""
    request = build_surprise_request(settings, [metric], window_end)
    body = dict(request.body)
    agg = dict(body["aggs"]["m0"])
    agg["filter"] = {"bool": {"filter": [agg["filter"], *_subset_filters(settings.source, keys)]}}
    aggs = dict(agg["aggs"])
    for name in ("series", "top"):
        aggs[name] = {**aggs[name], "terms": _subset_terms(settings.source, keys)}
    body["aggs"] = {"m0": {**agg, "aggs": aggs}}
    return SurpriseRequest(body, request.metric_keys, request.window, SERIES_WINDOW_FILTER_PATH)


def build_scan_request(
    settings: Settings, metric: str, first_end: datetime, last_end: datetime, keys: Sequence[str]
) -> ScanRequest:
    """The one-scan request of one metric's series `keys` for every window ending in [first_end, last_end] (UTC):
    the per-window request's per-series buckets (same baseline and surprise aggregations) over the whole range,
    plus the pipeline aggregations of scan_series.json.j2 that give each bucket its window's surprise."""
    surprise = settings.surprise
    first = build_surprise_request(settings, [metric], first_end)
    hours = dict(first.body["aggs"]["m0"]["aggs"]["series"]["aggs"]["hours"])
    interval_ms = surprise.interval // timedelta(milliseconds=1)
    start_ms = int(first.window.fetch_start.timestamp() * 1000)
    end_ms = int(last_end.timestamp() * 1000)
    histogram = {**hours["date_histogram"], "extended_bounds": {"min": start_ms, "max": end_ms}}
    window_buckets = surprise.window // surprise.interval
    added = render_json(
        "scan_series.json.j2",
        baseline_window=surprise.baseline_window,
        interval_ms=interval_ms,
        window_buckets=window_buckets if surprise.mode == "max" else 1,
        slack=0 if surprise.mode == "max" else window_buckets - 1,
    )
    hours = {**hours, "date_histogram": histogram, "aggs": {**hours["aggs"], **added}}
    query = _range_query(settings.source, metric, first.window.fetch_start, last_end, keys)
    terms = _subset_terms(settings.source, keys)
    body = render_json("scan_metric.json.j2", query=query, series_terms=terms, hours=hours)
    return ScanRequest(body, first.window.fetch_start, (end_ms - start_ms) // interval_ms + 1)


def _range_query(
    source: SourceSettings, metric: str, start: datetime, end: datetime, keys: Sequence[str]
) -> dict[str, Any]:
    time_range = {"range": {source.time_field: {"gte": format_instant(start), "lt": format_instant(end)}}}
    filters = [time_range, *_source_filters(source, [metric]), _metric_filter(source, metric)]
    return {"bool": {"filter": [*filters, *_subset_filters(source, keys)]}}


def _key_source(source: SourceSettings) -> dict[str, Any]:
    return {k: v for k, v in _series_terms(source).items() if k != "size"}


def _subset_terms(source: SourceSettings, keys: Sequence[str]) -> dict[str, Any]:
    """The series `terms` of exactly the series `keys` (all of them, so the percentiles see every one)."""
    return {**_series_terms(source), "size": max(1, len(keys)), "include": list(keys)}


def _subset_filters(source: SourceSettings, keys: Sequence[str]) -> list[dict[str, Any]]:
    """With one series field, a `terms` query too, so that only the subset's documents are read."""
    if not keys or len(source.series_fields) != 1:
        return []
    return [{"terms": {source.series_fields[0]: list(keys)}}]


def build_series_count_request(
    settings: Settings, metrics: Sequence[str], first_end: datetime, last_end: datetime
) -> dict[str, Any]:
    """How many series each metric has in the windows ending from `first_end` to `last_end` (UTC) and their warm-up
    (cardinality: exact to 40,000, within a few percent above), to size requests before sending them."""
    source = settings.source
    span = {
        "gte": format_instant(window_range(settings.surprise, first_end).fetch_start),
        "lt": format_instant(last_end),
    }
    query = {"bool": {"filter": [{"range": {source.time_field: span}}, *_source_filters(source, metrics)]}}
    count = {"cardinality": {**_key_source(source), "precision_threshold": 40_000}}
    aggs = {f"m{i}": {"filter": _metric_filter(source, m), "aggs": {"n": count}} for i, m in enumerate(metrics)}
    return {"size": 0, "track_total_hits": False, "query": query, "aggs": aggs}


def combined_metric_name(field: str) -> str:
    """The name results carry for the combined score of `field`'s values over every metric, e.g. `node:all`."""
    return f"{field}:all"


def build_combined_request(settings: Settings, metrics: Sequence[str], window_end: datetime) -> SurpriseRequest:
    """DADS's combined score for the window ending at `window_end` (UTC): per value v of surprise.combine_by, the
    sum over `metrics` (in their order) of each metric's window surprise of v's documents, where every metric has
    one; then the percentiles and top values of those sums, answered in the per-metric request's shape."""
    field = settings.surprise.combine_by
    if field is None:
        raise ValueError("surprise.combine_by is not set")
    per_metric = build_surprise_request(settings, metrics, window_end)
    series_aggs: dict[str, Any] = {}
    for i, metric in enumerate(metrics):
        tree = per_metric.body["aggs"][f"m{i}"]["aggs"]["series"]["aggs"]
        series_aggs[f"m{i}"] = {"filter": _metric_filter(settings.source, metric), "aggs": tree}
    paths = {f"m{i}": f"m{i}>window" for i in range(len(metrics))}
    series_aggs["window"] = {
        "bucket_script": {"buckets_path": paths, "script": " + ".join(f"params.m{i}" for i in range(len(metrics)))}
    }
    terms = {"field": field, "size": MAX_SERIES}
    trim = per_metric.body["aggs"]["m0"]["aggs"]["top"]["aggs"]["trim"]
    summary = {k: per_metric.body["aggs"]["m0"]["aggs"][k] for k in ("percentiles", "scored")}
    combined = {
        "filter": {"match_all": {}},
        "aggs": {
            "series": {"terms": terms, "aggs": series_aggs},
            "top": {"terms": terms, "aggs": {**series_aggs, "trim": trim}},
            **summary,
        },
    }
    body = {**per_metric.body, "aggs": {"c": combined}}
    return SurpriseRequest(body, {combined_metric_name(field): "c"}, per_metric.window)
