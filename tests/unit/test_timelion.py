"""Timelion expressions: the golden default chart, quoting, and the parser of the test evaluator."""

from __future__ import annotations

from pathlib import Path

from atlas.outputs.timelion import build_expression, quote, timelion_expressions
from atlas.settings import load_settings
from tests.timelion_eval import parse

GOLDEN = Path(__file__).parent.parent / "golden" / "timelion_metric_0_p90.txt"
GOLDEN_FLOOR = Path(__file__).parent.parent / "golden" / "timelion_metric_0_p90_floor.txt"


def test_default_chart_is_the_golden_text() -> None:
    assert build_expression(load_settings(None, {}), "metric_0", 90.0) + "\n" == GOLDEN.read_text()


def test_floored_chart_is_the_golden_text() -> None:
    floored = build_expression(load_settings(None, {"threshold.min_value": 2.5}), "metric_0", 90.0)
    assert floored + "\n" == GOLDEN_FLOOR.read_text()


def test_the_floor_raises_the_line_and_the_bars_threshold_after_the_unreachable_one() -> None:
    _, threshold, bars = parse(build_expression(load_settings(None, {"threshold.min_value": 2.5}), "m", 90.0))
    assert threshold.calls[-2].name == "if" and threshold.calls[-2].args == {"operator": "lt", "if": 2.5, "then": 2.5}
    guarded = bars.calls[1].args["if"]
    unreachable, floor = guarded.calls[-2], guarded.calls[-1]
    assert unreachable.args == {"operator": "eq", "if": None, "then": 1e300}
    assert floor.args == {"operator": "lt", "if": 2.5, "then": 2.5}
    # floor 0 (the default) is no floor: no extra function at all
    assert "then=2.5" not in build_expression(load_settings(None, {}), "m", 90.0)


def test_quote_escapes_quotes_and_backslashes() -> None:
    assert quote("plain") == "'plain'"
    assert quote("it's") == "'it\\'s'"
    assert quote("a\\b") == "'a\\\\b'"


def test_a_metric_name_with_quotes_round_trips_through_the_parser() -> None:
    expression = build_expression(load_settings(None, {}), "disk 'sda' \\ \"x\"", 99.0)
    series, threshold, bars = parse(expression)
    assert series.calls[0].args["q"] == 'job:"default" AND metric:"disk \'sda\' \\\\ \\"x\\""'
    assert [c.name for c in bars.calls] == ["es", "if", "bars", "yaxis", "label"]
    assert threshold.calls[-1].args == {
        "label": "disk 'sda' \\ \"x\" p99 threshold (plain 24-point rule; atlas leaves flagged points out)"
    }


def test_one_chart_per_metric_and_percentile() -> None:
    settings = load_settings(None, {"surprise.percentiles": [90, 99]})
    charts = timelion_expressions(settings, ["a", "b"])
    assert [(c.metric, c.percentile) for c in charts] == [("a", 90.0), ("a", 99.0), ("b", 90.0), ("b", 99.0)]


def test_the_plain_rule_has_no_closest_rule_label() -> None:
    expression = build_expression(load_settings(None, {"threshold.lookback": 24}), "m", 90.0)
    assert "closest" not in expression and "flagged points out" not in expression
    assert "label='m p90 threshold'" in expression


def test_recovery_is_named_in_the_labels_and_changes_nothing_else() -> None:
    plain = build_expression(load_settings(None, {"threshold.lookback": 24}), "m", 90.0)
    held = build_expression(load_settings(None, {"threshold.lookback": 24, "threshold.recovery": 3}), "m", 90.0)
    _, threshold, bars = parse(held)
    caveat = " (atlas keeps an event open while at or above 3)"
    assert threshold.calls[-1].args == {"label": "m p90 threshold" + caveat}
    assert bars.calls[-1].args == {"label": "m p90 above threshold" + caveat}
    assert held.replace(caveat, "") == plain
