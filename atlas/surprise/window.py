"""The per-window form: one window's percentile surprise of every metric, in the requests its plan says (whole
metrics together, or a metric in parts of its series), its top series, and the combined score."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from atlas import es_client
from atlas.clock import format_instant
from atlas.errors import DataError, EsQueryRejected
from atlas.es_client import EsClient
from atlas.queries import (
    MAX_SERIES,
    build_combined_request,
    build_surprise_request,
    combined_values_left_out,
    left_series_out,
    read_window_surprise,
)
from atlas.records import SeriesSurprise, WindowSurprise
from atlas.settings import Settings
from atlas.surprise.plan import DEFAULT_BUDGET, Budget, RequestPlan, is_too_many_buckets, plan_requests
from atlas.surprise.series import compute_partitioned_window


def compute_window_surprise(
    client: EsClient,
    settings: Settings,
    metrics: Sequence[str],
    window_end: datetime,
    plan: RequestPlan | None = None,
) -> list[WindowSurprise]:
    """The surprise of every metric for the window ending at `window_end` (UTC); metrics without a scored series
    are left out. `plan`: which metrics go together and which in parts, as plan_requests made it for windows
    including this one (a run counts the series once for all its windows); made here for this window when None."""
    if plan is None:
        plan = plan_requests(client, settings, metrics, [window_end])
    found = [
        r for batch in plan.batches for r in _whole_window(client, settings, batch, window_end, plan.caps, plan.budget)
    ]
    if plan.parted:
        found += _partitioned(client, settings, plan.parted, window_end, plan.budget)
    order = {m: i for i, m in enumerate(metrics)}
    return sorted(found, key=lambda r: order[r.metric])


def compute_top_series(
    client: EsClient, settings: Settings, metric: str, window_end: datetime, budget: Budget = DEFAULT_BUDGET
) -> tuple[SeriesSurprise, ...]:
    """The most surprising series of one metric in the window ending at `window_end` (UTC), from every series'
    window surprise asked in parts: the per-window request answers the percentiles only, and only an anomaly needs
    its top series (asking for them in it would compute every series twice)."""
    found = compute_partitioned_window(client, settings, metric, window_end, budget)
    return found.top_series if found is not None else ()


def compute_combined_surprise(
    client: EsClient, settings: Settings, metrics: Sequence[str], window_end: datetime
) -> list[WindowSurprise]:
    """DADS's combined score of surprise.combine_by's values over `metrics` for the window ending at `window_end`
    (UTC), as one more WindowSurprise (metric `<field>:all`); none when no value has a surprise for every metric."""
    request = build_combined_request(settings, metrics, window_end, api_version=client.version)
    response = es_client.search(client, settings.source.index, request.body, filter_path=request.filter_path)
    if combined_values_left_out(response):
        raise DataError(
            f"surprise.combine_by: more than {MAX_SERIES} values of {settings.surprise.combine_by} in the window"
            f" ending {format_instant(window_end)}"
        )
    return read_window_surprise(response, request, settings.surprise)


def _whole_window(
    client: EsClient,
    settings: Settings,
    metrics: Sequence[str],
    window_end: datetime,
    caps: Mapping[str, int],
    budget: Budget,
) -> list[WindowSurprise]:
    """The metrics' surprise in one request; in parts after all when the cluster refuses it for its buckets or a
    metric has more series than the request asks for."""
    request = build_surprise_request(settings, metrics, window_end, api_version=client.version, series_caps=caps)
    try:
        response = es_client.search(client, settings.source.index, request.body, filter_path=request.filter_path)
    except EsQueryRejected as exc:
        if not is_too_many_buckets(exc):
            raise
        return _partitioned(client, settings, metrics, window_end, budget)
    if left_series_out(response, request):
        return _partitioned(client, settings, metrics, window_end, budget)
    return read_window_surprise(response, request, settings.surprise)


def _partitioned(
    client: EsClient, settings: Settings, metrics: Sequence[str], window_end: datetime, budget: Budget
) -> list[WindowSurprise]:
    """Metrics whose series need more buckets than one request may hold (search.max_buckets) or more series than
    it asks for: each metric's series in parts, the percentiles across them computed as percentiles_bucket does
    (series.py, summary.py)."""
    found = (compute_partitioned_window(client, settings, metric, window_end, budget) for metric in metrics)
    return [r for r in found if r is not None]
