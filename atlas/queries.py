"""Settings in, Elasticsearch requests out, and their answers read: every search atlas sends to the source index is a
template of queries/ rendered here with values only (field names, instants, bucket bounds, windows, percents), never
pieces of a request, and each request's answer is read beside its builder (the only code that knows the names of
its aggregations)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from atlas.clock import format_duration, format_instant
from atlas.errors import DataError
from atlas.es_server import DEFAULT_API_VERSION, ApiVersion, histogram_interval_key, moving_fn_takes_shift
from atlas.records import SeriesSurprise, WindowSurprise
from atlas.settings import Settings, SourceSettings, SurpriseSettings
from atlas.templating import render_json

MAX_METRICS = 10_000
# Series per metric one window request asks for; more are reported as an error, never silently dropped.
MAX_SERIES = 65_536
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SERIES_KEY_SEPARATOR = "|"  # joins the values of several series fields into one series key
SURPRISE_FILTER_PATH = ",".join(
    f"aggregations.*.{path}" for path in ("percentiles.values", "scored.count", "series.sum_other_doc_count")
)
COMBINED_FILTER_PATH = SURPRISE_FILTER_PATH + ",aggregations.*.top.buckets.key,aggregations.*.top.buckets.window.value"
SERIES_WINDOW_FILTER_PATH = "aggregations.*.series.buckets.key,aggregations.*.series.buckets.window.value"
SCAN_FILTER_PATH = ",".join(
    f"aggregations.series.buckets.{path}" for path in ("key", "hours.buckets.x.value", "hours.buckets.surprise.value")
)
SERIES_KEYS_FILTER_PATH = "aggregations.keys.after_key,aggregations.keys.buckets.key.key"


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


@dataclass(frozen=True)
class ScanRequest:
    """One metric's one-scan request over some of its series: each series' histogram has `positions` buckets from
    `first_bucket` (UTC) on, each with x(q, t) and s(q, t); the last is the bucket starting at the last window end."""

    body: dict[str, Any]
    first_bucket: datetime
    positions: int
    filter_path: str = SCAN_FILTER_PATH


def window_range(surprise: SurpriseSettings, window_end: datetime) -> WindowRange:
    """The time ranges of the window ending at `window_end` (UTC): mode `last` scores only its last bucket. The
    fetch starts warm_up_buckets before the first bucket scored: in mode `last` the rest of the window is not read."""
    end = window_end.astimezone(UTC)
    start = end - surprise.window
    score_from = start if surprise.mode == "max" else end - surprise.interval
    return WindowRange(score_from - surprise.warm_up_buckets * surprise.interval, start, end, score_from)


# --- The values the templates take (queries/parts.j2 names them). ---


def _src(source: SourceSettings) -> dict[str, Any]:
    return {
        "time_field": source.time_field,
        "metric_field": source.metric_field,
        "value_field": source.value_field,
        "value_fields": dict(source.value_fields),
        "series_fields": list(source.series_fields),
        "filter": dict(source.filter) if source.filter else None,
        "key_separator": SERIES_KEY_SEPARATOR,
    }


def _s(surprise: SurpriseSettings, api_version: ApiVersion) -> dict[str, Any]:
    """The surprise settings the templates read, in the form a cluster of `api_version` runs (es_server decides)."""
    return {
        "interval": format_duration(surprise.interval),
        "normalization": surprise.normalization,
        "baseline": surprise.baseline,
        "baseline_window": surprise.baseline_window,
        "std_window": surprise.std_window,
        "percents": [float(p) for p in surprise.percentiles],
        "top_series": surprise.top_series,
        "fused": moving_fn_takes_shift(api_version),
        "interval_key": histogram_interval_key(api_version),
    }


def _window_values(surprise: SurpriseSettings, window: WindowRange) -> dict[str, Any]:
    """One window's bounds: the histogram's first and last bucket keys (epoch ms: the warm-up's first bucket to the
    window's last) and the trim keeping, by position, the buckets the window scores."""
    interval_ms = surprise.interval // timedelta(milliseconds=1)
    first_key = _epoch_ms(window.fetch_start) // interval_ms * interval_ms
    last_key = (_epoch_ms(window.end) - 1) // interval_ms * interval_ms
    skipped = -(-(_epoch_ms(window.score_from) - first_key) // interval_ms)
    return {
        "fetch_start": format_instant(window.fetch_start),
        "end": format_instant(window.end),
        "first_key": first_key,
        "last_key": last_key,
        "trim_from": skipped,
        "trim_size": (last_key - first_key) // interval_ms + 1 - skipped,
    }


def _epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _metric_list(metrics: Sequence[str], sizes: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    return [{"key": f"m{i}", "name": m, "size": (sizes or {}).get(m, MAX_SERIES)} for i, m in enumerate(metrics)]


# --- The source: its metrics and its fields (source_summary, metric_names, source_any, source_metrics .json.j2). ---


def build_source_summary(source: SourceSettings) -> dict[str, Any]:
    """Documents, time range and series count per metric of a long-form source index."""
    return render_json("source_summary.json.j2", src=_src(source), max_groups=MAX_METRICS)


def build_metric_names_request(source: SourceSettings, within: tuple[datetime, datetime] | None) -> dict[str, Any]:
    """The metric names of a long-form source index; with `within` ([start, end), UTC), those with documents there."""
    gte, lt = (format_instant(within[0]), format_instant(within[1])) if within else (None, None)
    return render_json("metric_names.json.j2", src=_src(source), max_groups=MAX_METRICS, gte=gte, lt=lt)


def read_metric_names(response: Mapping[str, Any]) -> list[str]:
    """The metrics a source summary or a metric-names request found, in key order."""
    return [str(b["key"]) for b in response.get("aggregations", {}).get("groups", {}).get("buckets", [])]


def source_field_names(source: SourceSettings) -> list[str]:
    """The fields every source needs some document to have: time, series, and the metric and value fields."""
    fields = [source.time_field, *source.series_fields]
    return fields + (list(source.value_fields.values()) or [source.metric_field, source.value_field])


def build_any_document_request(source: SourceSettings, field: str | None) -> dict[str, Any]:
    """Whether some source document has `field` (any document when None); each shard stops at its first."""
    return render_json("source_any.json.j2", src=_src(source), field=field)


def read_any_document(response: Mapping[str, Any]) -> bool:
    return bool(response.get("hits", {}).get("total", {}).get("value", 0))


def build_source_metrics_request(source: SourceSettings, metrics: Sequence[str]) -> dict[str, Any]:
    """Whether some document of a long-form source has each of `metrics` (m0, m1, ...)."""
    return render_json("source_metrics.json.j2", src=_src(source), metrics=list(metrics))


def read_source_metrics(response: Mapping[str, Any], source: SourceSettings, metrics: Sequence[str]) -> None:
    """Refuse a configured metric that no document has (DataError): it would be watched in silence."""
    for i, metric in enumerate(metrics):
        if not response.get("aggregations", {}).get(f"m{i}", {}).get("doc_count"):
            raise DataError(f"source.metrics: no document of {source.index} has the metric {metric!r}")


# --- One window's surprise (surprise.json.j2, surprise_combined.json.j2). ---


def build_surprise_request(
    settings: Settings,
    metrics: Sequence[str],
    window_end: datetime,
    *,
    api_version: ApiVersion = DEFAULT_API_VERSION,
    series_caps: Mapping[str, int] | None = None,
) -> SurpriseRequest:
    """The pipeline aggregation computing every metric's percentile surprise for the window ending at window_end
    (UTC), in the form a cluster of `api_version` (Server.api_version) runs.
    `series_caps`: the most series asked of each metric (a metric with more reports sum_other_doc_count)."""
    window = window_range(settings.surprise, window_end)
    listed = _metric_list(metrics, series_caps)
    body = _render_window_request(settings, window, listed, api_version, subset=None)
    return SurpriseRequest(body, {m["name"]: m["key"] for m in listed}, window)


def left_series_out(response: Mapping[str, Any], request: SurpriseRequest) -> bool:
    """Whether a metric of a surprise response has more series than the request asked for (sum_other_doc_count)."""
    aggs = response.get("aggregations", {})
    return any(aggs.get(k, {}).get("series", {}).get("sum_other_doc_count", 0) for k in request.metric_keys.values())


def read_window_surprise(
    response: Mapping[str, Any], request: SurpriseRequest, surprise: SurpriseSettings
) -> list[WindowSurprise]:
    """The WindowSurprise of each metric in a (filter_path-trimmed) surprise response, in the request's order (one
    that left series out, left_series_out, must be computed in parts instead)."""
    aggs = response.get("aggregations", {})
    results = []
    for metric, key in request.metric_keys.items():
        agg = aggs.get(key, {})
        count = int(agg.get("scored", {}).get("count", 0))
        if count == 0:
            continue
        values = {float(p): v for p, v in agg.get("percentiles", {}).get("values", {}).items()}
        top = tuple(
            SeriesSurprise(series=str(b["key"]), surprise=float(b["window"]["value"]))
            for b in agg.get("top", {}).get("buckets", [])
            if b.get("window", {}).get("value") is not None
        )
        results.append(
            WindowSurprise(
                metric=metric,
                window_start=request.window.start,
                window_end=request.window.end,
                percentiles={
                    float(p): _as_float(values.get(float(p))) if surprise.reports_percentile(p, count) else None
                    for p in surprise.percentiles
                },
                series_count=count,
                top_series=top,
            )
        )
    return results


def _as_float(value: Any) -> float | None:
    return None if value is None else float(value)


def combined_metric_name(field: str) -> str:
    """The name results carry for the combined score of `field`'s values over every metric, e.g. `node:all`."""
    return f"{field}:all"


def build_combined_request(
    settings: Settings, metrics: Sequence[str], window_end: datetime, *, api_version: ApiVersion = DEFAULT_API_VERSION
) -> SurpriseRequest:
    """DADS's combined score for the window ending at `window_end` (UTC): per value v of surprise.combine_by, the
    sum over `metrics` (in their order) of each metric's window surprise of v's documents, where every metric has
    one; then the percentiles and top values of those sums, answered in the per-metric request's shape."""
    field = settings.surprise.combine_by
    if field is None:
        raise ValueError("surprise.combine_by is not set")
    window = window_range(settings.surprise, window_end)
    body = render_json(
        "surprise_combined.json.j2",
        src=_src(settings.source),
        s=_s(settings.surprise, api_version),
        w=_window_values(settings.surprise, window),
        metrics=_metric_list(metrics),
        combine_by=field,
        max_values=MAX_SERIES,
    )
    return SurpriseRequest(body, {combined_metric_name(field): "c"}, window, COMBINED_FILTER_PATH)


def combined_values_left_out(response: Mapping[str, Any]) -> bool:
    """Whether combine_by has more values in the window than the combined request asks for."""
    return bool(response.get("aggregations", {}).get("c", {}).get("series", {}).get("sum_other_doc_count", 0))


# --- Series partitions and the one-scan (scan_series_keys, series_count, surprise with subset, scan_metric). ---


def build_series_keys_request(
    settings: Settings, metric: str, start: datetime, end: datetime, size: int, after: str | None
) -> dict[str, Any]:
    """One page (`size` keys after `after`, ascending) of the series keys of `metric` with documents in [start, end)."""
    return render_json(
        "scan_series_keys.json.j2",
        src=_src(settings.source),
        metric=metric,
        start=format_instant(start),
        end=format_instant(end),
        size=size,
        after=after,
    )


def read_series_keys_page(response: Mapping[str, Any]) -> tuple[list[str], str | None]:
    """A page's series keys and the key to ask the next page after (None: this was the last page)."""
    page = response.get("aggregations", {}).get("keys", {})
    keys = [str(b["key"]["key"]) for b in page.get("buckets", [])]
    after_key = page.get("after_key")
    return keys, (str(after_key["key"]) if keys and after_key is not None else None)


def build_series_count_request(
    settings: Settings, metrics: Sequence[str], first_end: datetime, last_end: datetime
) -> dict[str, Any]:
    """How many series each metric has in the last bucket of the windows ending from `first_end` to `last_end` (UTC)
    (cardinality: exact to 40,000, within a few percent above), to size requests before sending them. Only the last
    buckets, which costs a small part of a request: the requests it sizes cap their series, so a series that is
    not there now but was in the warm-up costs a request in parts, never a node's heap."""
    return render_json(
        "series_count.json.j2",
        src=_src(settings.source),
        metrics=_metric_list(metrics),
        start=format_instant(first_end - settings.surprise.interval),
        end=format_instant(last_end),
    )


def read_series_counts(response: Mapping[str, Any], metrics: Sequence[str]) -> dict[str, int]:
    aggs = response.get("aggregations", {})
    return {m: int(aggs.get(f"m{i}", {}).get("n", {}).get("value", 0)) for i, m in enumerate(metrics)}


def build_subset_window_request(
    settings: Settings,
    metric: str,
    window_end: datetime,
    keys: Sequence[str],
    *,
    api_version: ApiVersion = DEFAULT_API_VERSION,
) -> SurpriseRequest:
    """The per-window request of one metric restricted to the series `keys`, answering each series' window surprise
    S(q, T) (filter_path) instead of the percentiles, which the caller computes over every subset."""
    window = window_range(settings.surprise, window_end)
    listed = _metric_list([metric], {metric: max(1, len(keys))})
    body = _render_window_request(settings, window, listed, api_version, subset=list(keys))
    return SurpriseRequest(body, {metric: "m0"}, window, SERIES_WINDOW_FILTER_PATH)


def _render_window_request(
    settings: Settings, window: WindowRange, listed: list[dict[str, Any]], api: ApiVersion, subset: list[str] | None
) -> dict[str, Any]:
    """queries/surprise.json.j2 for one window: every listed metric, or one metric's series `subset`."""
    return render_json(
        "surprise.json.j2",
        src=_src(settings.source),
        s=_s(settings.surprise, api),
        w=_window_values(settings.surprise, window),
        metrics=listed,
        subset=subset,
    )


def read_series_windows(response: Mapping[str, Any]) -> dict[str, float]:
    """Each series' window surprise S(q, T) in a subset window response, for the series that have one."""
    buckets = response.get("aggregations", {}).get("m0", {}).get("series", {}).get("buckets", [])
    windows = ((str(b["key"]), b.get("window", {}).get("value")) for b in buckets)
    return {key: float(value) for key, value in windows if value is not None}


def build_scan_request(
    settings: Settings,
    metric: str,
    first_end: datetime,
    last_end: datetime,
    keys: Sequence[str],
    *,
    api_version: ApiVersion = DEFAULT_API_VERSION,
) -> ScanRequest:
    """The one-scan request of one metric's series `keys` for every window ending in [first_end, last_end] (UTC):
    the per-window request's x(q, t) and s(q, t) at every bucket of the whole range, empty ones too, so that a
    bucket's position tells its time. What windows make of them is computed by atlas/surprise/scan.py."""
    surprise = settings.surprise
    fetch_start = window_range(surprise, first_end).fetch_start
    interval_ms = surprise.interval // timedelta(milliseconds=1)
    start_ms, end_ms = _epoch_ms(fetch_start), _epoch_ms(last_end)
    body = render_json(
        "scan_metric.json.j2",
        src=_src(settings.source),
        s=_s(surprise, api_version),
        metric=metric,
        keys=list(keys),
        fetch_start=format_instant(fetch_start),
        last_end=format_instant(last_end),
        first_key=start_ms,
        last_key=end_ms,
    )
    return ScanRequest(body, fetch_start, (end_ms - start_ms) // interval_ms + 1)


def read_scan(
    response: Mapping[str, Any], request: ScanRequest, metric: str
) -> dict[str, tuple[list[bool], list[float | None]]]:
    """Each series' buckets in a scan response: whether each has a value x, and its s(q, t) (None where none)."""
    found = {}
    for bucket in response.get("aggregations", {}).get("series", {}).get("buckets", []):
        hours = bucket.get("hours", {}).get("buckets", [])
        key = str(bucket["key"])
        if len(hours) != request.positions:
            raise AssertionError(f"scan of {metric}: series {key} has {len(hours)} buckets, not {request.positions}")
        present = [h.get("x", {}).get("value") is not None for h in hours]
        found[key] = (present, [h.get("surprise", {}).get("value") for h in hours])
    return found
