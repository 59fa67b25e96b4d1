"""The evaluation rules of docs/evaluation.md, one hand-computed case per rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from atlas.errors import DataError
from atlas.evaluate import evaluate, evaluation_json, format_evaluation, read_truth
from atlas.records import Anomaly, AnomalyEvent, GroupedEvent, GroupMember, Severity, TruthInterval

T0 = datetime(2024, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
STEPS = {"m": [T0 + k * H for k in range(1, 21)]}  # window ends 1..20


def at(k: int) -> datetime:
    return T0 + k * H


def label(first: int, last: int, metric: str | None = "m") -> TruthInterval:
    """Hours first..last (inclusive) disrupted: labels window ends first+1 .. last+1."""
    return TruthInterval(at(first), at(last + 1), metric)


def detect(*ks: int, severity: Severity = "high", metric: str = "m") -> list[Anomaly]:
    return [Anomaly(metric, 90.0, at(k), 1.0, 0.0, 0.1, 0.3, 10.0, severity, f"e{k}") for k in ks]


@dataclass(frozen=True)
class Case:
    name: str
    truth: list[TruthInterval]
    anomalies: list[Anomaly]
    want: dict[str, int]


CASES = [
    Case("perfect", [label(4, 7)], detect(5, 6, 7, 8), {"tp": 4, "fp": 0, "fn": 0, "events_found": 1}),
    # labelled ends 5..8; detection 8..9 overlaps 1 point -> 1.5 credited -> floor 1 tp, 1 fp
    Case("one step late", [label(4, 7)], detect(8, 9), {"tp": 1, "fp": 1, "fn": 0, "events_found": 1}),
    # labelled 5..8 (4 points); detection 7..12 overlaps 2 -> 3 tp, 3 fp
    Case("beyond the label", [label(4, 7)], detect(7, 8, 9, 10, 11, 12), {"tp": 3, "fp": 3, "fn": 0}),
    Case("false event", [], detect(3, 4), {"tp": 0, "fp": 2, "false_events": 1}),
    Case("missed event", [label(4, 7)], [], {"tp": 0, "fn": 4, "events_missed": 1}),
    # labelled 3..4 and 7..8; one detection 3..8 overlaps 4 -> all 6 tp, both events found
    Case(
        "two labels one detection",
        [label(2, 3), label(6, 7)],
        detect(*range(3, 9)),
        {"tp": 6, "fp": 0, "events_found": 2},
    ),
    Case("other metric's label ignored", [label(4, 7, "x")], detect(5), {"fp": 1, "fn": 0, "false_events": 1}),
    Case("metric-less label", [label(4, 7, None)], detect(5), {"tp": 1, "fn": 0, "events_found": 1}),
    Case("outside the evaluated steps", [label(30, 31)], detect(30), {"tp": 0, "fp": 0, "fn": 0, "events_missed": 0}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rules(case: Case) -> None:
    got = evaluation_json(evaluate(case.truth, case.anomalies, STEPS, H))["all"]
    assert {key: got[key] for key in case.want} == case.want


def test_high_line_keeps_only_high_severity_points() -> None:
    anomalies = detect(5, severity="low") + detect(6, 7)  # one run for "all", 6..7 for "high"
    scores = evaluation_json(evaluate([label(4, 7)], anomalies, STEPS, H))
    assert (scores["all"]["tp"], scores["high"]["tp"]) == (3, 2)


def test_precision_recall_f1_and_zero_denominators() -> None:
    got = evaluation_json(evaluate([label(4, 7)], detect(7, 8, 9, 10, 11, 12), STEPS, H))["all"]
    assert (got["precision"], got["recall"], got["f1"]) == (0.5, 1.0, pytest.approx(2 / 3))
    empty = evaluation_json(evaluate([], [], STEPS, H))["all"]
    assert (empty["precision"], empty["recall"], empty["f1"]) == (0.0, 0.0, 0.0)


def test_point_adjusted_counts_a_found_run_whole() -> None:
    # labelled 5..8, detected 8..9: plain 1 tp 1 fp; adjusted: detection + whole run = 5..9 -> tp 4, fp 1, fn 0
    got = evaluation_json(evaluate([label(4, 7)], detect(8, 9), STEPS, H))["all"]["point_adjusted"]
    assert (got["precision"], got["recall"]) == (0.8, 1.0)
    assert "adjusted" in format_evaluation(evaluate([label(4, 7)], detect(8, 9), STEPS, H))


def test_read_truth_as_the_simulator_writes_it_and_epoch_seconds(tmp_path: Path) -> None:
    path = tmp_path / "truth.csv"
    path.write_text("start,end,metric\n2024-01-01T05:00:00Z,2024-01-01T07:00:00Z,metric_0\n1704096000,1704103200,\n")
    assert read_truth(path) == [
        TruthInterval(at(5), at(7), "metric_0"),
        TruthInterval(datetime(2024, 1, 1, 8, tzinfo=UTC), datetime(2024, 1, 1, 10, tzinfo=UTC), None),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("begin,end\n", "truth.csv:1: the header"),
        ("start,end\n2024-01-01T05:00:00Z\n", "truth.csv:2: expected 2 or 3 columns"),
        ("start,end\nsoon,2024-01-01T05:00:00Z\n", "truth.csv:2: start: 'soon' is not"),
        ("start,end\n2024-01-01T05:00:00Z,2024-01-01T05:00:00Z\n", "truth.csv:2: end must be after start"),
    ],
    ids=["header", "columns", "timestamp", "empty interval"],
)
def test_read_truth_bad_rows_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "truth.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_truth(path)


def grouped_event(first: int, last: int, metrics: tuple[str, ...], crit: Severity) -> GroupedEvent:
    """A grouped event spanning window ends first..last; its members only need to exist."""
    members = tuple(
        GroupMember(AnomalyEvent(m, 90.0, at(first), at(last), 1, 1.0, "high", f"{m}{first}"), (), ()) for m in metrics
    )
    return GroupedEvent(f"g{first}", None, None, at(first), at(last), crit, members)


def test_grouped_lines_score_grouped_events_on_one_timeline_by_criticality() -> None:
    steps = {"m": STEPS["m"], "n": STEPS["m"]}
    truth = [label(4, 7, "n")]  # labels 5..8 of n: on the shared timeline, steps 5..8
    groups = [
        grouped_event(5, 9, ("m", "n"), "high"),  # overlap 4 -> 5 points credited (min(5, 6))
        grouped_event(6, 7, ("m",), "low"),  # at the same hours: counted once, not twice
        grouped_event(15, 15, ("n",), "medium"),  # a false event
    ]
    scores = evaluation_json(evaluate(truth, [], steps, H, groups))
    assert set(scores) == {"all", "high", "grouped", "grouped_medium", "grouped_high"}
    pick = ("tp", "fp", "fn", "events_found", "false_events")
    assert [scores["grouped"][k] for k in pick] == [5, 1, 0, 1, 1]
    assert [scores["grouped_high"][k] for k in pick] == [5, 0, 0, 1, 0]
    assert [scores["all"][k] for k in ("tp", "fn")] == [0, 4]  # no anomalies stored: the per-metric lines miss it
    assert "grouped_medium adjusted" in format_evaluation(evaluate(truth, [], steps, H, groups))


def test_without_groups_there_are_only_the_two_lines() -> None:
    assert set(evaluation_json(evaluate([label(4, 7)], detect(5), STEPS, H))) == {"all", "high"}
