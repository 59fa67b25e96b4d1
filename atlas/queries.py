"""Settings in, Elasticsearch request bodies (dicts) out: every request atlas sends is built here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from atlas.clock import format_duration, format_instant
from atlas.settings import Settings, SourceSettings, SurpriseSettings
from atlas.templating import render_json

MAX_METRICS = 10_000
# Series per metric one window request asks for; more are reported as an error, never silently dropped.
MAX_SERIES = 65_536
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SERIES_KEY_SEPARATOR = "|"  # joins the values of several series fields into one series key
GAUSSIAN_LOG_NORM = 0.9189385332046727  # ln(2 pi) / 2 as a literal, the double Python's 0.5 * log(2 pi) gives

# Painless has no Arrays.sort for double[]: an insertion sort of the n values before the last into v.
_SORTED_PREVIOUS = (
    "double[] v = new double[n]; for (int i = 0; i < n; ++i) { double y = values[i]; int j = i - 1;"
    " while (j >= 0 && v[j] > y) { v[j + 1] = v[j]; j--; } v[j + 1] = y; }"
)
_MEDIAN = "(n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0)"
# The two-step form (6.x, whose moving_fn has no shift): moving_fn scripts over the values before a bucket.
_BASELINE_SCRIPTS = {
    "mean": "MovingFunctions.unweightedAvg(values)",
    "median": f"int n = values.length; if (n == 0) {{ return Double.NaN; }} {_SORTED_PREVIOUS} return {_MEDIAN};",
}
_STD_SCRIPT = "MovingFunctions.stdDev(values, MovingFunctions.unweightedAvg(values))"
# s(q, t) from x, the baseline b and the baseline's std sd. A zero baseline or std gives Infinity or NaN, which every
# later pipeline aggregation treats as a gap.
_SURPRISE_FORMULAS = {
    "none": "return Math.abs(x - b);",
    "relative": "return Math.abs(x - b) / Math.abs(b);",
    "zscore": "return Math.abs(x - b) / sd;",
    # -ln of the Gaussian density of x under the baseline and std (DADS's p(x)): 0.5 z^2 + ln(sd) + ln(2 pi) / 2.
    "gaussian": f"double z = (x - b) / sd; return 0.5 * z * z + Math.log(sd) + {GAUSSIAN_LOG_NORM!r};",
}
_NEEDS_STD = {"zscore", "gaussian"}
# The fused form (7.4 on): one moving_fn with shift 1 sees the bucket's own value last, after up to baseline_window
# values before it. Its sums and order are those of MovingFunctions.unweightedAvg and stdDev, so both forms agree.
_FUSED_BASELINES = {
    "mean": "double b = mean;",
    "median": f"{_SORTED_PREVIOUS} double b = {_MEDIAN};",
}
_FUSED_MEAN = "double sum = 0; for (int i = 0; i < n; ++i) { sum += values[i]; } double mean = sum / n;"
_FUSED_STD = (
    "double sq = 0; for (int i = 0; i < n; ++i) { sq += Math.pow(values[i] - mean, 2); } double sd = Math.sqrt(sq / n);"
)
SURPRISE_FILTER_PATH = ",".join(
    f"aggregations.*.{path}" for path in ("percentiles.values", "scored.count", "series.sum_other_doc_count")
)
COMBINED_FILTER_PATH = SURPRISE_FILTER_PATH + ",aggregations.*.top.buckets.key,aggregations.*.top.buckets.window.value"


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
    """The time ranges of the window ending at `window_end` (UTC): mode `last` scores only its last bucket. The
    fetch starts warm_up_buckets before the first bucket scored: in mode `last` the rest of the window is not read."""
    end = window_end.astimezone(UTC)
    start = end - surprise.window
    score_from = start if surprise.mode == "max" else end - surprise.interval
    return WindowRange(score_from - surprise.warm_up_buckets * surprise.interval, start, end, score_from)


def build_surprise_request(
    settings: Settings,
    metrics: Sequence[str],
    window_end: datetime,
    *,
    fused: bool = True,
    series_caps: Mapping[str, int] | None = None,
) -> SurpriseRequest:
    """The pipeline aggregation computing every metric's percentile surprise for the window ending at window_end
    (UTC). `fused`: s(q, t) in one moving_fn (Elasticsearch 7.4 on), else in the two steps 6.x can run.
    `series_caps`: the most series asked of each metric (a metric with more reports sum_other_doc_count)."""
    source, surprise = settings.source, settings.surprise
    window = window_range(surprise, window_end)
    keys = {metric: f"m{i}" for i, metric in enumerate(metrics)}
    metric_aggs = {
        keys[metric]: render_json(
            "surprise_metric.json.j2",
            metric_filter=_metric_filter(source, metric),
            series_terms={**_series_terms(source), "size": (series_caps or {}).get(metric, MAX_SERIES)},
            hours=_window_hours(settings, metric, window, fused),
            percents=[float(p) for p in surprise.percentiles],
        )
        for metric in metrics
    }
    time_range = {
        "range": {source.time_field: {"gte": format_instant(window.fetch_start), "lt": format_instant(window.end)}}
    }
    query = {"bool": {"filter": [time_range, *_source_filters(source, metrics)]}}
    body = render_json("surprise.json.j2", query=query, metric_aggs=metric_aggs)
    return SurpriseRequest(body=body, metric_keys=keys, window=window)


def _window_hours(settings: Settings, metric: str, window: WindowRange, fused: bool) -> dict[str, Any]:
    """One series' buckets over the window and its warm-up, empty ones too (extended_bounds), so that the buckets
    the window scores are known by position: `window_only` (bucket_sort) keeps just those, after s(q, t) is computed
    on all of them. Pipeline aggregations run in the order they are declared and the body's keys are sorted when
    rendered, so its name must sort after "surprise"."""
    interval_ms = settings.surprise.interval // timedelta(milliseconds=1)
    first_key = _epoch_ms(window.fetch_start) // interval_ms * interval_ms
    last_key = (_epoch_ms(window.end) - 1) // interval_ms * interval_ms
    skipped = -(-(_epoch_ms(window.score_from) - first_key) // interval_ms)
    kept = (last_key - first_key) // interval_ms + 1 - skipped
    histogram = {
        **_histogram(settings),
        "extended_bounds": {"min": first_key, "max": last_key},
    }
    trim = {"bucket_sort": {"from": skipped, "size": kept}}
    return {"date_histogram": histogram, "aggs": {**_surprise_aggs(settings, metric, fused), "window_only": trim}}


def _histogram(settings: Settings) -> dict[str, Any]:
    return {
        "field": settings.source.time_field,
        "fixed_interval": format_duration(settings.surprise.interval),
        "min_doc_count": 0,
    }


def _surprise_aggs(settings: Settings, metric: str, fused: bool) -> dict[str, Any]:
    """The aggregations of one series' bucket: x(q, t) and the surprise s(q, t) against the values of the (at most)
    baseline_window non-empty buckets before it, and for zscore and gaussian the population std of the (at most)
    std_window ones before it; `fused`: one moving_fn whose window ends with the bucket itself. A std window other
    than the baseline's takes the two-step form, whose std has its own moving_fn window, on every version."""
    source, s = settings.source, settings.surprise
    x = {"avg": {"field": source.value_fields.get(metric, source.value_field)}}
    std = s.normalization in _NEEDS_STD
    formula = _SURPRISE_FORMULAS[s.normalization]
    if fused and not (std and s.std_window != s.baseline_window):
        mean = _FUSED_MEAN if s.baseline == "mean" or std else ""
        script = " ".join(
            part
            for part in (
                "int n = values.length - 1; if (n < 1) { return Double.NaN; } double x = values[n];",
                mean,
                _FUSED_BASELINES[s.baseline],
                _FUSED_STD if std else "",
                formula,
            )
            if part
        )
        fn = {"buckets_path": "x", "window": s.baseline_window + 1, "shift": 1, "script": script}
        return {"x": x, "surprise": {"moving_fn": fn}}
    aggs: dict[str, Any] = {
        "x": x,
        "baseline": {
            "moving_fn": {"buckets_path": "x", "window": s.baseline_window, "script": _BASELINE_SCRIPTS[s.baseline]}
        },
    }
    paths = {"x": "x", "b": "baseline"}
    if std:
        aggs["baseline_std"] = {"moving_fn": {"buckets_path": "x", "window": s.std_window, "script": _STD_SCRIPT}}
        paths["sd"] = "baseline_std"
    declared = " ".join(f"double {name} = params.{name};" for name in paths)
    aggs["surprise"] = {"bucket_script": {"buckets_path": paths, "script": f"{declared} {formula}"}}
    return aggs


def _epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


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
SCAN_FILTER_PATH = ",".join(
    f"aggregations.series.buckets.{path}" for path in ("key", "hours.buckets.x.value", "hours.buckets.surprise.value")
)
SERIES_KEYS_FILTER_PATH = "aggregations.keys.after_key,aggregations.keys.buckets.key.key"


@dataclass(frozen=True)
class ScanRequest:
    """One metric's one-scan request over some of its series: each series' histogram has `positions` buckets from
    `first_bucket` (UTC) on, each with x(q, t) and s(q, t); the last is the bucket starting at the last window end."""

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
    settings: Settings, metric: str, window_end: datetime, keys: Sequence[str], *, fused: bool = True
) -> SurpriseRequest:
    """The per-window request of one metric restricted to the series `keys`, answering each series' window surprise
    S(q, T) (filter_path) instead of the percentiles, which the caller computes over every subset."""
    request = build_surprise_request(settings, [metric], window_end, fused=fused)
    body = dict(request.body)
    agg = dict(body["aggs"]["m0"])
    agg["filter"] = {"bool": {"filter": [agg["filter"], *_subset_filters(settings.source, keys)]}}
    aggs = dict(agg["aggs"])
    aggs["series"] = {**aggs["series"], "terms": _subset_terms(settings.source, keys)}
    body["aggs"] = {"m0": {**agg, "aggs": aggs}}
    return SurpriseRequest(body, request.metric_keys, request.window, SERIES_WINDOW_FILTER_PATH)


def build_scan_request(
    settings: Settings,
    metric: str,
    first_end: datetime,
    last_end: datetime,
    keys: Sequence[str],
    *,
    fused: bool = True,
) -> ScanRequest:
    """The one-scan request of one metric's series `keys` for every window ending in [first_end, last_end] (UTC):
    the per-window request's x(q, t) and s(q, t) (_surprise_aggs) at every bucket of the whole range, empty ones too,
    so that a bucket's position tells its time. What windows make of them is computed by atlas/scan.py."""
    surprise = settings.surprise
    fetch_start = window_range(surprise, first_end).fetch_start
    interval_ms = surprise.interval // timedelta(milliseconds=1)
    start_ms, end_ms = _epoch_ms(fetch_start), _epoch_ms(last_end)
    histogram = {**_histogram(settings), "extended_bounds": {"min": start_ms, "max": end_ms}}
    hours = {"date_histogram": histogram, "aggs": _surprise_aggs(settings, metric, fused)}
    query = _range_query(settings.source, metric, fetch_start, last_end, keys)
    terms = _subset_terms(settings.source, keys)
    body = render_json("scan_metric.json.j2", query=query, series_terms=terms, hours=hours)
    return ScanRequest(body, fetch_start, (end_ms - start_ms) // interval_ms + 1)


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
    """How many series each metric has in the last bucket of the windows ending from `first_end` to `last_end` (UTC)
    (cardinality: exact to 40,000, within a few percent above), to size requests before sending them. Only the last
    buckets, which costs a small part of a request: the requests it sizes cap their series, so a series that is
    not there now but was in the warm-up costs a request in parts, never a node's heap."""
    source = settings.source
    span = {"gte": format_instant(first_end - settings.surprise.interval), "lt": format_instant(last_end)}
    query = {"bool": {"filter": [{"range": {source.time_field: span}}, *_source_filters(source, metrics)]}}
    count = {"cardinality": {**_key_source(source), "precision_threshold": 40_000}}
    aggs = {f"m{i}": {"filter": _metric_filter(source, m), "aggs": {"n": count}} for i, m in enumerate(metrics)}
    return {"size": 0, "track_total_hits": False, "query": query, "aggs": aggs}


def combined_metric_name(field: str) -> str:
    """The name results carry for the combined score of `field`'s values over every metric, e.g. `node:all`."""
    return f"{field}:all"


def build_combined_request(
    settings: Settings, metrics: Sequence[str], window_end: datetime, *, fused: bool = True
) -> SurpriseRequest:
    """DADS's combined score for the window ending at `window_end` (UTC): per value v of surprise.combine_by, the
    sum over `metrics` (in their order) of each metric's window surprise of v's documents, where every metric has
    one; then the percentiles and top values of those sums, answered in the per-metric request's shape."""
    field = settings.surprise.combine_by
    if field is None:
        raise ValueError("surprise.combine_by is not set")
    per_metric = build_surprise_request(settings, metrics, window_end, fused=fused)
    series_aggs: dict[str, Any] = {}
    for i, metric in enumerate(metrics):
        tree = per_metric.body["aggs"][f"m{i}"]["aggs"]["series"]["aggs"]
        series_aggs[f"m{i}"] = {"filter": _metric_filter(settings.source, metric), "aggs": tree}
    paths = {f"m{i}": f"m{i}>window" for i in range(len(metrics))}
    series_aggs["window"] = {
        "bucket_script": {"buckets_path": paths, "script": " + ".join(f"params.m{i}" for i in range(len(metrics)))}
    }
    terms = {"field": field, "size": MAX_SERIES}
    # "top": the same tree again, trimmed to the most surprising values (trimming "series" would hide values from
    # the percentiles, which run after it).
    order = [{"window": {"order": "desc"}}, {"_key": {"order": "asc"}}]
    trim = {"bucket_sort": {"sort": order, "size": settings.surprise.top_series}}
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
    return SurpriseRequest(body, {combined_metric_name(field): "c"}, per_metric.window, COMBINED_FILTER_PATH)
