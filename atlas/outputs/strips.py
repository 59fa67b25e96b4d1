"""The report's leading-indicator strips: per metric, cells coloured by severity over time, aligned across metrics."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from atlas.clock import format_instant
from atlas.grouping import turned_notes
from atlas.records import SEVERITIES, Anomaly, GroupedEvent, Severity

STRIP_COLOURS = {"normal": "#5cb85c", "low": "#f2c14e", "medium": "#f08a24", "high": "#d62828", "missing": "#e4e4e4"}
LABEL_WIDTH, ROW_HEIGHT, ROW_GAP, AXIS_HEIGHT = 190, 16, 5, 22
Present = Mapping[tuple[str, float], set[datetime]]  # (metric, percentile) -> window ends with a value


@dataclass(frozen=True)
class StripRow:
    """One strip: its label, the state of each window end (`normal`, `missing` or a severity) and, when it turned,
    the position of its first anomalous cell and what to write after the label (`first`, `+2h`)."""

    label: str
    cells: tuple[str, ...]
    first: int | None
    note: str = ""


def overview_rows(ends: Sequence[datetime], present: Present, anomalies: Sequence[Anomaly]) -> list[StripRow]:
    """One row per metric (by name): at each window end the worst severity of its percentiles' anomalies there,
    else `normal` where any of its percentiles has a value, else `missing`."""
    seen: dict[str, set[datetime]] = {}
    for (metric, _), found in present.items():
        seen.setdefault(metric, set()).update(found)
    worst: dict[str, dict[datetime, Severity]] = {metric: {} for metric in seen}
    for a in anomalies:
        cells = worst.setdefault(a.metric, {})
        if SEVERITIES.index(a.severity) >= SEVERITIES.index(cells.get(a.window_end, "low")):
            cells[a.window_end] = a.severity
    return [_row(metric, ends, seen.get(metric, set()), worst[metric]) for metric in sorted(worst)]


def group_strip_rows(
    group: GroupedEvent, present: Present, step: timedelta, margin: int = 3
) -> tuple[list[datetime], list[StripRow]]:
    """The window ends from `margin` steps before the group to `margin` after, and one row per metric and
    percentile of its members (two events of one metric share a row) in the order they turned, noting how long
    after the first each turned."""
    count = (group.end - group.start) // step + 1 + 2 * margin
    ends = [group.start - margin * step + k * step for k in range(count)]
    severities: dict[tuple[str, float], dict[datetime, Severity]] = {}
    notes: dict[tuple[str, float], str] = {}
    for member, note in zip(group.members, turned_notes(group), strict=True):
        key = (member.event.metric, member.event.percentile)
        notes.setdefault(key, note)
        severities.setdefault(key, {}).update({a.window_end: a.severity for a in member.anomalies})
    rows = [
        _row(f"{metric} p{p:g}", ends, present.get((metric, p), set()) | set(found), found, notes[(metric, p)])
        for (metric, p), found in severities.items()
    ]
    return ends, rows


def render_strips(ends: Sequence[datetime], rows: Sequence[StripRow], width: int, outline_first: bool) -> str:
    """The rows as one SVG `width` pixels wide: labels on the left, cells over the rest, a time axis below; runs of
    one state drawn as one rectangle; with `outline_first`, each row's first anomalous cell framed in black."""
    if not ends or not rows:
        return "<p>no windows</p>"
    left, cell = LABEL_WIDTH, (width - LABEL_WIDTH - 8) / len(ends)
    height = len(rows) * (ROW_HEIGHT + ROW_GAP) + AXIS_HEIGHT
    out = [f"<svg class='strips' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'>"]
    for r, row in enumerate(rows):
        y = r * (ROW_HEIGHT + ROW_GAP)
        label = escape_html(row.label) + (f" <tspan class='note'>{escape_html(row.note)}</tspan>" if row.note else "")
        out.append(f"<text x='4' y='{y + ROW_HEIGHT - 4}'>{label}</text>")
        for start, stop, state in _runs(row.cells):
            out.append(
                f"<rect class='cell {state}' fill='{STRIP_COLOURS[state]}' x='{left + start * cell:.2f}' y='{y}'"
                f" width='{(stop - start) * cell:.2f}' height='{ROW_HEIGHT}'><title>{escape_html(row.label)}: {state}"
                f" from {format_instant(ends[start])}</title></rect>"
            )
        if outline_first and row.first is not None:
            out.append(
                f"<rect class='first' x='{left + row.first * cell:.2f}' y='{y}' width='{max(cell, 2):.2f}'"
                f" height='{ROW_HEIGHT}'/>"
            )
    axis_y = len(rows) * (ROW_HEIGHT + ROW_GAP) + 14
    picks = sorted({0, len(ends) // 4, len(ends) // 2, 3 * len(ends) // 4, len(ends) - 1})
    for k, i in enumerate(picks):
        anchor = "start" if k == 0 else "end" if k == len(picks) - 1 and len(picks) > 1 else "middle"
        x = left + (i + 0.5) * cell
        hour = escape_html(format_instant(ends[i])[:13])
        out.append(f"<text x='{x:.1f}' y='{axis_y}' text-anchor='{anchor}'>{hour}h</text>")
    out.append("</svg>")
    return "".join(out)


def _row(
    label: str, ends: Sequence[datetime], seen: set[datetime], severities: Mapping[datetime, Severity], note: str = ""
) -> StripRow:
    cells = tuple(severities.get(t, "normal" if t in seen else "missing") for t in ends)
    first = next((i for i, t in enumerate(ends) if t in severities), None)
    return StripRow(label, cells, first, note if first is not None else "")


def _runs(cells: Sequence[str]) -> list[tuple[int, int, str]]:
    """Maximal runs of one state: (first index, index after the last, state)."""
    runs: list[tuple[int, int, str]] = []
    for i, state in enumerate(cells):
        if runs and runs[-1][2] == state and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1, state)
        else:
            runs.append((i, i + 1, state))
    return runs


def escape_html(text: str) -> str:
    """`text` safe inside an HTML element or a quoted attribute (the report's and the strips' one escaping)."""
    return html.escape(str(text), quote=True)
