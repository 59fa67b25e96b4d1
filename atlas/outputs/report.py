"""A self-contained HTML report (inline SVG, no scripts) of surprise, threshold and anomalies, and its PNG."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from atlas.clock import format_instant
from atlas.errors import OutputError, ToolMissing
from atlas.records import Anomaly, AnomalyEvent, TruthInterval, event_peaks
from atlas.threshold import ThresholdPoint

SEVERITY_COLOURS = {"low": "#f2c14e", "medium": "#f08a24", "high": "#d62828"}
_W, _H, _PAD = 1200, 220, 48


@dataclass(frozen=True)
class ReportChart:
    """One metric's percentile series with its threshold, as the threshold stage scored it."""

    metric: str
    percentile: float
    points: tuple[ThresholdPoint, ...]


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows; times are UTC."""

    job: str
    generated_at: datetime
    charts: tuple[ReportChart, ...]
    events: tuple[AnomalyEvent, ...]
    anomalies: tuple[Anomaly, ...]
    truth: tuple[TruthInterval, ...] = ()


def render_report(data: ReportData) -> str:
    """The report as one HTML document; the same data always gives the same text."""
    ends = [p.window_end for c in data.charts for p in c.points]
    span = f"{format_instant(min(ends))} to {format_instant(max(ends))}" if ends else "no windows"
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>atlas report: {_e(data.job)}</title><style>{_CSS}</style></head><body>",
        f"<h1>atlas report: job {_e(data.job)}</h1>",
        f"<p>{_e(span)} &middot; {len(data.events)} anomaly events &middot; {len(data.anomalies)} anomalous points"
        f" &middot; generated {_e(format_instant(data.generated_at))}</p>",
        _legend(bool(data.truth)),
    ]
    for chart in data.charts:
        parts.append(f"<h2>{_e(chart.metric)} p{chart.percentile:g}</h2>")
        parts.append(_svg(chart, [t for t in data.truth if t.metric in (None, chart.metric)]))
    parts.append(_events_table(data.events, data.anomalies))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(data: ReportData, out: Path, png: Path | None = None) -> None:
    """Write the HTML atomically; with `png`, also a screenshot of it from headless Chromium."""
    text = render_report(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
    if png is not None:
        screenshot(out, png, height=160 + 300 * len(data.charts) + 30 * len(data.events))


def screenshot(page: Path, png: Path, height: int) -> None:
    """Render an HTML file to PNG with headless Chromium."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise ToolMissing("chromium not found: install it (apt-get install chromium) to write --png")
    cmd = [
        browser,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--hide-scrollbars",
        f"--screenshot={png.resolve()}",
        f"--window-size={_W + 2 * _PAD},{min(height, 16000)}",
        page.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0 or not png.is_file():
        raise OutputError(f"chromium could not render {page} (exit code {proc.returncode})")


def _svg(chart: ReportChart, truth: Sequence[TruthInterval]) -> str:
    points = chart.points
    if not points:
        return "<p>no windows</p>"
    t0, t1 = points[0].window_end.timestamp(), points[-1].window_end.timestamp()
    top = max([p.value or 0.0 for p in points] + [p.threshold or 0.0 for p in points] + [1e-9])

    def x(t: datetime) -> float:
        return _PAD + (t.timestamp() - t0) / max(t1 - t0, 1.0) * _W

    def y(v: float) -> float:
        return _H - v / top * (_H - 10)

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{_W + 2 * _PAD}' height='{_H + 30}'>"]
    for interval in truth:
        x0, x1 = max(x(interval.start), _PAD), min(x(interval.end), _PAD + _W)
        if x1 > x0:
            out.append(f"<rect class='truth' x='{x0:.1f}' y='0' width='{x1 - x0:.1f}' height='{_H}'/>")
    band = [(p, p.mean, p.threshold) for p in points if p.mean is not None and p.threshold is not None]
    if band:
        upper = " ".join(f"{x(p.window_end):.1f},{y(hi):.1f}" for p, _, hi in band)
        lower = " ".join(f"{x(p.window_end):.1f},{y(lo):.1f}" for p, lo, _ in reversed(band))
        out.append(f"<polygon class='band' points='{upper} {lower}'/>")
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
    out.append(f"<line class='axis' x1='{_PAD}' y1='{_H}' x2='{_PAD + _W}' y2='{_H}'/>")
    for k in range(5):
        t = datetime.fromtimestamp(t0 + (t1 - t0) * k / 4, tz=points[0].window_end.tzinfo)
        anchor = ("start", "middle", "middle", "middle", "end")[k]
        out.append(f"<text x='{x(t):.1f}' y='{_H + 18}' text-anchor='{anchor}'>{_e(format_instant(t)[:13])}h</text>")
    out.append(f"<text x='4' y='12'>{top:.3g}</text><text x='4' y='{_H}'>0</text></svg>")
    return "".join(out)


def _legend(with_truth: bool) -> str:
    items = [f"<span style='background:{c}'>{name}</span>" for name, c in SEVERITY_COLOURS.items()]
    items.append("<span class='key-band'>mean .. threshold</span>")
    if with_truth:
        items.append("<span class='key-truth'>known disruption</span>")
    return "<p class='legend'>" + " ".join(items) + "</p>"


def _events_table(events: Sequence[AnomalyEvent], anomalies: Sequence[Anomaly]) -> str:
    peaks = event_peaks(anomalies)
    rows = [
        "<h2>Events</h2><table><tr><th>metric</th><th>percentile</th><th>start</th><th>end</th><th>points</th>"
        "<th>peak</th><th>severity</th><th>top series at the peak</th></tr>"
    ]
    for e in events:
        peak = peaks.get(e.event_id)
        tops = ", ".join(f"{s.series} ({s.surprise:.3g})" for s in peak.top_series) if peak else ""
        rows.append(
            f"<tr><td>{_e(e.metric)}</td><td>p{e.percentile:g}</td><td>{format_instant(e.start)}</td>"
            f"<td>{format_instant(e.end)}</td><td>{e.points}</td><td>{e.peak_value:.4g}</td>"
            f"<td class='{e.severity}'>{e.severity}</td><td>{_e(tops)}</td></tr>"
        )
    return "".join(rows) + "</table>"


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


_CSS = (
    "body{font-family:sans-serif;margin:24px;color:#222;background:#fff}h2{font-size:16px;margin:18px 0 4px}"
    ".value{fill:none;stroke:#1f4e79;stroke-width:1.5}.band{fill:#9ecae1;opacity:.5}.truth{fill:#b8e0b8;opacity:.6}"
    ".axis{stroke:#888}svg text{font-size:11px;fill:#555}.legend span{padding:2px 8px;margin-right:6px}"
    ".key-band{background:#cfe5f0}.key-truth{background:#b8e0b8}table{border-collapse:collapse;font-size:12px}"
    "td,th{border:1px solid #ccc;padding:3px 6px}td.high{color:#d62828}td.medium{color:#f08a24}td.low{color:#b08800}"
)
