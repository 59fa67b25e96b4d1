"""Ask Elasticsearch for one window's percentile surprise per metric and read the answer into WindowSurprise records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from atlas import es_client, scan
from atlas.clock import format_instant
from atlas.errors import DataError, EsQueryRejected
from atlas.es_client import EsClient
from atlas.queries import (
    MAX_SERIES,
    build_combined_request,
    build_source_fields_request,
    build_source_summary,
    build_surprise_request,
    combined_values_left_out,
    left_series_out,
    read_metric_names,
    read_source_fields,
    read_window_surprise,
)
from atlas.records import SeriesSurprise, WindowSurprise
from atlas.settings import Settings


def resolve_metrics(client: EsClient, settings: Settings) -> list[str]:
    """The metrics to watch: as configured, the wide-form value fields' metrics, or every metric in the index."""
    source = settings.source
    if source.value_fields:
        return list(source.value_fields)
    if source.metrics:
        return list(source.metrics)
    found = read_metric_names(es_client.search(client, source.index, build_source_summary(source)))
    if not found:
        raise DataError(f"no metrics found in {source.index} (field {source.metric_field}); index data first")
    return found


def check_source_fields(client: EsClient, settings: Settings) -> None:
    """Refuse a source whose documents lack a configured field (a typo in atlas.yml would otherwise give windows
    with nothing in them, and no word why): the time, series, metric and value fields must each be in some document."""
    source = settings.source
    read_source_fields(es_client.search(client, source.index, build_source_fields_request(source)), source)


def compute_window_surprise(
    client: EsClient,
    settings: Settings,
    metrics: Sequence[str],
    window_end: datetime,
    plan: scan.RequestPlan | None = None,
) -> list[WindowSurprise]:
    """The surprise of every metric for the window ending at `window_end` (UTC); metrics without a scored series
    are left out. `plan`: which metrics go together and which in parts, as scan.plan_requests made it for windows
    including this one (a run counts the series once for all its windows); made here for this window when None."""
    if plan is None:
        plan = scan.plan_requests(client, settings, metrics, [window_end])
    found = [r for batch in plan.batches for r in _whole_window(client, settings, batch, window_end, plan.caps)]
    if plan.parted:
        found += _partitioned(client, settings, plan.parted, window_end)
    order = {m: i for i, m in enumerate(metrics)}
    return sorted(found, key=lambda r: order[r.metric])


def compute_top_series(
    client: EsClient, settings: Settings, metric: str, window_end: datetime
) -> tuple[SeriesSurprise, ...]:
    """The most surprising series of one metric in the window ending at `window_end` (UTC), from every series'
    window surprise asked in parts: the per-window request answers the percentiles only, and only an anomaly needs
    its top series (asking for them in it would compute every series twice)."""
    found = scan.compute_partitioned_window(client, settings, metric, window_end)
    return found.top_series if found is not None else ()


def compute_combined_surprise(
    client: EsClient, settings: Settings, metrics: Sequence[str], window_end: datetime
) -> list[WindowSurprise]:
    """DADS's combined score of surprise.combine_by's values over `metrics` for the window ending at `window_end`
    (UTC), as one more WindowSurprise (metric `<field>:all`); none when no value has a surprise for every metric."""
    request = build_combined_request(settings, metrics, window_end, fused=es_client.has_moving_fn_shift(client))
    response = es_client.search(client, settings.source.index, request.body, filter_path=request.filter_path)
    if combined_values_left_out(response):
        raise DataError(
            f"surprise.combine_by: more than {MAX_SERIES} values of {settings.surprise.combine_by} in the window"
            f" ending {format_instant(window_end)}"
        )
    return read_window_surprise(response, request, settings.surprise)


def _whole_window(
    client: EsClient, settings: Settings, metrics: Sequence[str], window_end: datetime, caps: Mapping[str, int]
) -> list[WindowSurprise]:
    """The metrics' surprise in one request; in parts after all when the cluster refuses it for its buckets or a
    metric has more series than the request asks for."""
    fused = es_client.has_moving_fn_shift(client)
    request = build_surprise_request(settings, metrics, window_end, fused=fused, series_caps=caps)
    try:
        response = es_client.search(client, settings.source.index, request.body, filter_path=request.filter_path)
    except EsQueryRejected as exc:
        if not scan.is_too_many_buckets(exc):
            raise
        return _partitioned(client, settings, metrics, window_end)
    if left_series_out(response, request):
        return _partitioned(client, settings, metrics, window_end)
    return read_window_surprise(response, request, settings.surprise)


def _partitioned(
    client: EsClient, settings: Settings, metrics: Sequence[str], window_end: datetime
) -> list[WindowSurprise]:
    """Metrics whose series need more buckets than one request may hold (search.max_buckets) or more series than
    it asks for: each metric's series in parts, the percentiles across them computed by atlas/scan.py."""
    found = (scan.compute_partitioned_window(client, settings, metric, window_end) for metric in metrics)
    return [r for r in found if r is not None]
