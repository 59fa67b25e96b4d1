"""Reading RRD files with the real `rrdtool`: samples at known times, names from collectd's layout, NaN gaps, several
data sources and consolidation functions, finest resolution first; bad files are one `Error:` line and exit 2.

The CLI tests point Elasticsearch at a closed port: reaching it would end in exit 1, so exit 2 shows the file was
refused before anything was sent."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from atlas.cli import cli
from atlas.errors import DataError
from atlas.ingest.rrd_file import check_rrd_files, name_file

NOWHERE = "http://127.0.0.1:9"  # discard port: nothing listens
T0 = 1714557600  # 2024-05-01T10:00:00Z


def rrdtool(*args: str) -> None:
    subprocess.run(["rrdtool", *args], check=True, capture_output=True, env=os.environ | {"LC_ALL": "C"})


def make_rrd(path: Path, step: int, sources: list[str], rras: list[str], updates: list[str]) -> Path:
    """An RRD created one step before T0, then fed `updates` (`time:value[:value]`) in order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rrdtool("create", str(path), "--start", str(T0 - step), "--step", str(step), *sources, *rras)
    for update in updates:
        rrdtool("update", str(path), update)
    return path


def read(path: Path) -> list[tuple[int, str, str, float]]:
    with_samples = check_rrd_files([path])
    got = [(int(s.timestamp.timestamp()), s.metric, s.series, s.value) for s in with_samples.samples()]
    assert with_samples.rows == len(got)
    return sorted(got)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--es-url", NOWHERE, "ingest", "rrd", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_gauge_values_come_back_at_their_times_with_collectd_names(tmp_path: Path) -> None:
    # 10 s step, one gauge, updates exactly on the step: each value is its row's average. No update at 30 s: the
    # 20 s from 20 to 40 exceed the 15 s heartbeat, so the rows ending at 30 and 40 are unknown (gaps).
    values = {10: 1.5, 20: 2.5, 40: 4.0, 50: 5.0}
    known = {t: v for t, v in values.items() if t != 40}
    path = make_rrd(
        tmp_path / "web1" / "cpu-0" / "cpu-idle.rrd",
        10,
        ["DS:value:GAUGE:15:U:U"],
        ["RRA:AVERAGE:0.5:1:100"],
        [f"{T0}:0"] + [f"{T0 + t}:{v}" for t, v in values.items()],
    )
    assert read(path) == [(T0, "cpu.cpu.idle", "web1/0", 0.0)] + [
        (T0 + t, "cpu.cpu.idle", "web1/0", v) for t, v in known.items()
    ]


def test_unknown_values_are_gaps(tmp_path: Path) -> None:
    # An explicit `U` and a silence longer than the heartbeat both leave unknown rows: no samples there.
    path = make_rrd(
        tmp_path / "h" / "load" / "load.rrd",
        10,
        ["DS:value:GAUGE:15:U:U"],
        ["RRA:AVERAGE:0.5:1:100"],
        [f"{T0}:1", f"{T0 + 10}:U", f"{T0 + 20}:3", f"{T0 + 80}:9", f"{T0 + 90}:10"],
    )
    assert [(t - T0, v) for t, _, _, v in read(path)] == [(0, 1.0), (20, 3.0), (90, 10.0)]


def test_two_data_sources_name_each_metric(tmp_path: Path) -> None:
    path = make_rrd(
        tmp_path / "router" / "interface-eth0" / "if_octets.rrd",
        10,
        ["DS:rx:GAUGE:15:U:U", "DS:tx:GAUGE:15:0:U"],
        ["RRA:AVERAGE:0.5:1:10"],
        [f"{T0}:1:10", f"{T0 + 10}:2:U"],
    )
    assert read(path) == [
        (T0, "interface.if_octets.rx", "router/eth0", 1.0),
        (T0, "interface.if_octets.tx", "router/eth0", 10.0),
        (T0 + 10, "interface.if_octets.rx", "router/eth0", 2.0),
    ]


def test_every_consolidation_function_at_the_finest_resolution_of_each_time_range(tmp_path: Path) -> None:
    """AVERAGE kept at 10 s for the last 2 minutes only, and at 60 s for 10 minutes; MAX at 60 s for 10 minutes.

    Ten minutes of 10 s values 0..59: the last 2 minutes come at 10 s, the 8 minutes before at 60 s (each the mean
    of its six 10 s values), and MAX at 60 s throughout, named with a `.max` suffix."""
    updates = [f"{T0 + 10 * i}:{i}" for i in range(61)]  # T0 itself only starts the first row
    path = make_rrd(
        tmp_path / "db" / "memory" / "memory-used.rrd",
        10,
        ["DS:value:GAUGE:15:U:U"],
        ["RRA:AVERAGE:0.5:1:12", "RRA:AVERAGE:0.5:6:10", "RRA:MAX:0.5:6:10"],
        updates,
    )
    got = read(path)
    average = [(t - T0, v) for t, m, _, v in got if m == "memory.memory.used"]
    maximum = [(t - T0, v) for t, m, _, v in got if m == "memory.memory.used.max"]
    last = T0 + 600
    fine = [(t - T0, float((t - T0) // 10)) for t in range(last - 110, last + 1, 10)]  # 12 rows of 10 s
    # Older than the 10 s archive: the 60 s rows ending at 60..480 s (480 s is where the 10 s archive starts).
    coarse = [(t, (t // 10 - 2.5)) for t in range(60, last - T0 - 120 + 1, 60)]
    assert average == coarse + fine
    assert maximum == [(t, float(t // 10)) for t in range(60, 601, 60)]
    assert {s for _, _, s, _ in got} == {"db"}


@pytest.mark.parametrize(
    ("relative", "metric", "series"),
    [
        ("h1/cpu-3/cpu-user.rrd", "cpu.cpu.user", "h1/3"),
        ("h1/load/load.rrd", "load.load", "h1"),
        ("h1/df-root/df_complex-free.rrd", "df.df_complex.free", "h1/root"),
        ("h1/disk-sda-1/disk_octets.rrd", "disk.disk_octets", "h1/sda-1"),
        ("h1/snmp/if_octets-port-7.rrd", "snmp.if_octets.port-7", "h1"),
    ],
    ids=["plugin-and-type-instances", "no-instances", "underscore-type", "dash-in-plugin-instance", "dash-in-type"],
)
def test_names_follow_collectds_layout(tmp_path: Path, relative: str, metric: str, series: str) -> None:
    assert name_file(tmp_path / relative) == (metric, series)


def test_the_check_counts_what_it_will_index(tmp_path: Path) -> None:
    path = make_rrd(
        tmp_path / "h" / "p" / "t.rrd",
        60,
        ["DS:value:GAUGE:120:U:U"],
        ["RRA:AVERAGE:0.5:1:5"],
        [f"{T0}:1", f"{T0 + 60}:2"],
    )
    checked = check_rrd_files([path, path])
    assert checked.rows == 4
    assert [s.timestamp for s in checked.samples()] == [datetime.fromtimestamp(T0 + t, UTC) for t in (0, 60)] * 2


def test_a_file_without_known_values_is_a_note(tmp_path: Path) -> None:
    path = make_rrd(tmp_path / "h" / "p" / "t.rrd", 60, ["DS:value:GAUGE:120:U:U"], ["RRA:AVERAGE:0.5:1:5"], [])
    checked = check_rrd_files([path])
    assert (checked.rows, checked.notes()) == (0, [f"{path}: no known values"])


def valid_rrd(tmp_path: Path) -> Path:
    return make_rrd(
        tmp_path / "good" / "load" / "load.rrd", 10, ["DS:v:GAUGE:15:U:U"], ["RRA:AVERAGE:0.5:1:10"], [f"{T0}:1"]
    )


def corrupt(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 12)  # fixed "random" bytes: no RRD cookie


def truncated(path: Path) -> None:
    # 1000 rows: half the file keeps the whole header and loses rows, which rrdtool checks against the header.
    source = path.parent.parent.parent / "source" / "load" / "load.rrd"
    whole = make_rrd(source, 10, ["DS:v:GAUGE:15:U:U"], ["RRA:AVERAGE:0.5:1:1000"], [f"{T0}:1"]).read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


def empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (corrupt, "not a valid RRD file (rrdtool info: '{path}' is not an RRD file)"),
        (truncated, "not a valid RRD file (rrdtool info: '{path}' is too small (should be {size} bytes))"),
        (empty, "not a valid RRD file (rrdtool info: mmaping file '{path}': Invalid argument)"),
    ],
    ids=["corrupt", "truncated", "empty"],
)
def test_a_bad_file_is_one_line_and_nothing_is_sent(
    tmp_path: Path, damage: Callable[[Path], None], reason: str
) -> None:
    good = valid_rrd(tmp_path)
    bad = tmp_path / "bad" / "load" / "load.rrd"
    bad.parent.mkdir(parents=True)
    damage(bad)
    size = (tmp_path / "source" / "load" / "load.rrd").stat().st_size if damage is truncated else 0
    code, out, err = invoke(str(good), str(bad))  # the good file first: it must not be indexed either
    assert (code, out) == (2, "")
    assert err == f"Error: {bad}: " + reason.format(path=bad, size=size) + "\n"


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "h" / "p" / "missing.rrd"
    assert invoke(str(path)) == (2, "", f"Error: {path}: cannot read: No such file or directory\n")


def test_a_file_outside_collectds_layout_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h" / "p" / "notes.txt"
    with pytest.raises(DataError, match=r"not named <host>/<plugin>\[-<instance>\]/<type>\[-<instance>\]\.rrd"):
        check_rrd_files([path])
