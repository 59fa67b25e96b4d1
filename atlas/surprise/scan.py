"""The one-scan form: every window of a backfill from one scan of each metric's series partitions (scan_metric.json.j2),
each window's S(q, T) then computed here with numpy; windows a gap makes uncertain are asked again by the per-window
request (series.py). Equal to the per-window form window by window."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from atlas import es_client
from atlas.clock import format_instant
from atlas.es_client import EsClient
from atlas.queries import build_scan_request, read_scan, window_range
from atlas.records import WindowSurprise
from atlas.settings import Settings
from atlas.surprise.plan import DEFAULT_BUDGET, Budget, in_parts, split_keys
from atlas.surprise.series import list_series, series_window_values
from atlas.surprise.summary import FloatArray, summarize_window

_AFFECTED = -np.finfo(np.float64).max  # a window the per-window request must be asked for


@dataclass(frozen=True)
class _Block:
    """The window surprises of one metric for a block of window ends: one row per series (keys ascending), one
    column per window; NaN where a series has none, _AFFECTED where the per-window request must be asked."""

    keys: Sequence[str]
    values: FloatArray


def scan_surprise(
    client: EsClient,
    settings: Settings,
    metrics: Sequence[str],
    ends: Sequence[datetime],
    budget: Budget = DEFAULT_BUDGET,
) -> list[WindowSurprise]:
    """Every metric's surprise for the window ends `ends` (UTC, ascending, aligned to step), by one scan of each
    metric's series partitions over the whole range; equal to compute_window_surprise window by window."""
    found: list[WindowSurprise] = []
    for metric in metrics:
        for block_ends, block in _scan_metric(client, settings, metric, ends, budget):
            for j, end in enumerate(block_ends):
                column = block.values[:, j]
                result = summarize_window(settings, metric, window_range(settings.surprise, end), block.keys, column)
                if result is not None:
                    found.append(result)
    found.sort(key=lambda r: (r.window_end, metrics.index(r.metric)))
    return found


def _scan_metric(
    client: EsClient, settings: Settings, metric: str, ends: Sequence[datetime], budget: Budget
) -> Iterator[tuple[Sequence[datetime], _Block]]:
    """The metric's blocks of window ends, each scanned partition by partition, affected windows asked again."""
    s = settings.surprise
    keys = list_series(client, settings, metric, window_range(s, ends[0]).fetch_start, ends[-1], budget)
    if not keys:
        return
    per_block = max(1, budget.values // len(keys))
    for b in range(0, len(ends), per_block):
        block_ends = ends[b : b + per_block]
        values = _scan_block(client, settings, metric, block_ends, keys, budget)
        _ask_affected(client, settings, metric, block_ends, keys, values, budget)
        yield block_ends, _Block(keys, values)


def _scan_block(
    client: EsClient, settings: Settings, metric: str, ends: Sequence[datetime], keys: Sequence[str], budget: Budget
) -> FloatArray:
    """The window surprises of every series for a block of window ends, budget.workers partitions at a time."""
    s = settings.surprise
    positions = (ends[-1] - window_range(s, ends[0]).fetch_start) // s.interval + 1
    what = f"the scan of {metric} from {format_instant(ends[0])} to {format_instant(ends[-1])}"
    ask = functools.partial(_scan_part, client, settings, metric, ends)

    def scan(part: Sequence[str]) -> FloatArray:
        return np.vstack(in_parts(what, part, positions, ask, budget))

    with ThreadPoolExecutor(max_workers=budget.workers) as pool:
        return np.vstack(list(pool.map(scan, split_keys(keys, positions, budget))))


def _scan_part(
    client: EsClient, settings: Settings, metric: str, ends: Sequence[datetime], keys: Sequence[str]
) -> FloatArray:
    """One partition's window surprises, shape (len(keys), len(ends))."""
    request = build_scan_request(settings, metric, ends[0], ends[-1], keys, api_version=client.version)
    answer = es_client.search(client, settings.source.index, request.body, filter_path=request.filter_path)
    rows = read_scan(answer, request, metric)
    s = settings.surprise
    columns = np.array([(end - request.first_bucket) // s.interval for end in ends])
    scored = s.window // s.interval if s.mode == "max" else 1
    values = np.full((len(keys), len(ends)), math.nan)
    for i, key in enumerate(keys):
        if key not in rows:
            continue
        present, surprise = rows[key]
        values[i] = _window_surprise(
            np.array(present), np.array(surprise, dtype=np.float64), columns, scored, s.warm_up_buckets
        )
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
    budget: Budget,
) -> None:
    """Replace the windows marked _AFFECTED (a gap within reach of a baseline) by the per-window request's answer
    for those series only."""
    rows, cols = np.nonzero(values == _AFFECTED)
    wanted: dict[int, list[int]] = {}
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        wanted.setdefault(j, []).append(i)

    def ask(item: tuple[int, list[int]]) -> tuple[int, list[int], dict[str, float]]:
        j, members = item
        return j, members, series_window_values(client, settings, metric, ends[j], [keys[i] for i in members], budget)

    with ThreadPoolExecutor(max_workers=budget.workers) as pool:
        for j, members, found in pool.map(ask, sorted(wanted.items())):
            for i in members:
                values[i, j] = found.get(keys[i], math.nan)


WindowComputer = Callable[[Sequence[datetime]], list[WindowSurprise]]


def scanning_computer(
    client: EsClient,
    settings: Settings,
    metrics: Sequence[str],
    ends: Sequence[datetime],
    budget: Budget = DEFAULT_BUDGET,
) -> WindowComputer:
    """A computer of consecutive chunks of `ends` (UTC) for the pipeline: a chunk not yet computed scans the next
    budget.scan_block window ends at once, and later chunks are answered from that block."""
    cache: dict[datetime, list[WindowSurprise]] = {}

    def compute(chunk: Sequence[datetime]) -> list[WindowSurprise]:
        if any(t not in cache for t in chunk):
            cache.clear()
            start = ends.index(chunk[0])
            block = list(ends[start : start + max(budget.scan_block, len(chunk))])
            cache.update((end, []) for end in block)
            for result in scan_surprise(client, settings, metrics, block, budget):
                cache[result.window_end].append(result)
        return [r for t in chunk for r in cache[t]]

    return compute
