"""Result documents: surprise and anomaly records to and from their indices, with deterministic ids."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from atlas import es_bulk, es_client
from atlas.clock import floor_instant, format_instant, parse_instant
from atlas.es_client import EsClient
from atlas.indices import percentile_field, result_indices, truth_mapping
from atlas.records import Anomaly, SeriesSurprise, TruthInterval, WindowSurprise
from atlas.settings import Settings

_PAGE = 10_000


def surprise_id(job: str, metric: str, window_end: datetime) -> str:
    """The `_id` of the surprise document of (job, metric, window end)."""
    return f"{job}|{metric}|{format_instant(window_end)}"


def anomaly_id(job: str, anomaly: Anomaly) -> str:
    """The `_id` of the anomaly document of one point of one percentile series."""
    return f"{job}|{anomaly.metric}|p{anomaly.percentile:g}|{format_instant(anomaly.window_end)}"


def surprise_document(settings: Settings, result: WindowSurprise) -> dict[str, Any]:
    """The surprise document's source; missing percentiles are left out rather than stored as null."""
    doc: dict[str, Any] = {
        "job": settings.results.job,
        "metric": result.metric,
        "window_start": format_instant(result.window_start),
        "window_end": format_instant(result.window_end),
        "mode": settings.surprise.mode,
        "normalization": settings.surprise.normalization,
        "series_count": result.series_count,
        "top_series": _top_series_json(result.top_series),
    }
    for p, value in result.percentiles.items():
        if value is not None:
            doc[percentile_field(p)] = value
    return doc


def anomaly_document(job: str, anomaly: Anomaly) -> dict[str, Any]:
    """The anomaly document's source."""
    return {
        "job": job,
        "metric": anomaly.metric,
        "percentile": anomaly.percentile,
        "window_end": format_instant(anomaly.window_end),
        "event_id": anomaly.event_id,
        "value": anomaly.value,
        "mean": anomaly.mean,
        "std": anomaly.std,
        "threshold": anomaly.threshold,
        "sigmas_above_mean": anomaly.sigmas_above_mean,
        "severity": anomaly.severity,
        "score": anomaly.score,
        "top_series": _top_series_json(anomaly.top_series),
    }


def write_surprise(client: EsClient, settings: Settings, results: Iterable[WindowSurprise]) -> int:
    """Index surprise documents (rewriting any of the same window) and refresh; returns how many."""
    job = settings.results.job
    docs = (
        {"_id": surprise_id(job, r.metric, r.window_end), "_source": surprise_document(settings, r)} for r in results
    )
    return es_bulk.bulk_index(client, result_indices(settings.results).surprise, docs).indexed


def write_anomalies(client: EsClient, settings: Settings, anomalies: Iterable[Anomaly]) -> int:
    """Index anomaly documents (rewriting any of the same point) and refresh; returns how many."""
    job = settings.results.job
    docs = ({"_id": anomaly_id(job, a), "_source": anomaly_document(job, a)} for a in anomalies)
    return es_bulk.bulk_index(client, result_indices(settings.results).anomalies, docs).indexed


def write_truth(
    client: EsClient, settings: Settings, truth: Sequence[TruthInterval], metrics: Sequence[str], step: timedelta
) -> int:
    """Index the labelled steps (window ends T whose [T - step, T) overlaps an interval) per metric, with
    deterministic ids (writing the same truth again changes nothing); returns how many documents."""
    index, job = result_indices(settings.results).truth, settings.results.job
    es_client.create_index(client, index, {"mappings": truth_mapping()})
    labelled: set[tuple[str, datetime]] = set()
    for interval in truth:
        first = floor_instant(interval.start, step) + step
        for metric in [interval.metric] if interval.metric else metrics:
            t = first
            while t - step < interval.end:
                labelled.add((metric, t))
                t += step
    docs = (
        {
            "_id": f"{job}|{m}|{format_instant(t)}",
            "_source": {"job": job, "time": format_instant(t), "metric": m, "disrupted": 1},
        }
        for m, t in sorted(labelled)
    )
    return es_bulk.bulk_index(client, index, docs).indexed


def read_surprise(
    client: EsClient, settings: Settings, start: datetime, end: datetime, metrics: Sequence[str] | None = None
) -> list[WindowSurprise]:
    """The stored surprise of the job's windows ending in [start, end] (UTC), ordered by window end then metric."""
    filters: list[dict[str, Any]] = [
        {"term": {"job": settings.results.job}},
        {"range": {"window_end": {"gte": format_instant(start), "lte": format_instant(end)}}},
    ]
    if metrics is not None:
        filters.append({"terms": {"metric": list(metrics)}})
    hits = _all_hits(client, result_indices(settings.results).surprise, filters, ["window_end", "metric"])
    percentiles = settings.surprise.percentiles
    return [
        WindowSurprise(
            metric=str(src["metric"]),
            window_start=parse_instant(src["window_start"]),
            window_end=parse_instant(src["window_end"]),
            percentiles={p: _optional_float(src.get(percentile_field(p))) for p in percentiles},
            series_count=int(src["series_count"]),
            top_series=_top_series_records(src.get("top_series")),
        )
        for src in hits
    ]


def read_anomalies(client: EsClient, settings: Settings, start: datetime, end: datetime) -> list[Anomaly]:
    """The job's stored anomalies with window ends in [start, end] (UTC), ordered by window end, metric, percentile."""
    return _read_anomalies(
        client, settings, {"range": {"window_end": {"gte": format_instant(start), "lte": format_instant(end)}}}
    )


def read_event_anomalies(client: EsClient, settings: Settings, event_ids: Sequence[str]) -> list[Anomaly]:
    """The job's stored anomalies of the given events, ordered by window end, metric, percentile."""
    return _read_anomalies(client, settings, {"terms": {"event_id": list(event_ids)}}) if event_ids else []


def _read_anomalies(client: EsClient, settings: Settings, selection: dict[str, Any]) -> list[Anomaly]:
    filters: list[dict[str, Any]] = [{"term": {"job": settings.results.job}}, selection]
    hits = _all_hits(
        client, result_indices(settings.results).anomalies, filters, ["window_end", "metric", "percentile"]
    )
    return [
        Anomaly(
            metric=str(src["metric"]),
            percentile=float(src["percentile"]),
            window_end=parse_instant(src["window_end"]),
            value=float(src["value"]),
            mean=float(src["mean"]),
            std=float(src["std"]),
            threshold=float(src["threshold"]),
            sigmas_above_mean=_optional_float(src.get("sigmas_above_mean")),
            severity=src["severity"],
            event_id=str(src["event_id"]),
            top_series=_top_series_records(src.get("top_series")),
        )
        for src in hits
    ]


def percentile_series(
    results: Sequence[WindowSurprise], metric: str, percentile: float, start: datetime, end: datetime, step: timedelta
) -> pd.Series[float]:
    """One metric's P(T) at every window end from start to end (UTC, `step` apart); NaN where nothing was stored."""
    index = pd.date_range(start, end, freq=step, tz="UTC")
    found = {r.window_end: r.percentiles.get(percentile) for r in results if r.metric == metric}
    values = [found.get(t.to_pydatetime()) for t in index]
    numbers: list[float] = [float("nan") if v is None else float(v) for v in values]
    series: pd.Series[float] = pd.Series(numbers, index=index, dtype="float64")
    return series


def _all_hits(client: EsClient, index: str, filters: list[dict[str, Any]], sort: list[str]) -> list[dict[str, Any]]:
    """Every matching document's source, paged with search_after on the sort keys (unique per document)."""
    body: dict[str, Any] = {
        "size": _PAGE,
        "query": {"bool": {"filter": filters}},
        "sort": [{key: "asc"} for key in sort],
    }
    sources: list[dict[str, Any]] = []
    while True:
        hits = es_client.search(client, index, body).get("hits", {}).get("hits", [])
        sources.extend(hit["_source"] for hit in hits)
        if len(hits) < _PAGE:
            return sources
        body["search_after"] = hits[-1]["sort"]


def _top_series_json(top: Sequence[SeriesSurprise]) -> list[dict[str, Any]]:
    return [{"series": s.series, "surprise": s.surprise} for s in top]


def _top_series_records(raw: Any) -> tuple[SeriesSurprise, ...]:
    return tuple(SeriesSurprise(str(item["series"]), float(item["surprise"])) for item in raw or [])


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
