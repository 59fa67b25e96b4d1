"""Group metric events at overlapping hours (per value of a series field, or across metrics) and rate them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from atlas.clock import format_duration, format_instant
from atlas.influencers import event_influencers, field_shares
from atlas.records import SEVERITIES, Anomaly, AnomalyEvent, GroupedEvent, GroupMember, Severity
from atlas.settings import GroupingSettings

SPREAD = "*"  # the value of a group whose events no single field value dominated


def group_overlapping_events(
    events: Sequence[AnomalyEvent],
    anomalies: Sequence[Anomaly],
    series_fields: Sequence[str],
    settings: GroupingSettings,
    step: timedelta,
    field: str | None = None,
) -> list[GroupedEvent]:
    """Events of several metrics at overlapping hours, grouped under a series field's value (or across metrics):
    the grouped events of `events` (their points among `anomalies`), ordered by start then label.

    Grouping field: `field`, else `settings.field`. With a field, each event joins the group of every value of that
    field holding at least `settings.min_share` of its influence, or the group `*` when none does; without one,
    every event joins one group. Within a group, events whose spans [start, end] (window ends, UTC) overlap,
    directly or through others, make one grouped event. Grouped events shorter than the minimum duration of their
    criticality (`settings.min_durations`; n window ends last n * step) are dropped.
    """
    chosen = field if field is not None else settings.field
    by_key: dict[str, list[GroupMember]] = {}
    for member in event_members(events, anomalies, series_fields):
        for key in _group_keys(member, chosen, series_fields, settings.min_share):
            by_key.setdefault(key, []).append(member)
    grouped: list[GroupedEvent] = []
    for key, members in by_key.items():
        for cluster in _overlapping(members):
            group = _grouped_event(chosen, key, cluster, settings)
            duration = group.end - group.start + step
            if duration >= settings.min_durations[SEVERITIES.index(group.criticality)]:
                grouped.append(group)
    return sorted(grouped, key=lambda g: (g.start, g.label, g.group_id))


def event_members(
    events: Sequence[AnomalyEvent], anomalies: Sequence[Anomaly], series_fields: Sequence[str]
) -> list[GroupMember]:
    """Each event (in the given order) with its points among `anomalies` (in time order) and its influencers;
    an event none of whose points is given is left out."""
    points: dict[str, list[Anomaly]] = {}
    for a in anomalies:
        points.setdefault(a.event_id, []).append(a)
    members = []
    for event in events:
        found = tuple(sorted(points.get(event.event_id, ()), key=lambda a: a.window_end))
        if found:
            members.append(GroupMember(event, found, event_influencers(found, series_fields)))
    return members


def criticality(score: int, metrics: int, settings: GroupingSettings) -> Severity:
    """low / medium / high: one step for each of `score_levels` the peak score reaches and each of `metric_levels`
    the number of metrics reaches; 0 or 1 steps is low, 2 medium, 3 or 4 high."""
    steps = sum(score >= level for level in settings.score_levels)
    steps += sum(metrics >= level for level in settings.metric_levels)
    return "high" if steps >= 3 else "medium" if steps == 2 else "low"


def turned_first_order(members: Sequence[GroupMember]) -> list[GroupMember]:
    """Members by which turned first: first anomalous window end, then the higher score of that first point, then
    metric and percentile."""
    return sorted(
        members,
        key=lambda m: (m.anomalies[0].window_end, -m.anomalies[0].score, m.event.metric, m.event.percentile),
    )


def turned_notes(group: GroupedEvent) -> list[str]:
    """For each member, in order: `first`, or how long after the first member it turned (`+2h`)."""
    first = group.members[0].anomalies[0].window_end
    return [
        "first" if k == 0 else f"+{format_duration(m.anomalies[0].window_end - first)}"
        for k, m in enumerate(group.members)
    ]


def _group_keys(member: GroupMember, field: str | None, series_fields: Sequence[str], min_share: float) -> list[str]:
    if field is None:
        return [""]
    shares = field_shares(member.influencers, field, series_fields)
    keys = sorted(value for value, share in shares.items() if share >= min_share)
    return keys or [SPREAD]


def _overlapping(members: Sequence[GroupMember]) -> list[list[GroupMember]]:
    """Clusters of members whose [start, end] spans overlap (a sweep over starts, merging while start <= end)."""
    clusters: list[list[GroupMember]] = []
    end: datetime | None = None
    for member in sorted(members, key=lambda m: (m.event.start, m.event.end, m.event.event_id)):
        if clusters and end is not None and member.event.start <= end:
            clusters[-1].append(member)
            end = max(end, member.event.end)
        else:
            clusters.append([member])
            end = member.event.end
    return clusters


def _grouped_event(field: str | None, key: str, members: list[GroupMember], s: GroupingSettings) -> GroupedEvent:
    ordered = tuple(turned_first_order(members))
    start = min(m.event.start for m in members)
    metrics = len({m.event.metric for m in members})
    label = f"{field}={key}" if field is not None else "metrics"
    return GroupedEvent(
        group_id=f"{label}|{format_instant(start)}",
        field=field,
        value=key if field is not None else None,
        start=start,
        end=max(m.event.end for m in members),
        criticality=criticality(max(m.score for m in members), metrics, s),
        members=ordered,
    )
