"""Read RRDtool files, laid out the way collectd writes them, into validated UTC samples with Debian's `rrdtool`.

Why the command-line tool and not python bindings: `python3-rrdtool` is a C extension built against one librrd,
with no wheel on PyPI, so the venv could not install it from an ordinary `pip install`; the `rrdtool` program is
one apt package, reads every on-disk format version librrd does, and a corrupt file that makes librrd misbehave
costs a failed child process (with a timeout) instead of the atlas process.

Names (collectd's layout `<host>/<plugin>[-<plugin_instance>]/<type>[-<type_instance>].rrd`):
- metric `<plugin>.<type>[.<type_instance>]`, then `.<ds>` when the file has more than one data source, then
  `.<cf>` (lowercase) for every consolidation function but AVERAGE, which collectd and most graphs treat as the
  value itself (`cpu.cpu.idle`, `cpu.cpu.idle.max`, `interface.if_octets.rx`);
- series `<host>`, or `<host>/<plugin_instance>` when the plugin directory has an instance (`web1/eth0`).
The plugin directory and the file name split at their first `-`: collectd plugin and type names hold none.

Each consolidation function is read at the finest resolution available for each time range: the finest archive
(RRA) over the time it covers, then each coarser one only over the older time no finer archive covers. A sample's
timestamp is the end of its consolidation interval, as rrdtool reports it; unknown (NaN) and infinite values are
gaps, not documents.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from math import isfinite
from pathlib import Path

from atlas import files
from atlas.errors import DataError, ToolMissing

# `display_path`: one escaping rule for the paths in every import message.
from atlas.ingest.csv_file import MetricSample, display_path

RRDTOOL = "rrdtool"
TIMEOUT_SECONDS = 60.0  # per rrdtool call; reading even a large RRA takes well under a second
_INFO_LINE = re.compile(r'^(?:(step|last_update)|ds\[(\w+)\]\.index|rra\[(\d+)\]\.(cf|rows|pdp_per_row)) = "?(\w+)"?$')
_FETCH_ROW = re.compile(r"^\s*(\d+):((?:\s+\S+)+)\s*$")


@dataclass(frozen=True)
class Archive:
    """One RRA read over the times no finer RRA of its consolidation function covers (epoch seconds, UTC)."""

    cf: str
    resolution: int  # seconds per row
    first: int  # timestamp of the first row read (the end of its interval)
    last: int  # timestamp of the last row read


@dataclass(frozen=True)
class RrdFile:
    """What the check pass found in one file, and the exact fetches the second pass repeats."""

    path: Path
    data_sources: tuple[str, ...]
    archives: tuple[Archive, ...]
    metric_prefix: str
    series: str
    samples: int  # finite values found by the check pass


class RrdCheck:
    """Every file checked whole; `samples()` fetches the same archives and time ranges again."""

    skipped = 0  # an RRD has no bad rows to skip: a file is read whole or refused

    def __init__(self, files: list[RrdFile]) -> None:
        self.files = files

    @property
    def rows(self) -> int:
        """Samples found by the check pass, each to become one document."""
        return sum(f.samples for f in self.files)

    def notes(self) -> list[str]:
        """Warnings for stderr: files holding no known value."""
        return [f"{display_path(f.path)}: no known values" for f in self.files if not f.samples]

    def samples(self) -> Iterator[MetricSample]:
        """The samples of every file, fetched again over the ranges the check chose (values written since then,
        after those ranges, are left for the next import)."""
        for checked in self.files:
            for archive in checked.archives:
                yield from _archive_samples(checked, archive)


def check_rrd_files(paths: Sequence[Path]) -> RrdCheck:
    """Check every file whole (header, names, every archive read) before anything is indexed; DataError if not."""
    return RrdCheck([_check_file(path) for path in paths])


def name_file(path: Path) -> tuple[str, str]:
    """(metric prefix `<plugin>.<type>[.<type_instance>]`, series `<host>[/<plugin_instance>]`) from the path."""
    parts = Path(os.path.abspath(path)).parts
    if len(parts) < 4 or not path.name.endswith(".rrd") or path.name == ".rrd":
        raise DataError(f"{display_path(path)}: not named <host>/<plugin>[-<instance>]/<type>[-<instance>].rrd")
    names = name_collectd(parts[-3], parts[-2], parts[-1][: -len(".rrd")])
    if names is None:
        raise DataError(f"{display_path(path)}: host, plugin or type name is empty in the path")
    return names


def name_collectd(host: str, plugin_dir: str, type_name: str) -> tuple[str, str] | None:
    """(metric prefix, series) for collectd's `<host>/<plugin>[-<plugin_instance>]/<type>[-<type_instance>]`, the
    names `ingest rrd` and `ingest collectd` share; None when the host, plugin or type is empty."""
    plugin, _, plugin_instance = plugin_dir.partition("-")
    kind, _, type_instance = type_name.partition("-")
    if not (host and plugin and kind):
        return None
    metric = ".".join(p for p in (plugin, kind, type_instance) if p)
    return metric, f"{host}/{plugin_instance}" if plugin_instance else host


def name_data_source(prefix: str, data_sources: Sequence[str], ds: str) -> str:
    """The metric of data source `ds`: `prefix`, then `.<ds>` when the type has several (`load.load.shortterm`)."""
    return f"{prefix}.{ds}" if len(data_sources) > 1 else prefix


def _check_file(path: Path) -> RrdFile:
    metric_prefix, series = name_file(path)
    with files.open_input(path):  # the reader's own words for a missing or unreadable file, as `ingest csv` gives
        pass
    step, last_update, data_sources, rras = _read_info(path)
    checked = RrdFile(path, data_sources, _plan_archives(step, last_update, rras), metric_prefix, series, 0)
    count = sum(1 for archive in checked.archives for _ in _archive_samples(checked, archive))
    return RrdFile(path, data_sources, checked.archives, metric_prefix, series, count)


def _read_info(path: Path) -> tuple[int, int, tuple[str, ...], list[tuple[str, int, int]]]:
    """(step s, last update epoch s, data source names in file order, [(cf, rows, pdp_per_row)] per RRA)."""
    fields: dict[str, str] = {}
    sources: dict[int, str] = {}
    rras: dict[int, dict[str, str]] = {}
    for line in _run(path, "info").splitlines():
        match = _INFO_LINE.match(line)
        if not match:
            continue
        top, ds, rra, key, value = match.groups()
        if top:
            fields[top] = value
        elif ds:
            sources[int(value)] = ds
        else:
            rras.setdefault(int(rra), {})[key] = value
    try:
        step, last_update = int(fields["step"]), int(fields["last_update"])
        archives = [(r["cf"], int(r["rows"]), int(r["pdp_per_row"])) for _, r in sorted(rras.items())]
    except (KeyError, ValueError) as exc:  # rrdtool read the header but it lacks what every RRD has
        raise DataError(f"{display_path(path)}: not a valid RRD file (rrdtool info lacks {exc})") from exc
    if not sources or not archives or step <= 0 or any(rows <= 0 or pdp <= 0 for _, rows, pdp in archives):
        raise DataError(f"{display_path(path)}: not a valid RRD file (no data source, no archive or a zero size)")
    return step, last_update, tuple(sources[i] for i in sorted(sources)), archives


def _plan_archives(step: int, last_update: int, rras: list[tuple[str, int, int]]) -> tuple[Archive, ...]:
    """Per consolidation function, finest RRA first, each over the rows older than every finer RRA's."""
    plan: list[Archive] = []
    for cf in sorted({cf for cf, _, _ in rras}):
        covered_from: int | None = None  # earliest instant a finer RRA of this cf already covers
        # Of two RRAs at one resolution the longer one covers all the shorter one does.
        for resolution, rows in sorted({(pdp * step, rows) for c, rows, pdp in rras if c == cf}):
            last = last_update - last_update % resolution
            first = last - (rows - 1) * resolution
            if covered_from is not None:
                last = min(last, covered_from - (covered_from % resolution))
            if last >= first:
                plan.append(Archive(cf, resolution, first, last))
                covered_from = first - resolution
    return tuple(plan)


def _archive_samples(checked: RrdFile, archive: Archive) -> Iterator[MetricSample]:
    """The finite values of one archive's planned rows, one sample per data source and row."""
    names = [_metric_name(checked, ds, archive.cf) for ds in checked.data_sources]
    # fetch returns the rows ending in (start, end]: start one row before the first, so the first is included.
    args = ("fetch", archive.cf, "-r", str(archive.resolution), "-s", str(archive.first - archive.resolution))
    output = _run(checked.path, *args, "-e", str(archive.last))
    for line in output.splitlines():
        match = _FETCH_ROW.match(line)
        if not match:
            continue
        when, values = int(match.group(1)), match.group(2).split()
        if when % archive.resolution:  # rrdtool chose another archive than the plan's: its values are not ours
            raise DataError(
                f"{display_path(checked.path)}: rrdtool fetch gave a row at {when}, off the {archive.cf} "
                f"archive's {archive.resolution}s rows"
            )
        if when < archive.first or when > archive.last:
            continue  # rrdtool pads the range it was asked for to whole rows
        if len(values) != len(names):
            raise DataError(f"{display_path(checked.path)}: rrdtool fetch gave {len(values)} values at {when}")
        timestamp = datetime.fromtimestamp(when, UTC)
        for name, text in zip(names, values, strict=True):
            value = _parse_value(checked.path, text)
            if isfinite(value):
                yield MetricSample(timestamp, name, checked.series, value)


def _metric_name(checked: RrdFile, ds: str, cf: str) -> str:
    metric = name_data_source(checked.metric_prefix, checked.data_sources, ds)
    return metric if cf == "AVERAGE" else f"{metric}.{cf.lower()}"


def _parse_value(path: Path, text: str) -> float:
    try:
        return float(text)  # also takes rrdtool's `-nan`, `nan` and `inf`
    except ValueError as exc:
        raise DataError(f"{display_path(path)}: rrdtool fetch gave {text[:40]!r}, not a number") from exc


def _run(path: Path, command: str, *args: str) -> str:
    """rrdtool's stdout; DataError with rrdtool's own words when it refuses the file."""
    # An absolute path: a file named `-x.rrd` must not read as an option. LC_ALL=C: `.` as the decimal point.
    argv = [RRDTOOL, command, os.path.abspath(path), *args]
    env = os.environ | {"LC_ALL": "C"}
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, env=env, check=False)
    except FileNotFoundError as exc:
        raise ToolMissing("rrdtool is not installed (Debian: apt-get install rrdtool)") from exc
    except subprocess.TimeoutExpired as exc:
        raise DataError(f"{display_path(path)}: rrdtool {command} took over {TIMEOUT_SECONDS:g}s") from exc
    if proc.returncode:
        said = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        detail = said[0].removeprefix("ERROR: ")
        raise DataError(f"{display_path(path)}: not a valid RRD file (rrdtool {command}: {detail})")
    return proc.stdout
