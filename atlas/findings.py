"""The read side: a job's stored anomalies -> events -> grouped events (in one function), the report's data and the
evaluation against labelled intervals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from atlas import evaluate, grouping, results
from atlas.clock import floor_instant, now_utc, window_ends
from atlas.errors import ConfigError
from atlas.es_client import EsClient
from atlas.events import anomaly_events
from atlas.outputs import report
from atlas.records import Anomaly, AnomalyEvent, GroupedEvent, TruthInterval
from atlas.settings import Settings
from atlas.threshold import threshold_points


@dataclass(frozen=True)
class Findings:
    """Stored anomalies (by window end, metric, percentile), their events (by start) and grouped events."""

    anomalies: tuple[Anomaly, ...]
    events: tuple[AnomalyEvent, ...]
    groups: tuple[GroupedEvent, ...]


def read_findings(
    settings: Settings, client: EsClient, start: datetime, end: datetime, group_by: str | None = None
) -> Findings:
    """The job's stored anomalies with window ends in [start, end] (UTC), their events, and those events grouped by
    `group_by` (else `grouping.field`)."""
    found = results.read_anomalies(client, settings, start, end)
    events = anomaly_events(found, settings.surprise.step)
    return Findings(tuple(found), tuple(events), tuple(group_as_configured(settings, events, found, group_by)))


def group_as_configured(
    settings: Settings, events: Sequence[AnomalyEvent], anomalies: Sequence[Anomaly], group_by: str | None = None
) -> list[GroupedEvent]:
    """The grouped events alerts, the report and the evaluation use: `events` grouped by `group_by` (one of
    source.series_fields) else `grouping.field`, with their points among `anomalies`."""
    step, source = settings.surprise.step, settings.source
    if group_by is not None and group_by not in source.series_fields:
        known = ", ".join(source.series_fields)
        raise ConfigError(f"--group-by: {group_by!r} is not one of source.series_fields ({known})")
    return grouping.group_overlapping_events(events, anomalies, source.series_fields, settings.grouping, step, group_by)


def evaluate_job(
    settings: Settings, client: EsClient, truth: Sequence[TruthInterval], start: datetime, end: datetime
) -> dict[str, evaluate.Scores]:
    """Score the job's stored anomalies with window ends in [start, end] (UTC) against labelled intervals; the
    evaluated steps of each metric are the window ends it has a surprise document for."""
    steps: dict[str, list[datetime]] = {}
    for stored in results.read_surprise(client, settings, start, end):
        steps.setdefault(stored.metric, []).append(stored.window_end)
    found = read_findings(settings, client, start, end)
    return evaluate.evaluate(truth, found.anomalies, steps, settings.surprise.step, found.groups)


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
    found = read_findings(settings, client, start, end, group_by)
    return report.ReportData(
        settings.results.job, now_utc(), charts, found.events, found.anomalies, tuple(truth), found.groups, step
    )
