"""The read side: a job's stored anomalies -> events -> grouped events, in one function."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from atlas import grouping, results
from atlas.errors import ConfigError
from atlas.es_client import EsClient
from atlas.events import anomaly_events
from atlas.records import Anomaly, AnomalyEvent, GroupedEvent
from atlas.settings import Settings


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
