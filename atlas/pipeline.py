"""The job, stage by stage: pending windows -> surprise (in Elasticsearch) -> results -> threshold -> anomalies."""

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

from atlas import es_client, evaluate, findings, indices, results, scan, state
from atlas.clock import aligned_instants, floor_instant, format_instant, now_utc
from atlas.errors import ConfigError
from atlas.es_client import EsClient
from atlas.events import anomaly_events, event_start
from atlas.outputs import notify, report
from atlas.queries import combined_metric_name
from atlas.records import Anomaly, AnomalyEvent, SeriesSurprise, TruthInterval, WindowSurprise
from atlas.settings import Settings
from atlas.surprise import (
    check_source_fields,
    compute_combined_surprise,
    compute_top_series,
    compute_window_surprise,
    resolve_metrics,
)
from atlas.threshold import select_anomalies, threshold_points

CHUNK = 24  # windows computed, written and recorded as done together
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


def run_once(
    settings: Settings, client: EsClient, now: datetime, *, dry_run: bool = False, progress: Progress | None = None
) -> RunResult:
    """Process every complete window after the last one done, up to `now` (UTC), holding the job's lease."""
    es_client.require_script_modules(client)
    indices.require_result_indices(client, settings)
    check_source_fields(client, settings)
    if dry_run:
        ends = pending_windows(settings, state.read_last_window_end(client, settings), now)
        return _process(settings, client, ends, dry_run=True, lease=None, progress=progress)[0]
    owner = state.current_owner()
    with _lease_given_back_on_failure(client, settings, owner):
        lease = state.acquire_lease(client, settings, now_utc(), owner)
        ends = pending_windows(settings, lease.last_window_end, now)
        outcome, latest = _process(settings, client, ends, dry_run=False, lease=lease, progress=progress)
        lease = latest or lease
        deliveries, lease = _notify(settings, client, outcome, lease, now)
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


def _notify(
    settings: Settings, client: EsClient, outcome: RunResult, lease: state.Lease, now: datetime
) -> tuple[list[notify.Delivery], state.Lease]:
    """Send the run's events, and those an earlier run could not deliver, unless sent within `alerts.realert` (or
    older than it); record those that reached at least one channel, and keep the others pending for the next run."""
    realert = settings.alerts.realert
    pending = state.pending_events(lease)
    known = {e.event_id for e in outcome.events}
    retried = results.read_event_anomalies(client, settings, [e for e in pending if e not in known])
    events = [*outcome.events, *anomaly_events(retried, settings.surprise.step)]
    fresh = notify.select_unsent(events, state.sent_events(lease), now, realert)
    groups = findings.group_as_configured(settings, events, [*outcome.anomalies, *retried])
    notes = notify.build_notifications(groups, settings.results.job, {e.event_id for e in fresh})
    deliveries = notify.send_notifications(notes, settings.alerts)
    delivered = {d.group for d in deliveries if d.sent}
    attempted = {d.group for d in deliveries}  # none when no channel is configured: nothing is pending then
    sent_ids = list(dict.fromkeys(e for n in notes if n.group in delivered for e in n.event_ids))
    failed = (e for n in notes if n.group in attempted - delivered for e in n.event_ids if e not in sent_ids)
    failed_ids = list(dict.fromkeys(failed))
    if sent_ids or failed_ids or pending:
        lease = state.record_sent(client, settings, lease, sent_ids, now, keep=realert, pending=failed_ids)
    return deliveries, lease


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
        outcome, latest = _process(
            settings, client, ends, dry_run=False, lease=lease, progress=progress, record=record, one_scan=True
        )
        state.release_lease(client, settings, latest or lease, now_utc())
    return outcome


def _process(
    settings: Settings,
    client: EsClient,
    ends: Sequence[datetime],
    *,
    dry_run: bool,
    lease: state.Lease | None,
    progress: Progress | None,
    record: bool = True,
    one_scan: bool = False,
) -> tuple[RunResult, state.Lease | None]:
    """Compute, write and threshold `ends` chunk by chunk; with a lease, record each chunk as done (if `record`).
    `one_scan` (backfill) computes many windows per scan of the source (atlas/scan.py), else one request per window.

    If the run fails, the lease stays until it expires or its process is seen dead; the next run redoes the chunk.
    """
    if not ends:
        return RunResult((), 0, (), (), dry_run), lease
    metrics = resolve_metrics(client, settings)
    combine_by = settings.surprise.combine_by
    watched = [*metrics, *([combined_metric_name(combine_by)] if combine_by else [])]
    written = 0
    anomalies: dict[tuple[str, float, datetime], Anomaly] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        compute: scan.WindowComputer = (
            scan.scanning_computer(client, settings, metrics, ends)
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
            if not dry_run:
                written += results.write_surprise(client, settings, fresh)
            found = threshold_windows(settings, client, watched, chunk[0], chunk[-1], fresh if dry_run else ())
            found, named = _name_top_series(client, settings, metrics, found, fresh, known)
            if named and not dry_run:
                results.write_surprise(client, settings, named)
            if not dry_run:
                results.write_anomalies(client, settings, found)
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
    combined score have them), else asked once per metric and window. Also returns those windows' results with
    their top series, to be written again."""
    computed = {(r.metric, r.window_end): r for r in fresh}
    missing = sorted({(a.metric, a.window_end) for a in anomalies if not a.top_series} & computed.keys())
    tops = {
        key: known.get(key) or (compute_top_series(client, settings, *key) if key[0] in metrics else ())
        for key in missing
    }
    named = [dataclasses.replace(computed[key], top_series=top) for key, top in tops.items() if top]
    return [
        dataclasses.replace(a, top_series=tops.get((a.metric, a.window_end), a.top_series)) for a in anomalies
    ], named


def window_by_window(
    client: EsClient, settings: Settings, metrics: Sequence[str], pool: ThreadPoolExecutor, chunk: Sequence[datetime]
) -> list[WindowSurprise]:
    """One request per window of `chunk`, `pool`'s workers at a time; the series are counted once for the chunk."""
    plan = scan.plan_requests(client, settings, metrics, chunk)
    found = pool.map(lambda t: compute_window_surprise(client, settings, metrics, t, plan), chunk)
    return [r for rs in found for r in rs]


def threshold_windows(
    settings: Settings,
    client: EsClient,
    metrics: Sequence[str],
    first: datetime,
    last: datetime,
    unstored: Sequence[WindowSurprise] = (),
) -> list[Anomaly]:
    """The anomalies of every event with a point in [first, last] (UTC), from the stored percentile series.

    The series is read from far enough back that each such event, and every point's threshold window, is whole:
    the threshold window plus the shortest reportable event before `first`, or the start of an event already
    running at `first - step`. So a run over a few windows writes exactly what one backfill over all would.
    """
    step, th = settings.surprise.step, settings.threshold
    reach = th.lookback + math.ceil(th.min_duration / step)
    running = results.read_anomalies(client, settings, first - step, first - step)
    starts = [event_start(a.event_id) for a in running]
    fetch_from = min([first - reach * step, *(s - th.lookback * step for s in starts)])
    stored = results.read_surprise(client, settings, fetch_from, last, metrics)
    series = [*stored, *unstored]
    tops: dict[tuple[str, datetime], tuple[SeriesSurprise, ...]] = {
        (r.metric, r.window_end): r.top_series for r in series
    }
    found: list[Anomaly] = []
    for metric in metrics:
        for p in settings.surprise.percentiles:
            values = results.percentile_series(series, metric, p, fetch_from, last, step)
            top = {end: top for (m, end), top in tops.items() if m == metric}
            points = select_anomalies(metric, p, values, th, step, top)
            touching = {a.event_id for a in points if a.window_end >= first}
            found.extend(a for a in points if a.event_id in touching)
    return found


def evaluate_job(
    settings: Settings, client: EsClient, truth: Sequence[TruthInterval], start: datetime, end: datetime
) -> dict[str, evaluate.Scores]:
    """Score the job's stored anomalies with window ends in [start, end] (UTC) against labelled intervals; the
    evaluated steps of each metric are the window ends it has a surprise document for."""
    steps: dict[str, list[datetime]] = {}
    for stored in results.read_surprise(client, settings, start, end):
        steps.setdefault(stored.metric, []).append(stored.window_end)
    found = findings.read_findings(settings, client, start, end)
    return evaluate.evaluate(truth, found.anomalies, steps, settings.surprise.step, found.groups)


def window_ends(first: datetime, last: datetime, step: timedelta, what: str) -> list[datetime]:
    """The window ends first, first + step, ... up to last (UTC); ConfigError, before any is built, when they are more
    than clock.MAX_WINDOWS (`what` names them)."""
    try:
        return aligned_instants(first, last, step, what)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def report_data(
    settings: Settings,
    client: EsClient,
    start: datetime,
    end: datetime,
    truth: Sequence[TruthInterval] = (),
    group_by: str | None = None,
) -> report.ReportData:
    """The stored percentile series of window ends in [start, end] (UTC), scored by the threshold stage, with the
    stored anomalies and their events, ready for the report."""
    step = settings.surprise.step
    window_ends(floor_instant(start, step), end, step, "window ends to report")  # the charts hold one point each
    stored = results.read_surprise(client, settings, start, end)
    metrics = sorted({r.metric for r in stored})
    charts = tuple(
        report.ReportChart(
            m, p, tuple(threshold_points(results.percentile_series(stored, m, p, start, end, step), settings.threshold))
        )
        for m in metrics
        for p in settings.surprise.percentiles
    )
    found = findings.read_findings(settings, client, start, end, group_by)
    return report.ReportData(
        settings.results.job, now_utc(), charts, found.events, found.anomalies, tuple(truth), found.groups, step
    )
