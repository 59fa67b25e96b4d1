"""Timelion expressions for Kibana: each percentile series with the threshold stage's "show if greater" bars."""

from __future__ import annotations

import math
from dataclasses import dataclass

from atlas.clock import format_duration
from atlas.indices import percentile_field, result_indices
from atlas.settings import Settings

# A threshold no value reaches: drawn where the Python stage has no full threshold window.
UNREACHABLE = 1e300


@dataclass(frozen=True)
class TimelionChart:
    """One chart: a metric's percentile series, its threshold and its anomalous points, as one expression."""

    metric: str
    percentile: float
    expression: str


def quote(text: str) -> str:
    """A Timelion string argument: single quotes, with backslashes and quotes escaped."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _lucene_phrase(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _number(value: float) -> str:
    """A Timelion number literal (Kibana reads unquoted literals with JavaScript's Number(), exponents included)."""
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


def timelion_expressions(settings: Settings, metrics: list[str]) -> list[TimelionChart]:
    """One chart per metric and percentile."""
    percentiles = settings.surprise.percentiles
    return [TimelionChart(m, p, build_expression(settings, m, p)) for m in metrics for p in percentiles]


def build_expression(settings: Settings, metric: str, percentile: float) -> str:
    """The chart of one metric's percentile series P(T), its threshold, and bars where P(T) is above it.

    Timelion's edges (Kibana's series_functions): `movingaverage` with position left averages the current point
    and the w-1 before it, so it runs on the series shifted one step later (`offset`) to average the previous w;
    `movingstd` with position left covers the previous w points but divides by w-1, so it is scaled by
    sqrt((w-1)/w) into the population std the Python stage uses. A point whose previous w points are not all
    present gets an unreachable threshold, as the Python stage never flags it. With a floor
    (`threshold.min_value` above 0) the threshold line and the bars' threshold are raised to it with `.if()`
    (below the floor, then the floor): max(mean + sigmas * std, min_value), as in the Python stage; the floor is
    applied after the unreachable threshold is set, so a point without a full window stays unflagged.
    """
    step, th = settings.surprise.step, settings.threshold
    w = th.window
    query = f"job:{_lucene_phrase(settings.results.job)} AND metric:{_lucene_phrase(metric)}"
    source = (
        f"index={quote(result_indices(settings.results).surprise)}, timefield={quote('window_end')},"
        f" metric={quote('max:' + percentile_field(percentile))}, q={quote(query)}, fit={quote('none')}"
    )
    series = f".es({source})"
    previous = f".es({source}, offset={quote('-' + format_duration(step))})"
    mean = f"{previous}.movingaverage(window={w}, position={quote('left')})"
    population = _number(math.sqrt((w - 1) / w))
    std = f"{series}.movingstd(window={w}, position={quote('left')}).multiply(multiplier={population})"
    threshold = f"{mean}.sum(input={std}.multiply(multiplier={_number(th.sigmas)}))"
    # Only with a floor: no `.if()` at all keeps a default chart's text unchanged (and a negative moving threshold of
    # gaussian surprise negative, as the Python stage keeps it).
    floor = (
        f".if(operator={quote('lt')}, if={_number(th.min_value)}, then={_number(th.min_value)})"
        if th.min_value > 0
        else ""
    )
    present = f"{previous}.if(operator={quote('eq')}, if=null, then=0, else=1)"
    full = f"{present}.movingaverage(window={w}, position={quote('left')})"
    guarded = (
        f"{full}.if(operator={quote('lt')}, if=1, then=null, else={threshold})"
        f".if(operator={quote('eq')}, if=null, then={_number(UNREACHABLE)}){floor}"
    )
    label = f"{metric} p{percentile:g}"
    # Timelion has no sequential rule: where atlas leaves flagged points out of the history, the chart draws the
    # closest rule it can, the plain one over the previous `window` points, and says so.
    # Nor does it keep an event open down to `threshold.recovery`: the bars show the crossings only.
    caveats = [f"plain {w}-point rule; atlas leaves flagged points out"] if th.lookback > w else []
    if th.recovery > 0:
        caveats.append(f"atlas keeps an event open while at or above {_number(th.recovery)}")
    closest = f" ({'; '.join(caveats)})" if caveats else ""
    return ", ".join(
        [
            f"{series}.label(label={quote(label)})",
            f"{threshold}{floor}.label(label={quote(label + ' threshold' + closest)})",
            f"{series}.if(operator={quote('gt')}, if={guarded}, then={series}, else=null)"
            f".bars().yaxis(yaxis=2).label(label={quote(label + ' above threshold' + closest)})",
        ]
    )
