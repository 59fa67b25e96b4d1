"""The HTML report: its structure for a small hand-built input, escaping, determinism; and a real Chromium render."""

from __future__ import annotations

import re
import shutil
import struct
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from atlas.grouping import group_overlapping_events, turned_notes
from atlas.outputs.report import SEVERITY_COLOURS, ReportChart, ReportData, render_report, write_report
from atlas.outputs.strips import STRIP_COLOURS, group_strip_rows
from atlas.records import Anomaly, AnomalyEvent, SeriesSurprise, TruthInterval
from atlas.settings import GroupingSettings
from atlas.threshold import ThresholdPoint

T0 = datetime(2024, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


def chart(metric: str, hours: int, anomalies: dict[int, str]) -> ReportChart:
    points = []
    for h in range(hours):
        value = 10.0 + (h % 5) + (40.0 if h in anomalies else 0.0)
        full = h >= 6
        points.append(
            ThresholdPoint(
                T0 + timedelta(hours=h),
                None if h == 40 else value,
                12.0 if full else None,
                1.0 if full else None,
                15.0 if full else None,
                h in anomalies,
                30.0 if h in anomalies else None,
                anomalies.get(h),  # type: ignore[arg-type]
            )
        )
    return ReportChart(metric, 90.0, tuple(points))


def anomaly(metric: str, h: int, value: float, severity: str, event_id: str) -> Anomaly:
    tops = (SeriesSurprise("query_<7>", 99.5), SeriesSurprise("query_2", 33.0))
    return Anomaly(metric, 90.0, T0 + h * H, value, 12.0, 1.0, 15.0, value - 12.0, severity, event_id, tops)  # type: ignore[arg-type]


def data(metric: str = "cpu", truth: bool = True, hours: int = 48) -> ReportData:
    """`metric` low at hour 10, medium at 20, high at 30-31; `mem` high at 31 (it turns one hour later)."""
    severities = {10: "low", 20: "medium", 30: "high", 31: "high"}
    events = (
        AnomalyEvent(metric, 90.0, T0 + 10 * H, T0 + 10 * H, 1, 54.0, "low", "e1"),
        AnomalyEvent(metric, 90.0, T0 + 20 * H, T0 + 20 * H, 1, 55.0, "medium", "e0"),
        AnomalyEvent(metric, 90.0, T0 + 30 * H, T0 + 31 * H, 2, 52.0, "high", "e2"),
        AnomalyEvent("mem", 90.0, T0 + 31 * H, T0 + 31 * H, 1, 60.0, "high", "e3"),
    )
    anomalies = (
        anomaly(metric, 10, 54.0, "low", "e1"),
        anomaly(metric, 20, 55.0, "medium", "e0"),
        anomaly(metric, 30, 52.0, "high", "e2"),
        anomaly(metric, 31, 51.0, "high", "e2"),
        anomaly("mem", 31, 60.0, "high", "e3"),
    )
    groups = tuple(group_overlapping_events(events, anomalies, ["query"], GroupingSettings(), H))
    known = (TruthInterval(T0 + timedelta(hours=29), T0 + timedelta(hours=33), None),) if truth else ()
    charts = (chart(metric, hours, severities), chart("mem", hours, {31: "high"}))
    return ReportData("default", T0 + timedelta(days=3), charts, events, anomalies, known, groups, H)


def test_structure_colours_and_tables() -> None:
    page = render_report(data())
    assert page.count("<svg") == 2 + 1 + 3  # two charts, the overview strips, three grouped events' strips
    bars = re.findall(r"<rect class='anomaly (\w+)' fill='(#\w+)'", page)
    assert bars == [(s, SEVERITY_COLOURS[s]) for s in ("low", "medium", "high", "high", "high")]
    assert page.count("<rect class='truth'") == 2
    assert page.count("<polygon class='band'") == 2 and page.count("<polyline class='threshold'") == 2
    assert "query_&lt;7&gt; 75%, query_2 25%" in page
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")


def test_scores_actual_and_typical_are_shown() -> None:
    page = render_report(data())
    # e2's peak is hour 30 (z = 40, score 80); its label sits on the chart, the numbers in the tables
    assert ">80<title>2024-01-02T06:00:00Z: actual 52, typical 12, threshold 15, score 80</title>" in page
    assert "<td>80</td><td>52</td><td>12</td><td>15</td>" in page


def test_strips_are_coloured_by_severity_and_aligned() -> None:
    page = render_report(data())
    overview = page.split("<svg class='strips'")[1]
    rows = re.findall(r"<rect class='cell (\w+)' fill='(#\w+)' x='([\d.]+)' y='(\d+)' width='([\d.]+)'", overview)
    assert {state for state, *_ in rows} == {"missing", "normal", "low", "medium", "high"}
    assert all(fill == STRIP_COLOURS[state] for state, fill, *_ in rows)
    cpu_high = [float(x) for state, _, x, y, _ in rows if state == "high" and y == "0"]
    mem_high = [float(x) for state, _, x, y, _ in rows if state == "high" and y != "0"]
    assert cpu_high and mem_high and cpu_high[0] < mem_high[0]  # same time axis: cpu turned an hour earlier


def test_grouped_event_lists_its_metrics_in_the_order_they_turned() -> None:
    page = render_report(data())
    detail = page[page.index("<span class='crit high'>") :].split("<div class='group'>")[0]
    assert detail.index("cpu p90 <tspan class='note'>first</tspan>") < detail.index("mem p90 <tspan class='note'>+1h")
    assert detail.count("<rect class='first'") == 2
    assert "<td>cpu p90 (80), mem p90 (84, +1h)</td>" in page


def test_truth_spans_only_with_truth_and_names_are_escaped() -> None:
    page = render_report(data(metric='<b>&"', truth=False))
    assert "<rect class='truth'" not in page and "known disruption" not in page
    assert "&lt;b&gt;&amp;&quot;" in page and '<b>&"' not in page


def test_same_input_same_text() -> None:
    assert render_report(data()) == render_report(data())


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) into rows of pixel bytes."""
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, [], b""
    while pos < len(raw):
        length, kind = struct.unpack(">I4s", raw[pos : pos + 8])
        body = raw[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0) and colour in (2, 6)
    channels = 3 if colour == 2 else 4
    stride = width * channels
    data_bytes = zlib.decompress(b"".join(chunks))
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = data_bytes[y * (stride + 1)], bytearray(data_bytes[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(b for k in range(0, stride, channels) for b in line[k : k + 3]))
        previous = line
    return width, height, rows


def test_chromium_renders_a_report_that_is_not_blank(tmp_path: Path) -> None:
    assert shutil.which("chromium"), "chromium is part of the test setup (./run.sh test installs it)"
    report = data(hours=200)
    html_path, png_path = tmp_path / "report.html", tmp_path / "report.png"
    write_report(report, html_path, png_path)
    width, height, rows = png_pixels(png_path)
    assert width >= 1200 and height >= 300
    colours = {row[i : i + 3] for row in rows[::3] for i in range(0, len(row), 9)}
    white = b"\xff\xff\xff"
    assert len(colours) > 20
    assert sum(1 for row in rows for i in range(0, len(row), 3) if row[i : i + 3] != white) > width * 20
    for hex_colour in [*SEVERITY_COLOURS.values(), STRIP_COLOURS["normal"]]:
        rgb = bytes.fromhex(hex_colour[1:])
        assert any(rgb in row for row in rows), hex_colour


def test_two_events_of_one_metric_in_a_group_share_one_strip() -> None:
    events = (
        AnomalyEvent("cpu", 90.0, T0 + 30 * H, T0 + 31 * H, 2, 52.0, "high", "c1"),
        AnomalyEvent("mem", 90.0, T0 + 31 * H, T0 + 33 * H, 3, 60.0, "high", "m1"),
        AnomalyEvent("cpu", 90.0, T0 + 33 * H, T0 + 33 * H, 1, 52.0, "low", "c2"),
    )
    anomalies = (
        anomaly("cpu", 30, 52.0, "high", "c1"),
        anomaly("cpu", 31, 52.0, "high", "c1"),
        *(anomaly("mem", h, 60.0, "high", "m1") for h in (31, 32, 33)),
        anomaly("cpu", 33, 20.0, "low", "c2"),
    )
    (group,) = group_overlapping_events(events, anomalies, ["query"], GroupingSettings(), H)
    present = {("cpu", 90.0): {T0 + h * H for h in range(48)}, ("mem", 90.0): {T0 + h * H for h in range(48)}}
    ends, rows = group_strip_rows(group, present, H, margin=1)
    assert [(r.label, r.note) for r in rows] == [("cpu p90", "first"), ("mem p90", "+1h")]
    assert [e.hour for e in ends] == [5, 6, 7, 8, 9, 10]  # hours 29..34 of 2024-01-02
    assert rows[0].cells == ("normal", "high", "high", "normal", "low", "normal")
    assert turned_notes(group) == ["first", "+1h", "+3h"]
