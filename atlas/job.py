"""The job: window ends -> surprise (computed in Elasticsearch) -> threshold -> results written, chunk by chunk,
recorded as done under the job's lease; `atlas run` then hands the events to alerting."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from atlas import alerting, es_client, indices, state
from atlas.clock import floor_instant, format_duration, format_instant, now_utc, window_ends
from atlas.errors import ConfigError
from atlas.es_client import EsClient
from atlas.events import anomaly_events, event_start
from atlas.outputs import notify
from atlas.queries import combined_metric_name, window_range
from atlas.records import Anomaly, AnomalyEvent, SeriesSurprise, WindowSurprise
from atlas.results import percentile_series
from atlas.settings import Settings
from atlas.store import ElasticStore, MemoryStore, ResultStore
from atlas.surprise import (
    WindowComputer,
    check_source_fields,
    compute_combined_surprise,
    compute_top_series,
    compute_window_surprise,
    plan_requests,
    resolve_metrics,
    scanning_computer,
)
from atlas.threshold import select_anomalies

CHUNK = 24  # windows computed, thresholded, written and recorded as done together
Progress = Callable[[int], None]


@dataclass(frozen=True)
class RunResult:
    """What one run or backfill did: the window ends it processed and the anomalies of the events they touch."""

    windows: tuple[datetime, ...]
    surprise_documents: int
    anomalies: tuple[Anomaly, ...]
    events: tuple[AnomalyEvent, ...]
    dry_run: bool
    deliveries: tuple[notify.Delivery, ...] = ()

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts, the window range and the events (UTC ISO-8601)."""
        return {
            "windows": len(self.windows),
            "first_window_end": format_instant(self.windows[0]) if self.windows else None,
            "last_window_end": format_instant(self.windows[-1]) if self.windows else None,
            "surprise_documents": self.surprise_documents,
            "anomalies": len(self.anomalies),
            "events": [
                {
                    "metric": e.metric,
                    "percentile": e.percentile,
                    "start": format_instant(e.start),
                    "end": format_instant(e.end),
                    "points": e.points,
                    "severity": e.severity,
                }
                for e in self.events
            ],
            "dry_run": self.dry_run,
            "notifications": [
                {"channel": d.channel, "group": d.group, "sent": d.sent, "reason": d.reason} for d in self.deliveries
            ],
        }


def pending_windows(settings: Settings, last_done: datetime | None, now: datetime) -> list[datetime]:
    """Complete window ends (end <= now - ingest delay, aligned to step) after `last_done`; the latest one only
    when the job has never run."""
    step = settings.surprise.step
    latest = floor_instant(now - settings.source.ingest_delay, step)
    if last_done is None:
        return [latest]
    return window_ends(last_done + step, latest, step, "window ends to catch up (use atlas backfill)")


def schedule_warning(settings: Settings, result: RunResult, took: timedelta) -> str | None:
    """A warning when a run spent longer than `surprise.step` per window: a job started every step falls behind
    (each run catches up, but the results come later and later)."""
    step = settings.surprise.step
    if not result.windows:
        return None
    per_window = took / len(result.windows)
    if per_window <= step:
        return None
    every = format_duration(step)
    return (
        f"this run took {per_window.total_seconds():.0f} s per window, longer than surprise.step ({every}): a job"
        f" started every {every} falls behind; run it less often with a longer step, or read fewer"
        " buckets of each series (a shorter surprise.scale_window or a longer interval; docs/scheduling.md)"
    )


def run_once(
    settings: Settings, client: EsClient, now: datetime, *, dry_run: bool = False, progress: Progress | None = None
) -> RunResult:
    """Process every complete window after the last one done, up to `now` (UTC), holding the job's lease, then alert
    on the events found; a dry run takes no lease, keeps its results in memory (MemoryStore) and sends nothing."""
    es_client.require_script_modules(client)
    indices.require_result_indices(client, settings)
    check_source_fields(client, settings)
    if dry_run:
        ends = pending_windows(settings, state.read_last_window_end(client, settings), now)
        memory = MemoryStore(client, settings)
        return _process(settings, client, memory, ends, dry_run=True, lease=None, progress=progress)[0]
    owner = state.current_owner()
    with _lease_given_back_on_failure(client, settings, owner):
        lease = state.acquire_lease(client, settings, now_utc(), owner)
        ends = pending_windows(settings, lease.last_window_end, now)
        stored = ElasticStore(client, settings)
        outcome, latest = _process(settings, client, stored, ends, dry_run=False, lease=lease, progress=progress)
        lease = latest or lease
        deliveries, lease = alerting.alert(settings, client, outcome.events, outcome.anomalies, lease, now)
        state.release_lease(client, settings, lease, now_utc())
    return dataclasses.replace(outcome, deliveries=tuple(deliveries))


@contextmanager
def _lease_given_back_on_failure(client: EsClient, settings: Settings, owner: str) -> Iterator[None]:
    """A run that fails or is interrupted (Ctrl-C, SIGTERM), even while taking the lease, gives back the lease
    `owner` holds, if any; the next run redoes the unrecorded chunk."""
    try:
        yield
    except BaseException:
        state.release_after_failure(client, settings, owner, now_utc())
        raise


def backfill(
    settings: Settings, client: EsClient, start: datetime, end: datetime, *, progress: Progress | None = None
) -> RunResult:
    """Recompute every window ending in [start, end] (UTC, aligned to step), holding the job's lease."""
    step = settings.surprise.step
    first = floor_instant(start, step) + (step if floor_instant(start, step) < start else timedelta(0))
    ends = window_ends(first, floor_instant(end, step), step, "window ends to backfill")
    if not ends:
        raise ConfigError(f"no window ends between {format_instant(start)} and {format_instant(end)}")
    es_client.require_script_modules(client)
    indices.require_result_indices(client, settings)
    check_source_fields(client, settings)
    owner = state.current_owner()
    with _lease_given_back_on_failure(client, settings, owner):
        lease = state.acquire_lease(client, settings, now_utc(), owner)
        last = lease.last_window_end
        # Only a backfill that continues (or overlaps) the job's progress moves it on; a distant one leaves a hole.
        record = last is None or ends[0] <= last + step
        stored = ElasticStore(client, settings)
        outcome, latest = _process(
            settings, client, stored, ends, dry_run=False, lease=lease, progress=progress, record=record, one_scan=True
        )
        state.release_lease(client, settings, latest or lease, now_utc())
    return outcome


def _process(
    settings: Settings,
    client: EsClient,
    store: ResultStore,
    ends: Sequence[datetime],
    *,
    dry_run: bool,
    lease: state.Lease | None,
    progress: Progress | None,
    record: bool = True,
    one_scan: bool = False,
) -> tuple[RunResult, state.Lease | None]:
    """Compute, threshold and write `ends` to `store` chunk by chunk; with a lease, record each chunk as done (if
    `record`). `one_scan` (backfill) computes many windows per scan of the source (atlas/surprise/), else one request
    per window. The threshold reads the chunk's surprise as just computed; each chunk's surprise is written once.

    If the run fails, the lease stays until it expires or its process is seen dead; the next run redoes the chunk.
    """
    if not ends:
        return RunResult((), 0, (), (), dry_run), lease
    combine_by = settings.surprise.combine_by
    # the metrics with documents in what the windows read (the combined score sums over every metric of the index)
    read = (window_range(settings.surprise, ends[0]).fetch_start, ends[-1])
    metrics = resolve_metrics(client, settings, None if combine_by else read)
    watched = [*metrics, *([combined_metric_name(combine_by)] if combine_by else [])]
    written = 0
    anomalies: dict[tuple[str, float, datetime], Anomaly] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        compute: WindowComputer = (
            scanning_computer(client, settings, metrics, ends)
            if one_scan
            else functools.partial(window_by_window, client, settings, metrics, pool)
        )
        for start in range(0, len(ends), CHUNK):
            chunk = list(ends[start : start + CHUNK])
            computed = compute(chunk)
            if combine_by:
                computed += [r for t in chunk for r in compute_combined_surprise(client, settings, metrics, t)]
            # Only anomalies name their top series: a run, which does not ask for them, and a backfill, which has
            # them for every window, write the same documents.
            known = {(r.metric, r.window_end): r.top_series for r in computed if r.top_series}
            fresh = [dataclasses.replace(r, top_series=()) for r in computed]
            found = threshold_windows(settings, store, watched, chunk[0], chunk[-1], fresh)
            found, fresh = _name_top_series(client, settings, metrics, found, fresh, known)
            written += store.write_surprise(fresh)
            store.write_anomalies(found)
            anomalies.update(((a.metric, a.percentile, a.window_end), a) for a in found)
            if lease is not None:
                latest = chunk[-1] if record else None
                lease = state.record_progress(client, settings, lease, latest, now_utc())
            if progress is not None:
                progress(len(chunk))
    ordered = tuple(sorted(anomalies.values(), key=lambda a: (a.window_end, a.metric, a.percentile)))
    events = tuple(anomaly_events(ordered, settings.surprise.step))
    return RunResult(tuple(ends), written, ordered, events, dry_run), lease


def _name_top_series(
    client: EsClient,
    settings: Settings,
    metrics: Sequence[str],
    anomalies: Sequence[Anomaly],
    fresh: Sequence[WindowSurprise],
    known: Mapping[tuple[str, datetime], tuple[SeriesSurprise, ...]],
) -> tuple[list[Anomaly], list[WindowSurprise]]:
    """Give the anomalies of the windows just computed their top series: `known` (the one-scan backfill and the
    combined score have them), else asked once per metric and window. Also returns the windows just computed, those
    of the anomalies with their top series."""
    computed = {(r.metric, r.window_end) for r in fresh}
    missing = sorted({(a.metric, a.window_end) for a in anomalies if not a.top_series} & computed)
    tops = {
        key: known.get(key) or (compute_top_series(client, settings, *key) if key[0] in metrics else ())
        for key in missing
    }
    named = [dataclasses.replace(a, top_series=tops.get((a.metric, a.window_end), a.top_series)) for a in anomalies]
    return named, [
        dataclasses.replace(r, top_series=top) if (top := tops.get((r.metric, r.window_end))) else r for r in fresh
    ]


def window_by_window(
    client: EsClient, settings: Settings, metrics: Sequence[str], pool: ThreadPoolExecutor, chunk: Sequence[datetime]
) -> list[WindowSurprise]:
    """One request per window of `chunk`, `pool`'s workers at a time; the series are counted once for the chunk."""
    plan = plan_requests(client, settings, metrics, chunk)
    found = pool.map(lambda t: compute_window_surprise(client, settings, metrics, t, plan), chunk)
    return [r for rs in found for r in rs]


def threshold_windows(
    settings: Settings,
    store: ResultStore,
    metrics: Sequence[str],
    first: datetime,
    last: datetime,
    fresh: Sequence[WindowSurprise] = (),
) -> list[Anomaly]:
    """The anomalies of every event with a point in [first, last] (UTC), from the percentile series: the stored
    one with `fresh` (surprise just computed, not yet written) laid over it.

    The series is read from far enough back that each such event, and every point's threshold window, is whole:
    the threshold window plus the shortest reportable event before `first`, or the start of an event already
    running at `first - step`. So a run over a few windows writes exactly what one backfill over all would.
    """
    step, th = settings.surprise.step, settings.threshold
    reach = th.lookback + math.ceil(th.min_duration / step)
    running = store.read_anomalies(first - step, first - step)
    starts = [event_start(a.event_id) for a in running]
    fetch_from = min([first - reach * step, *(s - th.lookback * step for s in starts)])
    series = [*store.read_surprise(fetch_from, last, metrics), *fresh]
    tops: dict[tuple[str, datetime], tuple[SeriesSurprise, ...]] = {
        (r.metric, r.window_end): r.top_series for r in series
    }
    found: list[Anomaly] = []
    for metric in metrics:
        for p in settings.surprise.percentiles:
            values = percentile_series(series, metric, p, fetch_from, last, step)
            top = {end: top for (m, end), top in tops.items() if m == metric}
            points = select_anomalies(metric, p, values, th, step, top)
            touching = {a.event_id for a in points if a.window_end >= first}
            found.extend(a for a in points if a.event_id in touching)
    return found
