"""Surprise of many windows, or of many series, in requests that fit Elasticsearch's bucket limit: the one-scan
backfill, series partitions, and the percentile across series computed here the way percentiles_bucket does."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from atlas import es_client
from atlas.clock import format_instant
from atlas.errors import EsQueryRejected
from atlas.es_client import EsClient
from atlas.queries import (
    MAX_SERIES,
    SERIES_KEYS_FILTER_PATH,
    WindowRange,
    build_scan_request,
    build_series_count_request,
    build_series_keys_request,
    build_subset_window_request,
    window_range,
)
from atlas.records import SeriesSurprise, WindowSurprise
from atlas.settings import Settings

FloatArray = npt.NDArray[np.float64]
T = TypeVar("T")

# Histogram buckets one request may hold: half of 7.10's default search.max_buckets. Measured on a 1 GB node: a
# window of 2,500 series x 18 buckets (45,000) passes; 4,000 x 18 (72,000) ran it out of heap before the limit
# refused the request.
BUCKET_BUDGET = MAX_SERIES // 2
# Window surprises held at once by the one-scan (8 bytes each): more series make shorter blocks of windows.
VALUES_BUDGET = 4_000_000
KEYS_PAGE = 10_000  # series keys per listing request
WORKERS = 2  # requests in flight at once
SCAN_BLOCK = 720  # window ends scanned together by a backfill (30 days of hourly windows); their results are kept
_AFFECTED = -np.finfo(np.float64).max  # a window the per-window request must be asked for


def exact_percentile(ascending: FloatArray, percent: float) -> float:
    """The value at index round-half-up(p / 100 * (n - 1)) of sorted values: percentiles_bucket's rule (no
    interpolation), as reference.py pins it down."""
    position = (percent / 100.0) * (len(ascending) - 1)
    index = math.floor(position)
    if position - index >= 0.5:
        index += 1
    return float(ascending[index])


def summarize_window(
    settings: Settings, metric: str, window: WindowRange, keys: Sequence[str], values: FloatArray
) -> WindowSurprise | None:
    """The WindowSurprise of one metric from every series' window surprise (`keys` ascending in terms' _key order,
    NaN where a series has none); None when no series has one. Top series: surprise descending, then key; a
    percentile the settings do not report for so few series is None, as in the per-window request."""
    scored = np.flatnonzero(~np.isnan(values))
    if not len(scored):
        return None
    found = values[scored]
    ascending = np.sort(found)
    top = scored[np.argsort(-found, kind="stable")[: settings.surprise.top_series]]
    return WindowSurprise(
        metric=metric,
        window_start=window.start,
        window_end=window.end,
        percentiles={
            float(p): exact_percentile(ascending, float(p))
            if settings.surprise.reports_percentile(p, len(found))
            else None
            for p in settings.surprise.percentiles
        },
        series_count=len(found),
        top_series=tuple(SeriesSurprise(str(keys[i]), float(values[i])) for i in top),
    )


def list_series(client: EsClient, settings: Settings, metric: str, start: datetime, end: datetime) -> list[str]:
    """Every series key of `metric` with documents in [start, end) (UTC), in terms' _key order (bytes)."""
    keys: list[str] = []
    after: str | None = None
    size = KEYS_PAGE
    while True:
        body = build_series_keys_request(settings, metric, start, end, size, after)
        try:
            answer = es_client.search(client, settings.source.index, body, filter_path=SERIES_KEYS_FILTER_PATH)
        except EsQueryRejected as exc:
            if not is_too_many_buckets(exc) or size == 1:
                raise
            size //= 2  # a search.max_buckets below the default: smaller pages
            continue
        page = answer.get("aggregations", {}).get("keys", {})
        keys.extend(str(b["key"]["key"]) for b in page.get("buckets", []))
        after_key = page.get("after_key")
        if not page.get("buckets") or after_key is None:
            return keys
        after = str(after_key["key"])


def split_keys(keys: Sequence[str], buckets_per_series: int) -> list[Sequence[str]]:
    """`keys` cut into consecutive parts whose buckets fit BUCKET_BUDGET."""
    size = max(1, BUCKET_BUDGET // max(1, buckets_per_series))
    return [keys[i : i + size] for i in range(0, len(keys), size)]


def is_too_many_buckets(exc: EsQueryRejected) -> bool:
    """Whether Elasticsearch refused a request for needing more than search.max_buckets buckets."""
    return "too many buckets" in str(exc).lower().replace("_", " ")


def in_parts(what: str, keys: Sequence[str], per_series: int, ask: Callable[[Sequence[str]], T]) -> list[T]:
    """`ask` of consecutive parts of `keys` sized by BUCKET_BUDGET, in order; a part the cluster refuses for its
    buckets (a search.max_buckets below the default) is halved until one series is refused, which is an error."""
    answers: list[T] = []
    pending = list(reversed(split_keys(keys, per_series)))
    while pending:
        part = pending.pop()
        try:
            answers.append(ask(part))
        except EsQueryRejected as exc:
            if not is_too_many_buckets(exc):
                raise
            if len(part) == 1:
                raise EsQueryRejected(
                    f"{what} needs more buckets than the cluster's search.max_buckets allows even for one series"
                    f" ({per_series} buckets): raise search.max_buckets, or use a shorter window or a longer interval"
                ) from exc
            pending += [part[len(part) // 2 :], part[: len(part) // 2]]
    return answers


def window_buckets_per_series(settings: Settings) -> int:
    """Histogram buckets one series needs in the per-window request: those scored (the window's, or in mode last
    its last one) and the warm-up's before them."""
    s = settings.surprise
    return (s.window // s.interval if s.mode == "max" else 1) + s.warm_up_buckets


@dataclass(frozen=True)
class RequestPlan:
    """How the metrics of a window are asked: `batches` of whole metrics, one request each, asking for at most
    `caps` series of each metric so that no request passes BUCKET_BUDGET; `parted`, the metrics whose series alone
    pass it, each in parts of its series."""

    batches: tuple[tuple[str, ...], ...]
    parted: tuple[str, ...]
    caps: Mapping[str, int]


def plan_requests(
    client: EsClient, settings: Settings, metrics: Sequence[str], ends: Sequence[datetime]
) -> RequestPlan:
    """The plan for the windows ending at `ends` (UTC, ascending), from each metric's series count (one request for
    all the windows): a request over the budget makes a node run out of heap before search.max_buckets stops it,
    whether one metric has too many series or several metrics together have. Each batch shares the whole budget
    out by need, so a metric with somewhat more series than counted still fits; one with more than its cap is
    asked in parts (it reports sum_other_doc_count)."""
    body = build_series_count_request(settings, metrics, ends[0], ends[-1])
    aggs = es_client.search(client, settings.source.index, body).get("aggregations", {})
    per_series = window_buckets_per_series(settings)
    # 5% over the count: above 40,000 series cardinality is an estimate.
    counts = {m: int(aggs.get(f"m{i}", {}).get("n", {}).get("value", 0)) for i, m in enumerate(metrics)}
    need = {m: max(1, math.ceil(n * 1.05)) * per_series for m, n in counts.items()}
    parted = tuple(m for m in metrics if need[m] > BUCKET_BUDGET)
    batches: list[list[str]] = []
    used = 0
    for metric in (m for m in metrics if m not in parted):
        if not batches or used + need[metric] > BUCKET_BUDGET:
            batches.append([])
            used = 0
        batches[-1].append(metric)
        used += need[metric]
    caps: dict[str, int] = {}
    for batch in batches:
        total = sum(need[m] for m in batch)
        caps.update((m, BUCKET_BUDGET * need[m] // (total * per_series)) for m in batch)
    return RequestPlan(tuple(tuple(b) for b in batches), parted, caps)


def series_window_values(
    client: EsClient, settings: Settings, metric: str, window_end: datetime, keys: Sequence[str]
) -> dict[str, float]:
    """The window surprise S(q, T) of each of the series `keys` that has one, by the per-window request (UTC)."""
    per_series = window_buckets_per_series(settings)

    def ask(part: Sequence[str]) -> dict[str, float]:
        request = build_subset_window_request(
            settings, metric, window_end, part, fused=es_client.has_moving_fn_shift(client)
        )
        answer = es_client.search(client, settings.source.index, request.body, filter_path=request.filter_path)
        buckets = answer.get("aggregations", {}).get("m0", {}).get("series", {}).get("buckets", [])
        windows = ((str(b["key"]), b.get("window", {}).get("value")) for b in buckets)
        return {key: float(value) for key, value in windows if value is not None}

    found: dict[str, float] = {}
    for answer in in_parts(f"the window ending {format_instant(window_end)}", keys, per_series, ask):
        found.update(answer)
    return found


def compute_partitioned_window(
    client: EsClient, settings: Settings, metric: str, window_end: datetime
) -> WindowSurprise | None:
    """One metric's surprise for the window ending at `window_end` (UTC) in as many requests as its series need."""
    window = window_range(settings.surprise, window_end)
    keys = list_series(client, settings, metric, window.fetch_start, window.end)
    found = series_window_values(client, settings, metric, window_end, keys)
    values = np.array([found.get(k, math.nan) for k in keys], dtype=np.float64)
    return summarize_window(settings, metric, window, keys, values)


@dataclass(frozen=True)
class _Block:
    """The window surprises of one metric for a block of window ends: one row per series (keys ascending), one
    column per window; NaN where a series has none, _AFFECTED where the per-window request must be asked."""

    keys: Sequence[str]
    values: FloatArray


def scan_surprise(
    client: EsClient, settings: Settings, metrics: Sequence[str], ends: Sequence[datetime]
) -> list[WindowSurprise]:
    """Every metric's surprise for the window ends `ends` (UTC, ascending, aligned to step), by one scan of each
    metric's series partitions over the whole range; equal to compute_window_surprise window by window."""
    found: list[WindowSurprise] = []
    for metric in metrics:
        for block_ends, block in _scan_metric(client, settings, metric, ends):
            for j, end in enumerate(block_ends):
                column = block.values[:, j]
                result = summarize_window(settings, metric, window_range(settings.surprise, end), block.keys, column)
                if result is not None:
                    found.append(result)
    found.sort(key=lambda r: (r.window_end, metrics.index(r.metric)))
    return found


def _scan_metric(
    client: EsClient, settings: Settings, metric: str, ends: Sequence[datetime]
) -> Iterator[tuple[Sequence[datetime], _Block]]:
    """The metric's blocks of window ends, each scanned partition by partition, affected windows asked again."""
    s = settings.surprise
    keys = list_series(client, settings, metric, window_range(s, ends[0]).fetch_start, ends[-1])
    if not keys:
        return
    per_block = max(1, VALUES_BUDGET // len(keys))
    for b in range(0, len(ends), per_block):
        block_ends = ends[b : b + per_block]
        values = _scan_block(client, settings, metric, block_ends, keys)
        _ask_affected(client, settings, metric, block_ends, keys, values)
        yield block_ends, _Block(keys, values)


def _scan_block(
    client: EsClient, settings: Settings, metric: str, ends: Sequence[datetime], keys: Sequence[str]
) -> FloatArray:
    """The window surprises of every series for a block of window ends, WORKERS partitions at a time."""
    s = settings.surprise
    positions = (ends[-1] - window_range(s, ends[0]).fetch_start) // s.interval + 1
    what = f"the scan of {metric} from {format_instant(ends[0])} to {format_instant(ends[-1])}"
    ask = functools.partial(_scan_part, client, settings, metric, ends)

    def scan(part: Sequence[str]) -> FloatArray:
        return np.vstack(in_parts(what, part, positions, ask))

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return np.vstack(list(pool.map(scan, split_keys(keys, positions))))


def _scan_part(
    client: EsClient, settings: Settings, metric: str, ends: Sequence[datetime], keys: Sequence[str]
) -> FloatArray:
    """One partition's window surprises, shape (len(keys), len(ends))."""
    fused = es_client.has_moving_fn_shift(client)
    request = build_scan_request(settings, metric, ends[0], ends[-1], keys, fused=fused)
    answer = es_client.search(client, settings.source.index, request.body, filter_path=request.filter_path)
    s = settings.surprise
    columns = np.array([(end - request.first_bucket) // s.interval for end in ends])
    scored = s.window // s.interval if s.mode == "max" else 1
    rows = {str(b["key"]): b for b in answer.get("aggregations", {}).get("series", {}).get("buckets", [])}
    values = np.full((len(keys), len(ends)), math.nan)
    for i, key in enumerate(keys):
        bucket = rows.get(key)
        if bucket is None:
            continue
        hours = bucket.get("hours", {}).get("buckets", [])
        if len(hours) != request.positions:
            raise AssertionError(f"scan of {metric}: series {key} has {len(hours)} buckets, not {request.positions}")
        present = np.array([h.get("x", {}).get("value") is not None for h in hours])
        surprise = np.array([h.get("surprise", {}).get("value") for h in hours], dtype=np.float64)
        values[i] = _window_surprise(present, surprise, columns, scored, s.warm_up_buckets)
    return values


def _window_surprise(
    present: npt.NDArray[np.bool_],
    surprise: FloatArray,
    columns: npt.NDArray[np.int64],
    scored: int,
    warm_up: int,
) -> FloatArray:
    """One series' window surprise S(q, T) for the windows whose end is the start of bucket `columns`: the largest
    finite s(q, t) of the `scored` buckets before it (NaN if none). _AFFECTED where one of those buckets' baseline
    or std reaches back more than warm_up buckets (moving_fn takes the last warm_up = max(baseline_window,
    std_window) buckets with a value at most, so a gap stretches it): the per-window request, whose warm-up starts
    warm_up buckets before its first scored bucket, could see another baseline or std (in mode max a later bucket
    of the window could reach further and still see the same: it is asked again, which costs a request, not a value).
    A bucket with fewer values before it than warm_up reaches back to the series' first value."""
    positions = np.flatnonzero(present)
    reach = np.zeros(len(present), dtype=np.int64)
    if len(positions) > 1:
        later = np.arange(1, len(positions))
        oldest = positions[np.maximum(0, later - warm_up)]
        reach[positions[1:]] = positions[1:] - oldest
    affected = np.concatenate([[0], np.cumsum(reach > warm_up)])
    finite = np.where(np.isfinite(surprise), surprise, -np.inf)
    largest = np.lib.stride_tricks.sliding_window_view(finite, scored).max(axis=1)[columns - scored]
    found = np.where(largest == -np.inf, math.nan, largest)
    return np.where(affected[columns] - affected[columns - scored] > 0, _AFFECTED, found)


def _ask_affected(
    client: EsClient,
    settings: Settings,
    metric: str,
    ends: Sequence[datetime],
    keys: Sequence[str],
    values: FloatArray,
) -> None:
    """Replace the windows marked _AFFECTED (a gap within reach of a baseline) by the per-window request's answer
    for those series only."""
    rows, cols = np.nonzero(values == _AFFECTED)
    wanted: dict[int, list[int]] = {}
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        wanted.setdefault(j, []).append(i)

    def ask(item: tuple[int, list[int]]) -> tuple[int, list[int], dict[str, float]]:
        j, members = item
        return j, members, series_window_values(client, settings, metric, ends[j], [keys[i] for i in members])

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for j, members, found in pool.map(ask, sorted(wanted.items())):
            for i in members:
                values[i, j] = found.get(keys[i], math.nan)


WindowComputer = Callable[[Sequence[datetime]], list[WindowSurprise]]


def scanning_computer(
    client: EsClient, settings: Settings, metrics: Sequence[str], ends: Sequence[datetime]
) -> WindowComputer:
    """A computer of consecutive chunks of `ends` (UTC) for the pipeline: a chunk not yet computed scans the next
    SCAN_BLOCK window ends at once, and later chunks are answered from that block."""
    cache: dict[datetime, list[WindowSurprise]] = {}

    def compute(chunk: Sequence[datetime]) -> list[WindowSurprise]:
        if any(t not in cache for t in chunk):
            cache.clear()
            start = ends.index(chunk[0])
            block = list(ends[start : start + max(SCAN_BLOCK, len(chunk))])
            cache.update((end, []) for end in block)
            for result in scan_surprise(client, settings, metrics, block):
                cache[result.window_end].append(result)
        return [r for t in chunk for r in cache[t]]

    return compute
