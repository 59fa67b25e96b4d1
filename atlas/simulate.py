"""Generate the blog's synthetic metric documents and the disruptions hidden in them, deterministically from a seed."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from atlas import files
from atlas.clock import check_instant, format_instant
from atlas.errors import DataError
from atlas.records import TruthInterval

Kind = Literal["node", "query", "metric"]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Counts are bounded so that the per-tuple parameters (4 floats per metric, query and node) stay within 64 MB and
# every simulated hour within clock's instants: the blog's scale (5 x 500 x 30 x 600) is far inside.
MAX_COUNTS = {"metrics": 1_000, "queries": 100_000, "nodes": 1_000, "hours": 100_000}
MAX_HOURS = MAX_COUNTS["hours"]
MAX_TUPLES = 2_000_000  # metrics x queries x nodes
MAX_SEED = 2**32 - 1
REGULAR_MEAN, REGULAR_STD = (20.0, 40.0), (1.0, 10.0)
DISRUPTED_MEAN, DISRUPTED_STD = (60.0, 200.0), (20.0, 100.0)
TRUTH_COLUMNS = ("start", "end", "metric")

# The blog's eight disruptions: kind, first hour, last hour (inclusive), members (or, for queries, how many).
_BLOG: tuple[tuple[Kind, int, int, tuple[int, ...] | int], ...] = (
    ("metric", 505, 521, (0, 3, 4)),
    ("metric", 145, 151, (3, 4)),
    ("node", 279, 298, (0,)),
    ("metric", 240, 243, (1,)),
    ("query", 352, 355, 39),
    ("metric", 172, 181, (0, 2)),
    ("node", 334, 337, (0,)),
    ("query", 272, 275, 12),
)
# Separate random streams, so that e.g. the number of hours never changes the per-tuple distributions.
_STREAM_PARAMETERS, _STREAM_QUERIES, _STREAM_VALUES, _STREAM_SHAPES = 0, 1, 2, 3
Scenario = Literal["blog", "none", "seasonal", "level-shift", "scales"]
SCENARIOS: tuple[Scenario, ...] = ("blog", "none", "seasonal", "level-shift", "scales")
# What the production-like scenarios add to the blog's disruptions (docs/data.md):
DAILY_AMPLITUDE, WEEKLY_AMPLITUDE = 0.5, 0.2  # seasonal: at most these fractions of each series' level
SHIFT_METRIC, SHIFT_FACTOR, SHIFT_LABEL_HOURS = 2, 1.5, 24  # level-shift: metric_2 x1.5 from 70% of the hours on
SCALE_RANGE = (0.01, 10_000.0)  # scales: each series' level, log-uniform
BORN_SHARE, DEAD_SHARE = 0.2, 0.2  # scales: series starting at half the hours, and stopping at two thirds


@dataclass(frozen=True)
class Disruption:
    """Hours `first_hour..last_hour` (inclusive, counted from the start) in which `members` are disrupted."""

    kind: Kind
    first_hour: int
    last_hour: int
    members: tuple[int, ...]


@dataclass(frozen=True)
class SimulationSpec:
    """The scale, seed, value distribution and disruption scenario of one simulated data set."""

    metrics: int = 5
    queries: int = 500
    nodes: int = 30
    hours: int = 600
    seed: int = 0
    distribution: Literal["normal", "lognormal"] = "normal"
    scenario: Scenario = "blog"
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)


def metric_name(i: int) -> str:
    """The name of metric number `i`, e.g. `metric_0`."""
    return f"metric_{i}"


def query_name(i: int) -> str:
    """The name of query number `i`, e.g. `query_7`."""
    return f"query_{i}"


def node_name(i: int) -> str:
    """The name of node number `i`, e.g. `node_3`."""
    return f"node_{i}"


def validate_spec(spec: SimulationSpec) -> None:
    """Raise DataError naming the first invalid field of `spec`."""
    for field, most in MAX_COUNTS.items():
        value = getattr(spec, field)
        if value < 1:
            raise DataError(f"--{field} must be >= 1, got {value}")
        if value > most:
            raise DataError(f"--{field} must be <= {most}, got {value}")
    tuples = spec.metrics * spec.queries * spec.nodes
    if tuples > MAX_TUPLES:
        raise DataError(f"--metrics x --queries x --nodes must be <= {MAX_TUPLES:,}, got {tuples:,}")
    if not 0 <= spec.seed <= MAX_SEED:
        raise DataError(f"--seed must be between 0 and {MAX_SEED}, got {spec.seed}")
    if spec.distribution not in ("normal", "lognormal"):
        raise DataError(f"--distribution must be normal or lognormal, got {spec.distribution!r}")
    if spec.scenario not in SCENARIOS:
        raise DataError(f"--scenario must be one of {', '.join(SCENARIOS)}, got {spec.scenario!r}")
    if spec.start.tzinfo is None or spec.start.utcoffset() is None:
        raise DataError(f"--start must be timezone-aware, got {spec.start.isoformat()}")
    try:
        check_instant(spec.start.astimezone(UTC), f"--start {format_instant(spec.start)}")
        last = spec.start.astimezone(UTC) + timedelta(hours=spec.hours - 1)
        check_instant(last, f"--start plus --hours: the last hour, {format_instant(last)},")
    except ValueError as exc:
        raise DataError(str(exc)) from None


def resolve_disruptions(spec: SimulationSpec) -> tuple[Disruption, ...]:
    """The scenario's disruptions at the spec's scale: members beyond it dropped, hours clipped to it."""
    validate_spec(spec)
    if spec.scenario == "none":
        return ()  # every other scenario keeps the blog's disruptions
    resolved: list[Disruption] = []
    for index, (kind, first, last, members) in enumerate(_BLOG):
        if first >= spec.hours:
            continue
        if isinstance(members, int):
            # Drawn per disruption, so dropping another disruption never changes which queries this one hits.
            rng = np.random.default_rng([_STREAM_QUERIES, spec.seed, index])
            chosen = rng.choice(spec.queries, size=min(members, spec.queries), replace=False)
            kept = tuple(sorted(int(q) for q in chosen))
        else:
            limit = spec.nodes if kind == "node" else spec.metrics
            kept = tuple(m for m in members if m < limit)
        if kept:
            resolved.append(Disruption(kind, first, min(last, spec.hours - 1), kept))
    return tuple(resolved)


def count_documents(spec: SimulationSpec) -> int:
    """How many documents `simulate_documents` yields: one per metric, query, node and hour each query lives."""
    validate_spec(spec)
    alive = _Shapes.draw(spec).alive
    return spec.metrics * spec.nodes * sum(int(alive(h).sum()) for h in range(spec.hours))


@dataclass(frozen=True)
class _Shapes:
    """What a production-like scenario does to the blog's values: a factor per (metric, query) and hour, and which
    queries exist in an hour."""

    spec: SimulationSpec
    level: FloatArray  # (metrics, queries): scales' per-series level
    daily: FloatArray  # (metrics, queries, 2): seasonal amplitude and phase in hours, daily
    weekly: FloatArray  # (metrics, queries, 2): the same, weekly
    born: int
    dead: int

    @classmethod
    def draw(cls, spec: SimulationSpec) -> _Shapes:
        rng = np.random.default_rng([_STREAM_SHAPES, spec.seed])
        shape = (spec.metrics, spec.queries)
        low, high = (float(np.log(v / np.mean(REGULAR_MEAN))) for v in SCALE_RANGE)
        level = np.exp(rng.uniform(low, high, shape))
        daily = np.stack([rng.uniform(0, DAILY_AMPLITUDE, shape), rng.uniform(0, 24, shape)], axis=-1)
        weekly = np.stack([rng.uniform(0, WEEKLY_AMPLITUDE, shape), rng.uniform(0, 168, shape)], axis=-1)
        born = round(spec.queries * BORN_SHARE) if spec.scenario == "scales" else 0
        dead = round(spec.queries * DEAD_SHARE) if spec.scenario == "scales" else 0
        return cls(spec, level, daily, weekly, born, dead)

    def alive(self, hour: int) -> BoolArray:
        """Which queries have documents in `hour`."""
        on = np.ones(self.spec.queries, dtype=bool)
        on[: self.born] = hour >= self.spec.hours // 2
        on[self.born : self.born + self.dead] = hour < self.spec.hours * 2 // 3
        return on

    def factor(self, hour: int) -> FloatArray:
        """(metrics, queries) multipliers of every value in `hour`."""
        scenario = self.spec.scenario
        if scenario == "seasonal":
            cycles = [
                a[..., 0] * np.sin(2 * np.pi * (hour + a[..., 1]) / p)
                for a, p in ((self.daily, 24), (self.weekly, 168))
            ]
            seasonal: FloatArray = 1.0 + cycles[0] + cycles[1]
            return seasonal
        factor = np.ones((self.spec.metrics, self.spec.queries))
        if scenario == "scales":
            factor = self.level
        elif scenario == "level-shift" and hour >= self.shift_hour and self.spec.metrics > SHIFT_METRIC:
            factor[SHIFT_METRIC] = SHIFT_FACTOR
        return factor

    @property
    def shift_hour(self) -> int:
        return self.spec.hours * 7 // 10


@dataclass(frozen=True)
class _Parameters:
    """Per-tuple location and scale, shape (metrics, queries, nodes); for lognormal, those of the log."""

    regular_loc: FloatArray
    regular_scale: FloatArray
    disrupted_loc: FloatArray
    disrupted_scale: FloatArray


def _draw_parameters(spec: SimulationSpec) -> _Parameters:
    rng = np.random.default_rng([_STREAM_PARAMETERS, spec.seed])
    shape = (spec.metrics, spec.queries, spec.nodes)
    drawn = [rng.uniform(low, high, shape) for low, high in (REGULAR_MEAN, REGULAR_STD, DISRUPTED_MEAN, DISRUPTED_STD)]
    if spec.distribution == "lognormal":
        for i in (0, 2):  # moment matching keeps each tuple's mean and std
            mean, std = drawn[i], drawn[i + 1]
            sigma2 = np.log1p((std / mean) ** 2)
            drawn[i], drawn[i + 1] = np.log(mean) - sigma2 / 2, np.sqrt(sigma2)
    return _Parameters(*drawn)


def _active_masks(
    spec: SimulationSpec, disruptions: Sequence[Disruption], hour: int
) -> tuple[BoolArray, BoolArray, BoolArray]:
    """Which metrics, queries and nodes are disrupted during `hour`."""
    masks = {
        "metric": np.zeros(spec.metrics, dtype=bool),
        "query": np.zeros(spec.queries, dtype=bool),
        "node": np.zeros(spec.nodes, dtype=bool),
    }
    for d in disruptions:
        if d.first_hour <= hour <= d.last_hour:
            masks[d.kind][list(d.members)] = True
    return masks["metric"], masks["query"], masks["node"]


def simulate_documents(spec: SimulationSpec) -> Iterator[dict[str, object]]:
    """Yield every source document, hour-major then metric, query, node; `@timestamp` is UTC with a `Z`."""
    validate_spec(spec)  # here, not in the generator, so a bad spec fails at the call
    return _documents(spec)


def simulate_values(spec: SimulationSpec) -> Iterator[tuple[int, int, FloatArray, BoolArray]]:
    """(hour, metric number, values of shape (queries, nodes), which queries exist) in document order: the numbers
    `simulate_documents` writes, for benchmarks that aggregate them without Elasticsearch."""
    validate_spec(spec)
    return _values(spec)


def hourly_means(spec: SimulationSpec) -> FloatArray:
    """(metrics, queries, hours): each series' hourly average over its nodes (NaN where the query has no
    documents), which is what the per-series date_histogram's `avg` gives up to rounding."""
    means = np.full((spec.metrics, spec.queries, spec.hours), np.nan)
    for hour, m, values, alive in simulate_values(spec):
        means[m, alive, hour] = values[alive].mean(axis=1)
    return means


def _values(spec: SimulationSpec) -> Iterator[tuple[int, int, FloatArray, BoolArray]]:
    disruptions, params, shapes = resolve_disruptions(spec), _draw_parameters(spec), _Shapes.draw(spec)
    rng = np.random.default_rng([_STREAM_VALUES, spec.seed])
    for hour in range(spec.hours):
        metric_on, query_on, node_on = _active_masks(spec, disruptions, hour)
        cell_on = query_on[:, None] | node_on[None, :]
        factor, alive = shapes.factor(hour), shapes.alive(hour)
        for m in range(spec.metrics):
            z = rng.standard_normal((spec.queries, spec.nodes))
            on = np.ones_like(cell_on) if metric_on[m] else cell_on
            loc = np.where(on, params.disrupted_loc[m], params.regular_loc[m])
            scale = np.where(on, params.disrupted_scale[m], params.regular_scale[m])
            values = loc + scale * z
            if spec.distribution == "lognormal":
                values = np.exp(values)
            yield hour, m, values * factor[m][:, None], alive


def _documents(spec: SimulationSpec) -> Iterator[dict[str, object]]:
    metrics = [metric_name(m) for m in range(spec.metrics)]
    cells = [
        (query_name(q), node_name(n), f"{query_name(q)}|{node_name(n)}")
        for q in range(spec.queries)
        for n in range(spec.nodes)
    ]
    for hour, m, values, alive in _values(spec):
        timestamp = format_instant(spec.start + timedelta(hours=hour))
        prefix, suffix = metrics[m] + "|", f"|{hour}"
        exists = np.repeat(alive, spec.nodes)
        for (query, node, key), value, kept in zip(cells, values.ravel().tolist(), exists, strict=True):
            if kept:
                yield {
                    "_id": prefix + key + suffix,
                    "@timestamp": timestamp,
                    "metric": metrics[m],
                    "query": query,
                    "node": node,
                    "value": value,
                }


def truth_intervals(spec: SimulationSpec) -> list[TruthInterval]:
    """The known disruptions as UTC intervals: one per node/query disruption, one per metric a metric one hits."""
    validate_spec(spec)
    intervals: list[TruthInterval] = []
    for d in resolve_disruptions(spec):
        start = (spec.start + timedelta(hours=d.first_hour)).astimezone(UTC)
        end = start + timedelta(hours=d.last_hour - d.first_hour + 1)
        if d.kind == "metric":
            intervals.extend(TruthInterval(start, end, metric_name(m)) for m in d.members)
        else:
            intervals.append(TruthInterval(start, end, None))
    shapes = _Shapes.draw(spec)
    if spec.scenario == "level-shift" and spec.metrics > SHIFT_METRIC:
        # One event at the new normal's start: detections past the first day after it count as false.
        start = (spec.start + timedelta(hours=shapes.shift_hour)).astimezone(UTC)
        intervals.append(TruthInterval(start, start + timedelta(hours=SHIFT_LABEL_HOURS), metric_name(SHIFT_METRIC)))
    return intervals


def write_truth_csv(intervals: Sequence[TruthInterval], path: Path) -> None:
    """Write `start,end,metric` rows (ISO-8601 UTC with `Z`, empty metric for all) to `path` atomically."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(TRUTH_COLUMNS)
    writer.writerows((format_instant(i.start), format_instant(i.end), i.metric or "") for i in intervals)
    files.write_output(path, text.getvalue(), "--truth")
