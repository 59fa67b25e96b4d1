"""Anomaly events, one row per metric event or per grouped event, as text for people and programs: an aligned
table, JSON-ready dicts, or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from atlas.clock import format_duration, format_instant
from atlas.influencers import format_influencers
from atlas.records import GroupedEvent, GroupMember, Influencer

EVENT_COLUMNS = (
    "start",
    "end",
    "metric",
    "percentile",
    "points",
    "severity",
    "score",
    "actual",
    "typical",
    "threshold",
    "influencers",
)
GROUP_COLUMNS = ("start", "end", "group", "criticality", "score", "metrics", "influencers")


def event_rows(members: Sequence[GroupMember]) -> list[dict[str, Any]]:
    """One dict per metric event (UTC ISO-8601 times): score, actual, typical and threshold of its peak point (the
    highest score), and its influencers as {field, value, share} (field `series` for whole series keys)."""
    rows = []
    for m in members:
        e, peak = m.event, m.peak
        rows.append(
            {
                "start": format_instant(e.start),
                "end": format_instant(e.end),
                "metric": e.metric,
                "percentile": e.percentile,
                "points": e.points,
                "severity": e.severity,
                "score": peak.score,
                "actual": peak.value,
                "typical": peak.mean,
                "threshold": peak.threshold,
                "influencers": [{"field": i.field, "value": i.value, "share": i.share} for i in m.influencers],
            }
        )
    return rows


def group_rows(groups: Sequence[GroupedEvent]) -> list[dict[str, Any]]:
    """One dict per grouped event: its label, criticality, highest score, and its metrics in the order they turned
    (`metric pNN` and how long after the first), each with its score and influencers."""
    rows = []
    for g in groups:
        first = g.members[0].anomalies[0].window_end
        rows.append(
            {
                "start": format_instant(g.start),
                "end": format_instant(g.end),
                "group": g.label,
                "criticality": g.criticality,
                "score": g.score,
                "metrics": [
                    {
                        "metric": m.event.metric,
                        "percentile": m.event.percentile,
                        "turned": format_instant(m.anomalies[0].window_end),
                        "after_first": format_duration(m.anomalies[0].window_end - first),
                        "score": m.score,
                        "severity": m.event.severity,
                    }
                    for m in g.members
                ],
                "influencers": [
                    {
                        "metric": m.event.metric,
                        "percentile": m.event.percentile,
                        "top": format_influencers(m.influencers),
                    }
                    for m in g.members
                ],
            }
        )
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """An aligned plain-text table with a header line; `(no anomaly events)` when empty."""
    if not rows:
        return "(no anomaly events)\n"
    columns = _columns(rows)
    cells = [list(columns)] + [[_cell(column, row[column]) for column in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() + "\n" for line in cells)


def format_csv(rows: Sequence[dict[str, Any]], grouped: bool = False) -> str:
    """CSV with a header row (also when empty); lists are written as the table writes them."""
    columns = GROUP_COLUMNS if grouped else EVENT_COLUMNS
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_cell(column, row[column]) for column in columns] for row in rows])
    return out.getvalue()


def _columns(rows: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    return GROUP_COLUMNS if "group" in rows[0] else EVENT_COLUMNS


def _cell(column: str, value: Any) -> str:
    if column == "influencers" and value and "field" in value[0]:
        return format_influencers([Influencer(i["field"], i["value"], i["share"]) for i in value])
    if column == "influencers":
        return " | ".join(f"{i['metric']} p{i['percentile']:g}: {i['top']}" for i in value)
    if column == "metrics":
        return ", ".join(
            f"{m['metric']} p{m['percentile']:g} (score {m['score']}{'' if k == 0 else ', +' + m['after_first']})"
            for k, m in enumerate(value)
        )
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)
