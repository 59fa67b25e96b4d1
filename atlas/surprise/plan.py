"""How a window's or a scan's series are asked in requests that fit the bucket budget: the budget (data, passed in),
the plan of a run's windows (batches of metrics, caps, metrics asked in parts), and asking in parts."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from atlas import es_client
from atlas.errors import EsQueryRejected
from atlas.es_client import EsClient
from atlas.queries import MAX_SERIES, build_series_count_request, read_series_counts
from atlas.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class Budget:
    """What one request, and the one-scan, may hold.

    `buckets`: histogram buckets one request may hold, half of 7.10's default search.max_buckets. Measured on a
    1 GB node: a window of 2,500 series x 18 buckets (45,000) passes; 4,000 x 18 (72,000) ran it out of heap
    before the limit refused the request. `values`: window surprises held at once by the one-scan (8 bytes each):
    more series make shorter blocks of windows. `keys_page`: series keys per listing request. `workers`: requests
    in flight at once. `scan_block`: window ends scanned together by a backfill (30 days of hourly windows)."""

    buckets: int = MAX_SERIES // 2
    values: int = 4_000_000
    keys_page: int = 10_000
    workers: int = 2
    scan_block: int = 720


DEFAULT_BUDGET = Budget()


def window_buckets_per_series(settings: Settings) -> int:
    """Histogram buckets one series needs in the per-window request: those scored (the window's, or in mode last
    its last one) and the warm-up's before them."""
    s = settings.surprise
    return (s.window // s.interval if s.mode == "max" else 1) + s.warm_up_buckets


@dataclass(frozen=True)
class RequestPlan:
    """How the metrics of a window are asked: `batches` of whole metrics, one request each, asking for at most
    `caps` series of each metric so that no request passes the budget's buckets; `parted`, the metrics whose series
    alone pass it, each in parts of its series (sized by `budget`)."""

    batches: tuple[tuple[str, ...], ...]
    parted: tuple[str, ...]
    caps: Mapping[str, int]
    budget: Budget = field(default=DEFAULT_BUDGET)


def plan_requests(
    client: EsClient,
    settings: Settings,
    metrics: Sequence[str],
    ends: Sequence[datetime],
    budget: Budget = DEFAULT_BUDGET,
) -> RequestPlan:
    """The plan for the windows ending at `ends` (UTC, ascending), from each metric's series count (one request for
    all the windows): a request over the budget makes a node run out of heap before search.max_buckets stops it,
    whether one metric has too many series or several metrics together have. Each batch shares the whole budget
    out by need, so a metric with somewhat more series than counted still fits; one with more than its cap is
    asked in parts (it reports sum_other_doc_count)."""
    body = build_series_count_request(settings, metrics, ends[0], ends[-1])
    counts = read_series_counts(es_client.search(client, settings.source.index, body), metrics)
    per_series = window_buckets_per_series(settings)
    # 5% over the count: above 40,000 series cardinality is an estimate.
    need = {m: max(1, math.ceil(n * 1.05)) * per_series for m, n in counts.items()}
    parted = tuple(m for m in metrics if need[m] > budget.buckets)
    batches: list[list[str]] = []
    used = 0
    for metric in (m for m in metrics if m not in parted):
        if not batches or used + need[metric] > budget.buckets:
            batches.append([])
            used = 0
        batches[-1].append(metric)
        used += need[metric]
    caps: dict[str, int] = {}
    for batch in batches:
        total = sum(need[m] for m in batch)
        caps.update((m, budget.buckets * need[m] // (total * per_series)) for m in batch)
    return RequestPlan(tuple(tuple(b) for b in batches), parted, caps, budget)


def split_keys(keys: Sequence[str], buckets_per_series: int, budget: Budget) -> list[Sequence[str]]:
    """`keys` cut into consecutive parts whose buckets fit the budget."""
    size = max(1, budget.buckets // max(1, buckets_per_series))
    return [keys[i : i + size] for i in range(0, len(keys), size)]


def is_too_many_buckets(exc: EsQueryRejected) -> bool:
    """Whether Elasticsearch refused a request for needing more than search.max_buckets buckets."""
    return "too many buckets" in str(exc).lower().replace("_", " ")


def in_parts(
    what: str, keys: Sequence[str], per_series: int, ask: Callable[[Sequence[str]], T], budget: Budget
) -> list[T]:
    """`ask` of consecutive parts of `keys` sized by the budget, in order; a part the cluster refuses for its
    buckets (a search.max_buckets below the default) is halved until one series is refused, which is an error."""
    answers: list[T] = []
    pending = list(reversed(split_keys(keys, per_series, budget)))
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
