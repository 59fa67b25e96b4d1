"""One metric's window surprise asked in parts of its series (the per-window request with a subset of the series),
for a metric whose series pass one request's budget: list the series, ask each part, summarize them all."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from atlas import es_client
from atlas.clock import format_instant
from atlas.errors import EsQueryRejected
from atlas.es_client import EsClient
from atlas.queries import (
    SERIES_KEYS_FILTER_PATH,
    build_series_keys_request,
    build_subset_window_request,
    read_series_keys_page,
    read_series_windows,
    window_range,
)
from atlas.records import WindowSurprise
from atlas.settings import Settings
from atlas.surprise.plan import DEFAULT_BUDGET, Budget, in_parts, is_too_many_buckets, window_buckets_per_series
from atlas.surprise.summary import summarize_window


def list_series(
    client: EsClient,
    settings: Settings,
    metric: str,
    start: datetime,
    end: datetime,
    budget: Budget = DEFAULT_BUDGET,
) -> list[str]:
    """Every series key of `metric` with documents in [start, end) (UTC), in terms' _key order (bytes)."""
    keys: list[str] = []
    after: str | None = None
    size = budget.keys_page
    while True:
        body = build_series_keys_request(settings, metric, start, end, size, after)
        try:
            answer = es_client.search(client, settings.source.index, body, filter_path=SERIES_KEYS_FILTER_PATH)
        except EsQueryRejected as exc:
            if not is_too_many_buckets(exc) or size == 1:
                raise
            size //= 2  # a search.max_buckets below the default: smaller pages
            continue
        page, after = read_series_keys_page(answer)
        keys.extend(page)
        if after is None:
            return keys


def series_window_values(
    client: EsClient,
    settings: Settings,
    metric: str,
    window_end: datetime,
    keys: Sequence[str],
    budget: Budget = DEFAULT_BUDGET,
) -> dict[str, float]:
    """The window surprise S(q, T) of each of the series `keys` that has one, by the per-window request (UTC)."""
    per_series = window_buckets_per_series(settings)

    def ask(part: Sequence[str]) -> dict[str, float]:
        request = build_subset_window_request(settings, metric, window_end, part, api_version=client.version)
        return read_series_windows(
            es_client.search(client, settings.source.index, request.body, filter_path=request.filter_path)
        )

    found: dict[str, float] = {}
    for answer in in_parts(f"the window ending {format_instant(window_end)}", keys, per_series, ask, budget):
        found.update(answer)
    return found


def compute_partitioned_window(
    client: EsClient, settings: Settings, metric: str, window_end: datetime, budget: Budget = DEFAULT_BUDGET
) -> WindowSurprise | None:
    """One metric's surprise for the window ending at `window_end` (UTC) in as many requests as its series need."""
    window = window_range(settings.surprise, window_end)
    keys = list_series(client, settings, metric, window.fetch_start, window.end, budget)
    found = series_window_values(client, settings, metric, window_end, keys, budget)
    values = np.array([found.get(k, math.nan) for k in keys], dtype=np.float64)
    return summarize_window(settings, metric, window, keys, values)
