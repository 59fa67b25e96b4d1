"""Score detected anomalies against labelled disruptions: the rules of docs/evaluation.md, point-adjusted F1."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from atlas import files
from atlas.clock import OutOfRange, instant_from_epoch, parse_instant
from atlas.errors import DataError
from atlas.records import SEVERITIES, Anomaly, GroupedEvent, TruthInterval

_LINES = ("all", "high")
GROUPED_LINES = ("grouped", "grouped_medium", "grouped_high")  # grouped events of any, >= medium, high criticality


@dataclass(frozen=True)
class Scores:
    """One line of the evaluation: point counts, events, and precision/recall/F1 (0.0 when undefined)."""

    tp: int
    fp: int
    fn: int
    events_found: int
    events_missed: int
    false_events: int
    adjusted_tp: int
    adjusted_fp: int
    adjusted_fn: int

    def as_json(self) -> dict[str, Any]:
        p, r, f = _prf(self.tp, self.fp, self.fn)
        ap, ar, af = _prf(self.adjusted_tp, self.adjusted_fp, self.adjusted_fn)
        return {
            "precision": p,
            "recall": r,
            "f1": f,
            "events_found": self.events_found,
            "events_missed": self.events_missed,
            "false_events": self.false_events,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "point_adjusted": {"precision": ap, "recall": ar, "f1": af},
        }


def read_truth(path: Path) -> list[TruthInterval]:
    """Labelled intervals from a `start,end[,metric]` CSV (ISO-8601 or epoch seconds; end exclusive)."""
    rows = list(csv.reader(io.StringIO(files.read_text(path, "truth file"), newline="")))
    if not rows or rows[0][:2] != ["start", "end"] or rows[0][2:] not in ([], ["metric"]):
        raise DataError(f"{path}:1: the header must be start,end or start,end,metric")
    intervals = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) not in (2, 3):
            raise DataError(f"{path}:{line}: expected 2 or 3 columns, got {len(row)}")
        start, end = (
            _instant(text, f"{path}:{line}: {name}") for text, name in zip(row[:2], ("start", "end"), strict=True)
        )
        if end <= start:
            raise DataError(f"{path}:{line}: end must be after start")
        intervals.append(TruthInterval(start, end, (row[2].strip() or None) if len(row) == 3 else None))
    return intervals


def evaluate(
    truth: Sequence[TruthInterval],
    anomalies: Sequence[Anomaly],
    steps: Mapping[str, Sequence[datetime]],
    step: timedelta,
    groups: Sequence[GroupedEvent] | None = None,
) -> dict[str, Scores]:
    """Scores for all severities and for high only; `steps` lists each metric's evaluated window ends. With
    `groups`, also the grouped events' lines (GROUPED_LINES)."""
    scores = {line: _score(truth, anomalies, steps, step, high_only=line == "high") for line in _LINES}
    if groups is not None:
        for line, level in zip(GROUPED_LINES, SEVERITIES, strict=True):
            kept = [g for g in groups if SEVERITIES.index(g.criticality) >= SEVERITIES.index(level)]
            scores[line] = _score_grouped(truth, kept, steps, step)
    return scores


def evaluation_json(scores: Mapping[str, Scores]) -> dict[str, Any]:
    """`{"all": {...}, "high": {...}}` as `atlas evaluate --format json` prints it, plus `grouped`,
    `grouped_medium` and `grouped_high` when grouped events were scored."""
    return {line: scores[line].as_json() for line in (*_LINES, *GROUPED_LINES) if line in scores}


def format_evaluation(scores: Mapping[str, Scores]) -> str:
    """A small table: one row per severity line, then the point-adjusted row of each."""
    header = f"{'':24}{'precision':>10}{'recall':>8}{'f1':>7}{'found':>7}{'missed':>7}{'false':>7}"
    header += f"{'tp':>6}{'fp':>6}{'fn':>6}"
    lines = [header]
    shown = [line for line in (*_LINES, *GROUPED_LINES) if line in scores]
    for line in shown:
        j = scores[line].as_json()
        lines.append(
            f"{line:24}{j['precision']:>10.3f}{j['recall']:>8.3f}{j['f1']:>7.3f}{j['events_found']:>7}"
            f"{j['events_missed']:>7}{j['false_events']:>7}{j['tp']:>6}{j['fp']:>6}{j['fn']:>6}"
        )
    for line in shown:
        a = scores[line].as_json()["point_adjusted"]
        lines.append(f"{line + ' adjusted':24}{a['precision']:>10.3f}{a['recall']:>8.3f}{a['f1']:>7.3f}")
    return "\n".join(lines) + "\n"


def _score(
    truth: Sequence[TruthInterval],
    anomalies: Sequence[Anomaly],
    steps: Mapping[str, Sequence[datetime]],
    step: timedelta,
    high_only: bool,
) -> Scores:
    totals = [0] * 9
    for metric, ends in steps.items():
        evaluated = set(ends)
        ordered = sorted(evaluated)
        labelled = {
            t for t in ordered if any(i.metric in (None, metric) and i.start < t and t - step < i.end for i in truth)
        }
        predicted = {
            a.window_end
            for a in anomalies
            if a.metric == metric and a.window_end in evaluated and (not high_only or a.severity == "high")
        }
        for i, value in enumerate(_score_metric(ordered, labelled, predicted, step)):
            totals[i] += value
    return Scores(*totals)


def _score_grouped(
    truth: Sequence[TruthInterval],
    groups: Sequence[GroupedEvent],
    steps: Mapping[str, Sequence[datetime]],
    step: timedelta,
) -> Scores:
    """The overlap rules on one timeline for all metrics: the union of every metric's evaluated window ends; a step is
    labelled when it is labelled for any evaluated metric, predicted when a grouped event spans it (start to end)."""
    ordered = sorted({t for ends in steps.values() for t in ends})
    labelled = {
        t
        for t in ordered
        if any((i.metric is None or i.metric in steps) and i.start < t and t - step < i.end for i in truth)
    }
    predicted = {t for t in ordered if any(g.start <= t <= g.end for g in groups)}
    return Scores(*_score_metric(ordered, labelled, predicted, step))


def _score_metric(
    ordered: list[datetime], labelled: set[datetime], predicted: set[datetime], step: timedelta
) -> tuple[int, ...]:
    truth_runs, detected_runs = _runs(ordered, labelled, step), _runs(ordered, predicted, step)
    tp = fp = 0
    for run in detected_runs:
        overlap = len(run & labelled)
        credited = min(len(run), math.floor(1.5 * overlap))
        tp, fp = tp + credited, fp + len(run) - credited
    found = [run for run in truth_runs if run & predicted]
    fn = sum(len(run) for run in truth_runs if not run & predicted)
    false_events = sum(1 for run in detected_runs if not run & labelled)
    adjusted = predicted | set().union(*found) if found else set(predicted)
    a_tp, a_fp, a_fn = len(adjusted & labelled), len(adjusted - labelled), len(labelled - adjusted)
    return tp, fp, fn, len(found), len(truth_runs) - len(found), false_events, a_tp, a_fp, a_fn


def _runs(ordered: list[datetime], points: set[datetime], step: timedelta) -> list[set[datetime]]:
    """Maximal runs of consecutive evaluated window ends (step apart) that are in `points`."""
    runs: list[set[datetime]] = []
    previous: datetime | None = None
    for t in ordered:
        if t in points:
            if previous is not None and previous in points and t - previous == step and runs:
                runs[-1].add(t)
            else:
                runs.append({t})
        previous = t
    return runs


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _instant(text: str, where: str) -> datetime:
    text = text.strip()
    try:
        is_epoch = text.isascii() and text.lstrip("-").replace(".", "", 1).isdigit()
        return instant_from_epoch(float(text)) if is_epoch else parse_instant(text)
    except ValueError as exc:
        if isinstance(exc, OutOfRange):
            raise DataError(f"{where}: {exc}") from exc
        raise DataError(f"{where}: {text!r} is not an ISO-8601 instant or epoch seconds") from exc
