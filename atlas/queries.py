"""Settings in, Elasticsearch request bodies (dicts) out: every request atlas sends is built here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from atlas.clock import format_duration, format_instant
from atlas.settings import Settings, SourceSettings, SurpriseSettings
from atlas.templating import render_json

MAX_METRICS = 10_000
# Series per metric one window request asks for; more are reported as an error, never silently dropped.
MAX_SERIES = 65_536
SERIES_KEY_SEPARATOR = "|"  # joins the values of several series fields into one series key

_SURPRISE_SCRIPTS = {
    "none": "if (params.first < params.score_from) { return null; } return Math.abs(params.x - params.baseline);",
    # Division by a zero std gives Infinity or NaN, which every later pipeline aggregation treats as a gap.
    "zscore": "if (params.first < params.score_from) { return null; }"
    " return Math.abs(params.x - params.baseline) / params.sd;",
}
_SURPRISE_PATHS = {
    "none": {"x": "x", "baseline": "baseline", "first": "first"},
    "zscore": {"x": "x", "baseline": "baseline", "sd": "baseline_std", "first": "first"},
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
