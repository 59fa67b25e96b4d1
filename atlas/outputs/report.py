"""A self-contained HTML report (inline SVG, no scripts) of surprise, threshold band, strips, grouped events and
anomalies, and its PNG."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from atlas import files
from atlas.clock import format_duration, format_instant
from atlas.errors import OutputError, ToolMissing
from atlas.grouping import turned_notes
from atlas.influencers import format_influencers
from atlas.records import SEVERITIES, Anomaly, AnomalyEvent, GroupedEvent, GroupMember, TruthInterval, event_peaks
from atlas.scoring import format_number
from atlas.threshold import ThresholdPoint

from . import strips
from .strips import escape_html as _e

SEVERITY_COLOURS = {"low": "#f2c14e", "medium": "#f08a24", "high": "#d62828"}
MAX_DETAILS = 10  # grouped events drawn with their own strips (the most critical, then the earliest)
_W, _H, _PAD = 1200, 220, 48
_PAGE_W = _W + 2 * _PAD


@dataclass(frozen=True)
class ReportChart:
    """One metric's percentile series with its threshold, as the threshold stage scored it."""

    metric: str
    percentile: float
    points: tuple[ThresholdPoint, ...]


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows; times are UTC, `step` is the spacing of window ends."""

    job: str
    generated_at: datetime
    charts: tuple[ReportChart, ...]
    events: tuple[AnomalyEvent, ...]
    anomalies: tuple[Anomaly, ...]
    truth: tuple[TruthInterval, ...] = ()
    groups: tuple[GroupedEvent, ...] = ()
    step: timedelta = timedelta(hours=1)


def render_report(data: ReportData) -> str:
    """The report as one HTML document; the same data always gives the same text."""
    ends = sorted({p.window_end for c in data.charts for p in c.points})
    span = f"{format_instant(ends[0])} to {format_instant(ends[-1])}" if ends else "no windows"
    counts = ", ".join(f"{sum(g.criticality == c for g in data.groups)} {c}" for c in reversed(SEVERITIES))
    present = {(c.metric, c.percentile): {p.window_end for p in c.points if p.value is not None} for c in data.charts}
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>atlas report: {_e(data.job)}</title><style>{_CSS}</style></head><body>",
        f"<h1>atlas report: job {_e(data.job)}</h1>",
        f"<p>{_e(span)} &middot; {len(data.groups)} grouped events ({counts}) &middot; {len(data.events)} metric"
        f" events &middot; {len(data.anomalies)} anomalous points &middot; generated"
        f" {_e(format_instant(data.generated_at))}</p>",
        _legend(bool(data.truth)),
        "<h2>Which metric turned first</h2>",
        strips.render_strips(ends, strips.overview_rows(ends, present, data.anomalies), _PAGE_W, False),
    ]
    detailed = _detailed(data.groups)
    if detailed:
        more = len(data.groups) - len(detailed)
        parts.append(
            "<h2>Grouped events, most critical first</h2>"
            + (f"<p class='note'>{more} more in the table below.</p>" if more else "")
        )
    for group in detailed:
        parts.append(_group_detail(group, present, data.step))
    for chart in data.charts:
        parts.append(f"<h2>{_e(chart.metric)} p{chart.percentile:g}</h2>")
        parts.append(_svg(chart, [t for t in data.truth if t.metric in (None, chart.metric)], data.anomalies))
    parts.append(_groups_table(data.groups))
    parts.append(_events_table(data.events, data.groups))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def page_height(data: ReportData) -> int:
    """The pixel height the report needs at its fixed width (an estimate, a little generous)."""
    metrics = len({c.metric for c in data.charts})
    row = strips.ROW_HEIGHT + strips.ROW_GAP
    details = sum(100 + len(g.members) * (row + 40) for g in _detailed(data.groups))
    tables = 150 + 28 * len(data.groups) + 38 * len(data.events)
    charts = sum(300 if any(p.value is not None for p in c.points) else 70 for c in data.charts)
    return 260 + metrics * row + details + charts + tables


def _detailed(groups: Sequence[GroupedEvent]) -> list[GroupedEvent]:
    """The grouped events drawn with their own strips: the most critical, then the earliest, MAX_DETAILS at most."""
    return sorted(groups, key=lambda g: (-SEVERITIES.index(g.criticality), g.start, g.label))[:MAX_DETAILS]


def write_report(data: ReportData, out: Path, png: Path | None = None) -> None:
    """Write the HTML (files.write_output: atomically, or through to a device or pipe); with `png`, also a
    screenshot of it from headless Chromium, taken before either is written so that a failure writes neither."""
    text = render_report(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    image = screenshot(text, height=page_height(data)) if png is not None else None
    files.write_output(out, text, "--out")
    if png is not None and image is not None:
        files.write_output(png, image, "--png")


def screenshot(html: str, height: int) -> bytes:
    """The PNG bytes of an HTML page rendered by headless Chromium (in a temporary directory of its own)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise ToolMissing("chromium not found: install it (apt-get install chromium) to write --png")
    with tempfile.TemporaryDirectory(prefix="atlas-report-") as directory:
        page, png = Path(directory) / "report.html", Path(directory) / "report.png"
        page.write_text(html, encoding="utf-8")
        cmd = [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            f"--screenshot={png}",
            f"--window-size={_PAGE_W + 48},{min(height, 16000)}",
            page.as_uri(),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        except subprocess.TimeoutExpired as exc:
            raise OutputError("chromium did not render the report within 120 s") from exc
        if proc.returncode != 0 or not png.is_file():
            raise OutputError(f"chromium could not render the report (exit code {proc.returncode})")
        return png.read_bytes()


def _group_detail(group: GroupedEvent, present: strips.Present, step: timedelta) -> str:
    ends, rows = strips.group_strip_rows(group, present, step)
    hours = format_duration(group.end - group.start + step)
    head = (
        f"<h3><span class='crit {group.criticality}'>{group.criticality}</span> {_e(group.label)} &middot;"
        f" {len(group.metrics)} metric{'s' if len(group.metrics) != 1 else ''} &middot;"
        f" {format_instant(group.start)} to {format_instant(group.end)} ({hours}) &middot; score {group.score}</h3>"
    )
    cells = "".join(
        f"<tr><td>{_e(m.event.metric)} p{m.event.percentile:g}</td><td>{_e(note)}</td>"
        f"<td class='{m.event.severity}'>{m.event.severity}</td>{_peak_cells(m)}"
        f"<td>{_e(format_influencers(m.influencers))}</td></tr>"
        for m, note in zip(group.members, turned_notes(group), strict=True)
    )
    table = (
        "<table><tr><th>metric</th><th>turned</th><th>severity</th><th>score</th><th>actual</th><th>typical</th>"
        f"<th>threshold</th><th>influencers</th></tr>{cells}</table>"
    )
    return f"<div class='group'>{head}{strips.render_strips(ends, rows, _PAGE_W, True)}{table}</div>"


def _peak_cells(member: GroupMember) -> str:
    peak = member.peak
    numbers = (peak.value, peak.mean, peak.threshold)
    return f"<td>{peak.score}</td>" + "".join(f"<td>{format_number(v)}</td>" for v in numbers)


def _svg(chart: ReportChart, truth: Sequence[TruthInterval], anomalies: Sequence[Anomaly]) -> str:
    points = chart.points
    if not any(p.value is not None for p in points):
        return "<p class='note'>no value in this range (see surprise.min_tail_series for high percentiles)</p>"
    t0, t1 = points[0].window_end.timestamp(), points[-1].window_end.timestamp()
    top = max([p.value or 0.0 for p in points] + [p.threshold or 0.0 for p in points] + [1e-9])

    def x(t: datetime) -> float:
        return _PAD + (t.timestamp() - t0) / max(t1 - t0, 1.0) * _W

    def y(v: float) -> float:
        return _H - v / top * (_H - 10)

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{_PAGE_W}' height='{_H + 30}'>"]
    for interval in truth:
        x0, x1 = max(x(interval.start), _PAD), min(x(interval.end), _PAD + _W)
        if x1 > x0:
            out.append(f"<rect class='truth' x='{x0:.1f}' y='0' width='{x1 - x0:.1f}' height='{_H}'/>")
    band = [(p, p.mean, p.threshold) for p in points if p.mean is not None and p.threshold is not None]
    if band:
        upper = " ".join(f"{x(p.window_end):.1f},{y(hi):.1f}" for p, _, hi in band)
        lower = " ".join(f"{x(p.window_end):.1f},{y(lo):.1f}" for p, lo, _ in reversed(band))
        out.append(f"<polygon class='band' points='{upper} {lower}'/>")
        out.append(f"<polyline class='typical' points='{' '.join(reversed(lower.split()))}'/>")
        out.append(f"<polyline class='threshold' points='{upper}'/>")
    bar = max(_W / max(len(points), 1) * 0.8, 1.0)
    for p in points:
        if p.is_anomalous and p.value is not None and p.severity is not None:
            out.append(
                f"<rect class='anomaly {p.severity}' fill='{SEVERITY_COLOURS[p.severity]}'"
                f" x='{x(p.window_end) - bar / 2:.1f}' y='{y(p.value):.1f}' width='{bar:.1f}'"
                f" height='{_H - y(p.value):.1f}'/>"
            )
    line = " ".join(f"{x(p.window_end):.1f},{y(p.value):.1f}" for p in points if p.value is not None)
    out.append(f"<polyline class='value' points='{line}'/>")
    for peak in _event_peaks(chart, anomalies):
        out.append(
            f"<text class='score' x='{x(peak.window_end):.1f}' y='{max(y(peak.value) - 4, 10):.1f}'"
            f" text-anchor='middle'>{peak.score}<title>{_e(_point_text(peak))}</title></text>"
        )
    out.append(f"<line class='axis' x1='{_PAD}' y1='{_H}' x2='{_PAD + _W}' y2='{_H}'/>")
    for k in range(5):
        t = datetime.fromtimestamp(t0 + (t1 - t0) * k / 4, tz=points[0].window_end.tzinfo)
        anchor = ("start", "middle", "middle", "middle", "end")[k]
        out.append(f"<text x='{x(t):.1f}' y='{_H + 18}' text-anchor='{anchor}'>{_e(format_instant(t)[:13])}h</text>")
    out.append(f"<text x='4' y='12'>{top:.3g}</text><text x='4' y='{_H}'>0</text></svg>")
    return "".join(out)


def _event_peaks(chart: ReportChart, anomalies: Sequence[Anomaly]) -> list[Anomaly]:
    """The peaks of the chart's events (records.event_peaks), in time order, labelled with their score."""
    mine = [a for a in anomalies if a.metric == chart.metric and a.percentile == chart.percentile]
    return sorted(event_peaks(mine).values(), key=lambda a: a.window_end)


def _point_text(a: Anomaly) -> str:
    return (
        f"{format_instant(a.window_end)}: actual {format_number(a.value)}, typical {format_number(a.mean)},"
        f" threshold {format_number(a.threshold)}, score {a.score}"
    )


def _legend(with_truth: bool) -> str:
    items = [f"<span style='background:{strips.STRIP_COLOURS['normal']}'>normal</span>"]
    items += [f"<span style='background:{c}'>{name}</span>" for name, c in SEVERITY_COLOURS.items()]
    items.append(f"<span style='background:{strips.STRIP_COLOURS['missing']}'>no data</span>")
    items.append("<span class='key-band'>band: typical .. threshold</span>")
    items.append("<span class='key-score'>87</span>: score of an event's peak")
    if with_truth:
        items.append("<span class='key-truth'>known disruption</span>")
    return "<p class='legend'>" + " ".join(items) + "</p>"


def _groups_table(groups: Sequence[GroupedEvent]) -> str:
    rows = [
        "<h2>Grouped events</h2><table><tr><th>group</th><th>criticality</th><th>start</th><th>end</th>"
        "<th>score</th><th>metrics, in the order they turned</th></tr>"
    ]
    for g in groups:
        turned = ", ".join(
            f"{m.event.metric} p{m.event.percentile:g} ({m.score}" + (f", {note})" if k else ")")
            for k, (m, note) in enumerate(zip(g.members, turned_notes(g), strict=True))
        )
        rows.append(
            f"<tr><td>{_e(g.label)}</td><td class='{g.criticality}'>{g.criticality}</td>"
            f"<td>{format_instant(g.start)}</td><td>{format_instant(g.end)}</td><td>{g.score}</td>"
            f"<td>{_e(turned)}</td></tr>"
        )
    return "".join(rows) + "</table>"


def _events_table(events: Sequence[AnomalyEvent], groups: Sequence[GroupedEvent]) -> str:
    members = {m.event.event_id: m for g in groups for m in g.members}
    rows = [
        "<h2>Metric events</h2><table><tr><th>metric</th><th>percentile</th><th>start</th><th>end</th>"
        "<th>points</th><th>severity</th><th>score</th><th>actual</th><th>typical</th><th>threshold</th>"
        "<th>influencers</th></tr>"
    ]
    for e in events:
        member = members.get(e.event_id)
        numbers = _peak_cells(member) if member else "<td></td>" * 4
        influencers = format_influencers(member.influencers) if member else ""
        rows.append(
            f"<tr><td>{_e(e.metric)}</td><td>p{e.percentile:g}</td><td>{format_instant(e.start)}</td>"
            f"<td>{format_instant(e.end)}</td><td>{e.points}</td><td class='{e.severity}'>{e.severity}</td>"
            f"{numbers}<td>{_e(influencers)}</td></tr>"
        )
    return "".join(rows) + "</table>"


_CSS = (
    "body{font-family:sans-serif;margin:24px;color:#222;background:#fff}h2{font-size:16px;margin:18px 0 4px}"
    "h3{font-size:14px;margin:14px 0 4px}.group{border-top:1px solid #ddd;padding-top:4px}"
    ".value{fill:none;stroke:#1f4e79;stroke-width:1.5}.band{fill:#9ecae1;opacity:.5}.truth{fill:#b8e0b8;opacity:.6}"
    ".typical{fill:none;stroke:#3182bd;stroke-width:1;stroke-dasharray:4 3}"
    ".threshold{fill:none;stroke:#6b6ecf;stroke-width:1}.score{font-size:11px;font-weight:bold;fill:#333}"
    ".first{fill:none;stroke:#000;stroke-width:2}.note{fill:#555;font-style:italic}"
    ".axis{stroke:#888}svg text{font-size:11px;fill:#555}.legend span{padding:2px 8px;margin-right:6px}"
    ".key-band{background:#cfe5f0}.key-truth{background:#b8e0b8}.key-score{font-weight:bold;margin-right:2px}"
    "table{border-collapse:collapse;font-size:12px;margin:4px 0 8px}td,th{border:1px solid #ccc;padding:3px 6px}"
    "td.high{color:#d62828}td.medium{color:#f08a24}td.low{color:#b08800}.crit{color:#fff;padding:1px 6px}"
    ".crit.high{background:#d62828}.crit.medium{background:#f08a24}.crit.low{background:#b08800}"
    "p.note{color:#555;font-size:12px;margin:2px 0}td:nth-child(3),td:nth-child(4){white-space:nowrap}"
)
