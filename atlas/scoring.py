"""Anomaly scores (0 to 100, from how unlikely a point is) and the one way atlas writes a point's numbers."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal

SCORE_PER_DECADE = 25.0  # score points per factor of 10 in Cantelli's bound on the probability
MAX_SCORE = 100
NUMBER_FORMAT = "0.###"  # the Java DecimalFormat pattern the watch asks Elasticsearch to format numbers with
_QUANTUM = Decimal("0.001")  # what NUMBER_FORMAT keeps: at most three decimals


def anomaly_score(value: float, mean: float, std: float) -> int:
    """How unlikely `value` is above the typical `mean` of a history with population std `std`, 0 to 100.

    With z = (value - mean) / std, Cantelli's one-sided inequality bounds the probability of a value at least z
    standard deviations above the mean by 1 / (1 + z^2), whatever the distribution. The score is 25 points per
    factor of 10 in that bound: 25 * log10(1 + z^2), rounded half up and capped at 100. So 25 is "at most 1 in
    10" (z = 3), 50 "1 in 100" (z ~ 10), 75 "1 in 1000" (z ~ 31.6), 100 "1 in 10000" (z ~ 100). A point at or below
    the mean scores 0; above a flat history (std 0) it scores 100.
    """
    if value <= mean:
        return 0
    if std <= 0:
        return MAX_SCORE
    z = (value - mean) / std  # the threshold stage's (and the watch's) sigmas above the mean, same operations
    raw = SCORE_PER_DECADE * math.log10(1.0 + z * z)
    return min(MAX_SCORE, math.floor(raw + 0.5))  # half up, as the watch's Math.floor(x + 0.5)


def format_number(value: float) -> str:
    """`value` as Elasticsearch formats it with the DecimalFormat pattern `0.###` (NUMBER_FORMAT).

    Java rounds the shortest decimal spelling of the double (not its exact binary value) half to even, keeps at
    most three decimals, drops trailing zeros and writes a negative value that rounds to zero as `-0`; this does
    the same, so the built-in alerts and the watch's text spell a number alike.
    """
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("-" if value < 0 else "") + "\u221e"
    rounded = Decimal(repr(value)).quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
    text = f"{abs(rounded):f}".rstrip("0").rstrip(".")
    return ("-" if value < 0 or (value == 0 and math.copysign(1.0, value) < 0) else "") + text
