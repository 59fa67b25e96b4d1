"""SMD (the Server Machine Dataset of OmniAnomaly) for bench/server_metrics.py: which machines may be read, atlas CSV
conversion, the labelled test intervals, and the score of detected steps by `atlas evaluate`'s rules.

The data set is not in this repository: get it from the GitHub repository NetManAIOps/OmniAnomaly, directory
`ServerMachineDataset/` (`train/`, `test/`, `test_label/`, `interpretation_label/`, one `machine-X-Y.txt` each).
Only the 24 machines of the development set are ever opened, each by a path built from its name; the four held-out
machines are refused by name (they are kept for an independent check of atlas), and no directory is listed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from atlas import evaluate
from atlas.records import Anomaly, TruthInterval

FloatArray = npt.NDArray[np.float64]
_DEVELOPMENT = "1-1 1-2 1-3 1-4 1-5 1-8 2-2 2-3 2-4 2-5 2-6 2-7 2-8 2-9"
DEVELOPMENT = tuple(f"machine-{n}" for n in _DEVELOPMENT.split(" "))  # settings are chosen on these
_UNSEEN = "3-1 3-2 3-4 3-5 3-6 3-7 3-8 3-9 3-10 3-11"
UNSEEN = tuple(f"machine-{n}" for n in _UNSEEN.split(" "))  # reported apart
MACHINES = DEVELOPMENT + UNSEEN
HELD_OUT = ("machine-1-6", "machine-1-7", "machine-2-1", "machine-3-3")  # never opened, scored or tuned on
GROUPS = {"development": DEVELOPMENT, "unseen": UNSEEN}
ORIGIN = datetime(2024, 1, 1, tzinfo=UTC)  # row i of a machine (train rows first) is at ORIGIN + i minutes
ROW = timedelta(minutes=1)
COLUMNS = tuple(f"c{k:02d}" for k in range(1, 39))
LAYOUTS = ("host", "column")


class SmdError(Exception):
    """A refused machine name, a malformed data file or a bad option: the bench stops with one line."""


@dataclass(frozen=True)
class Machine:
    """One machine's rows (train then test, one per minute) and labels (test rows only)."""

    name: str
    train: FloatArray  # (rows, 38)
    test: FloatArray  # (rows, 38)
    labels: npt.NDArray[np.int8]  # one 0/1 per test row
    interpretation: tuple[tuple[int, int, frozenset[str]], ...]  # (first test row, last test row, columns) or ()

    @property
    def rows(self) -> int:
        return len(self.train) + len(self.test)

    @property
    def test_start(self) -> datetime:
        return ORIGIN + len(self.train) * ROW

    @property
    def test_end(self) -> datetime:
        return ORIGIN + self.rows * ROW

    @property
    def days(self) -> float:
        """Test days: the unit of false events per machine-day."""
        return len(self.test) / 1440


def check_machines(names: Iterable[str]) -> list[str]:
    """The names in the order given, each refused unless it is one of the 24 development-set machines."""
    checked = []
    for name in names:
        if name in HELD_OUT:
            raise SmdError(f"{name} is held out for an independent check of atlas: it is never opened or scored")
        if name not in MACHINES:
            raise SmdError(f"{name!r} is not one of the 24 machines of the development set ({MACHINES[0]} ...)")
        checked.append(name)
    return checked


def check_data_dir(data: Path) -> None:
    """The data directory must hold SMD's four folders."""
    for part in ("train", "test", "test_label", "interpretation_label"):
        if not (data / part).is_dir():
            raise SmdError(f"{data}: no folder {part}/ (expected SMD's ServerMachineDataset directory)")


def machine_paths(data: Path, name: str) -> dict[str, Path]:
    """The four files of one allowed machine (refused names never get a path)."""
    check_machines([name])
    return {part: data / part / f"{name}.txt" for part in ("train", "test", "test_label", "interpretation_label")}


def missing_parts(data: Path, name: str) -> list[str]:
    """The required files (train, test, test_label) of `name` that the data directory lacks."""
    return [
        part
        for part, path in machine_paths(data, name).items()
        if part != "interpretation_label" and not path.is_file()
    ]


def read_machine(data: Path, name: str) -> Machine:
    """Read one machine's train, test, labels and (if present) interpretation labels."""
    paths = machine_paths(data, name)
    train, test = (_read_matrix(paths[part]) for part in ("train", "test"))
    labels = pd.read_csv(paths["test_label"], header=None, dtype=np.int8)[0].to_numpy()
    if len(labels) != len(test):
        raise SmdError(f"{paths['test_label']}: {len(labels)} labels for {len(test)} test rows")
    interpretation = (
        read_interpretation(paths["interpretation_label"]) if paths["interpretation_label"].is_file() else ()
    )
    return Machine(name, train, test, labels, interpretation)


def _read_matrix(path: Path) -> FloatArray:
    frame = pd.read_csv(path, header=None, dtype=np.float64)
    if frame.shape[1] != len(COLUMNS):
        raise SmdError(f"{path}: {frame.shape[1]} columns, expected {len(COLUMNS)}")
    if frame.isna().any().any():
        raise SmdError(f"{path}: empty or non-numeric values")
    return frame.to_numpy()


def read_interpretation(path: Path) -> tuple[tuple[int, int, frozenset[str]], ...]:
    """`start-end:c1,c2,...` lines: test row range (inclusive) and 1-based columns, as column names c01..c38."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            span, columns = line.split(":")
            first, last = (int(x) for x in span.split("-"))
            names = frozenset(COLUMNS[int(c) - 1] for c in columns.split(",") if c.strip())
        except (ValueError, IndexError) as exc:
            raise SmdError(f"{path}:{number}: not start-end:c1,c2,... ({exc})") from exc
        found.append((first, last, names))
    return tuple(found)


def csv_frame(machine: Machine, layout: str) -> pd.DataFrame:
    """atlas CSV rows (`timestamp,metric,series,value`, epoch seconds) of one machine, train rows first.

    Layout `host`: metric = the machine, series = the column (c01..c38); `column`: metric = the column, series =
    the machine."""
    if layout not in LAYOUTS:
        raise SmdError(f"--layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
    values = np.concatenate([machine.train, machine.test])
    rows = len(values)
    seconds = int(ORIGIN.timestamp()) + 60 * np.arange(rows, dtype=np.int64)
    columns = np.tile(np.array(COLUMNS, dtype=object), rows)
    host = np.full(rows * len(COLUMNS), machine.name, dtype=object)
    return pd.DataFrame(
        {
            "timestamp": np.repeat(seconds, len(COLUMNS)),
            "metric": host if layout == "host" else columns,
            "series": columns if layout == "host" else host,
            "value": values.reshape(-1),
        }
    )


def write_csv(machine: Machine, layout: str, path: Path) -> None:
    """Write one machine's atlas CSV to `path` (through a temporary file, so a half-written one is never reused)."""
    partial = path.with_suffix(".partial")
    csv_frame(machine, layout).to_csv(partial, index=False, float_format="%.17g")
    partial.replace(path)


def label_runs(labels: Sequence[int] | npt.NDArray[np.int8]) -> list[tuple[int, int]]:
    """Runs of 1s as (first row, last row), inclusive."""
    padded = np.concatenate([[0], np.asarray(labels, dtype=np.int8), [0]])
    change = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(change[::2], change[1::2], strict=True)]


def truth_intervals(machine: Machine) -> list[TruthInterval]:
    """Each labelled run of test rows as [start, end) of the machine (its metric in the host layout)."""
    first = len(machine.train)
    return [
        TruthInterval(ORIGIN + (first + a) * ROW, ORIGIN + (first + b + 1) * ROW, machine.name)
        for a, b in label_runs(machine.labels)
    ]


def scored_steps(machine: Machine, step: timedelta) -> list[datetime]:
    """Window ends T (aligned to `step` from ORIGIN) whose step [T - step, T) overlaps the test rows."""
    k = math.floor((machine.test_start - ORIGIN) / step) + 1
    ends = []
    while ORIGIN + (k - 1) * step < machine.test_end:
        ends.append(ORIGIN + k * step)
        k += 1
    return ends


def step_of_row(rows: npt.NDArray[np.int64], step: timedelta) -> npt.NDArray[np.int64]:
    """The index k of the window end ORIGIN + k * step whose step holds each row (minute index)."""
    per = step // ROW
    return rows // per + 1


def detected_points(machine: str, ends: Iterable[datetime]) -> list[Anomaly]:
    """Predicted window ends of one machine as the point records `evaluate` reads (severity high, no values)."""
    return [Anomaly(machine, 0.0, t, 0.0, 0.0, 0.0, 0.0, None, "high", "", ()) for t in sorted(set(ends))]


@dataclass(frozen=True)
class Detection:
    """What one detector found on one machine: predicted window ends, and per window end the ranked columns behind
    it with their weights (for HitRate@150%; empty when the detector names none)."""

    ends: frozenset[datetime]
    influence: Mapping[datetime, Mapping[str, float]]


def score_group(
    machines: Sequence[Machine],
    detections: Mapping[str, Detection],
    step: timedelta,
    cache: dict[str, tuple[evaluate.Scores, list[float]]] | None = None,
) -> dict[str, object]:
    """One table row: `atlas evaluate`'s line `all` summed over the machines, false events per machine-day and
    HitRate@150% (None when the detector names no columns). `cache` keeps each machine's part for the next group
    of the same detector."""
    cache = {} if cache is None else cache
    totals = [0] * len(dataclasses.fields(evaluate.Scores))
    rates: list[float] = []
    for m in machines:  # evaluate sums its counts over metrics; one machine at a time keeps it linear in machines
        if m.name not in cache:
            cache[m.name] = (machine_scores(m, detections[m.name], step), hit_rates(m, detections[m.name], step))
        scores, machine_rates = cache[m.name]
        totals = [t + getattr(scores, f.name) for t, f in zip(totals, dataclasses.fields(scores), strict=True)]
        rates += machine_rates
    line = evaluate.Scores(*totals).as_json()
    days = sum(m.days for m in machines)
    named = any(d.influence for d in (detections[m.name] for m in machines))
    return {
        "machines": len(machines),
        "precision": line["precision"],
        "recall": line["recall"],
        "f1": line["f1"],
        "pa_f1": line["point_adjusted"]["f1"],
        "found": line["events_found"],
        "incidents": line["events_found"] + line["events_missed"],
        "false_events": line["false_events"],
        "false_per_day": line["false_events"] / days if days else 0.0,
        "hitrate150": (sum(rates) / len(rates) if rates else 0.0) if named else None,
        "hitrate_incidents": len(rates),
        "tp": line["tp"],
        "fp": line["fp"],
        "fn": line["fn"],
    }


def machine_scores(machine: Machine, detection: Detection, step: timedelta) -> evaluate.Scores:
    """`atlas evaluate`'s line `all` for one machine's predicted window ends."""
    points = detected_points(machine.name, detection.ends)
    steps = {machine.name: scored_steps(machine, step)}
    return evaluate.evaluate(truth_intervals(machine), points, steps, step)["all"]


def hit_rates(machine: Machine, detection: Detection, step: timedelta) -> list[float]:
    """HitRate@150% of each found incident that has interpretation labels: of its labelled columns, the share among
    its top ceil(1.5 x labelled) columns, ranked by the summed weight of the detections that overlap it."""
    first = len(machine.train)
    rates = []
    for a, b in label_runs(machine.labels):
        labelled = frozenset().union(*(c for s, e, c in machine.interpretation if s <= b and e >= a))
        start, end = ORIGIN + (first + a) * ROW, ORIGIN + (first + b + 1) * ROW
        hits = [t for t in detection.ends if start < t and t - step < end]
        if not hits or not labelled:
            continue
        weights: dict[str, float] = {}
        for t in hits:
            for column, weight in detection.influence.get(t, {}).items():
                weights[column] = weights.get(column, 0.0) + weight
        ranked = sorted(weights, key=lambda c: (-weights[c], c))[: math.ceil(1.5 * len(labelled))]
        rates.append(len(labelled & set(ranked)) / len(labelled))
    return rates
