"""Anomaly events as text for people and programs: an aligned table, JSON-ready dicts, or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from atlas.clock import format_instant
from atlas.records import Anomaly, AnomalyEvent, event_peaks

_COLUMNS = ("start", "end", "metric", "percentile", "points", "severity", "peak_value", "top_series")


def event_rows(events: Sequence[AnomalyEvent], anomalies: Sequence[Anomaly]) -> list[dict[str, Any]]:
    """One dict per event (UTC ISO-8601 times); top_series names the peak point's most surprising series."""
    peaks = event_peaks(anomalies)
    rows = []
    for e in events:
        peak = peaks.get(e.event_id)
        rows.append(
            {
                "start": format_instant(e.start),
                "end": format_instant(e.end),
                "metric": e.metric,
                "percentile": e.percentile,
                "points": e.points,
                "severity": e.severity,
                "peak_value": e.peak_value,
                "top_series": [s.series for s in peak.top_series] if peak else [],
            }
        )
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """An aligned plain-text table with a header line; `(no anomaly events)` when empty."""
    if not rows:
        return "(no anomaly events)\n"
    cells = [list(_COLUMNS)] + [[_cell(row[c]) for c in _COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    return "".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() + "\n" for line in cells)


def format_csv(rows: Sequence[dict[str, Any]]) -> str:
    """CSV with a header row; top_series joined by spaces."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_COLUMNS)
    writer.writerows([[_cell(row[c]) for c in _COLUMNS] for row in rows])
    return out.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)
