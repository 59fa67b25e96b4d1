"""Scores from sigmas above typical (docs/scores-and-grouping.md), and numbers written as Elasticsearch writes them."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from atlas.records import Anomaly
from atlas.results import anomaly_document
from atlas.scoring import anomaly_score, format_number

SCORE_CASES = {
    "at the default threshold (z 3): 1 in 10": (3.0, 25),
    "medium severity (z 4)": (4.0, 31),
    "high severity (z 5)": (5.0, 35),
    "z 10: 1 in 101": (10.0, 50),
    "z 31.6: 1 in 1000": (31.6, 75),
    "z 99.99: just under 1 in 10000": (99.99, 100),
    "z 1000: capped": (1000.0, 100),
    "z 0.5: below any threshold": (0.5, 2),
}


@pytest.mark.parametrize(("z", "score"), SCORE_CASES.values(), ids=SCORE_CASES.keys())
def test_score_is_25_per_decade_of_cantellis_bound(z: float, score: int) -> None:
    assert anomaly_score(10.0 + 2.0 * z, 10.0, 2.0) == score
    assert score == min(100, math.floor(25 * math.log10(1 + z * z) + 0.5))


def test_score_is_monotonic_and_capped() -> None:
    scores = [anomaly_score(1.0 + k / 10, 1.0, 1.0) for k in range(0, 20000)]
    assert scores == sorted(scores) and scores[0] == 0 and scores[-1] == 100 and max(scores) == 100


def test_flat_history_and_values_at_or_below_typical() -> None:
    assert anomaly_score(7.5, 7.0, 0.0) == 100  # above a flat history: sigmas_above_mean is None
    assert anomaly_score(7.0, 7.0, 0.0) == 0
    assert anomaly_score(5.0, 7.0, 1.0) == 0


def test_an_anomaly_read_back_has_the_same_score() -> None:
    t = datetime(2024, 1, 1, tzinfo=UTC)
    a = Anomaly("cpu", 99.0, t, 41.2, 6.3, 2.2, 12.9, (41.2 - 6.3) / 2.2, "high", "e")
    assert a.score == anomaly_score(41.2, 6.3, 2.2) == 60
    assert anomaly_document("job", a)["score"] == 60  # stored for filters in Kibana


# What Elasticsearch 7.10.2 returned as value_as_string for these doubles with "format": "0.###" (max and
# bucket_script), checked on a real node; tests/integration/test_alert_text.py compares whole alert lines.
ES_FORMATTED = {
    0.0625: "0.062",
    0.1875: "0.188",
    2.5: "2.5",
    41.2345: "41.234",
    155.52959133954187: "155.53",
    1e-7: "0",
    1234567.891: "1234567.891",
    0.0005: "0",
    -0.0001: "-0",
    6.3: "6.3",
    150.0: "150",
}


@pytest.mark.parametrize(("value", "text"), ES_FORMATTED.items(), ids=[repr(v) for v in ES_FORMATTED])
def test_numbers_are_written_as_decimalformat_writes_them(value: float, text: str) -> None:
    assert format_number(value) == text
