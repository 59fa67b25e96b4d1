"""Reading collectd's csv plugin output: samples at their millisecond times, names as `ingest rrd` gives them, unknown
values as gaps, files that grow between the two passes; empty, truncated and corrupt files are one `Error:` line
naming the file (and line) with exit 2.

The CLI tests point Elasticsearch at a closed port: reaching it would end in exit 1, so exit 2 shows the file was
refused before anything was sent."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from atlas.cli import cli
from atlas.cli_support import parse_duration_arg
from atlas.errors import DataError
from atlas.ingest.collectd_csv import check_collectd_csv
from atlas.ingest.collectd_http import parse_address, parse_post
from atlas.ingest.rrd_file import name_file

NOWHERE = "http://127.0.0.1:9"  # discard port: nothing listens
LOAD = "epoch,shortterm,midterm,longterm\n"
LAYOUT = "<host>/<plugin>[-<instance>]/<type>[-<instance>]-YYYY-MM-DD"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def read(*paths: Path) -> list[tuple[str, str, str, float]]:
    checked = check_collectd_csv(list(paths))
    got = [(s.timestamp.isoformat(), s.metric, s.series, s.value) for s in checked.samples()]
    assert checked.rows == len(got)
    return got


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--es-url", NOWHERE, "ingest", "collectd", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_values_come_back_at_their_millisecond_times_and_nan_is_a_gap(tmp_path: Path) -> None:
    path = write(
        tmp_path / "web1" / "load" / "load-2024-05-01",
        LOAD + "1714557600.125,0.250000,0.500000,nan\n1714557610.000,-nan,1.5e3,2.000000\n",
    )
    assert read(path) == [
        ("2024-05-01T10:00:00.125000+00:00", "load.load.shortterm", "web1", 0.25),
        ("2024-05-01T10:00:00.125000+00:00", "load.load.midterm", "web1", 0.5),
        ("2024-05-01T10:00:10+00:00", "load.load.midterm", "web1", 1500.0),
        ("2024-05-01T10:00:10+00:00", "load.load.longterm", "web1", 2.0),
    ]


@pytest.mark.parametrize(
    "relative",
    [
        "h1/cpu-3/cpu-user",
        "h1/load/load",
        "h1/df-root/df_complex-free",
        "h1/disk-sda-1/disk_octets",
        "h1/snmp/if_octets-port-7",
    ],
)
def test_names_are_those_of_the_rrd_import(tmp_path: Path, relative: str) -> None:
    path = write(tmp_path / f"{relative}-2024-05-01", "epoch,value\n1714557600.000,1.000000\n")
    metric, series = name_file(tmp_path / f"{relative}.rrd")
    assert read(path) == [("2024-05-01T10:00:00+00:00", metric, series, 1.0)]


def test_several_data_sources_name_each_one(tmp_path: Path) -> None:
    path = write(tmp_path / "h1" / "interface-eth0" / "if_octets-2024-05-01", "epoch,rx,tx\n1714557600.000,1,2\n")
    assert [(m, s, v) for _, m, s, v in read(path)] == [
        ("interface.if_octets.rx", "h1/eth0", 1.0),
        ("interface.if_octets.tx", "h1/eth0", 2.0),
    ]


def test_a_directory_is_walked_in_name_order_and_other_files_are_left_out_with_a_note(tmp_path: Path) -> None:
    write(tmp_path / "h2" / "load" / "load-2024-05-01", LOAD + "1714557600.000,1.0,2.0,3.0\n")
    write(tmp_path / "h1" / "memory" / "memory-used-2024-05-02", "epoch,value\n1714644000.000,7.000000\n")
    write(tmp_path / "h1" / "memory" / "memory-used-2024-05-01", "epoch,value\n1714557600.000,5.000000\n")
    write(tmp_path / "h1" / "load" / "load.rrd", b"not ours")
    write(tmp_path / "README", "notes")
    checked = check_collectd_csv([tmp_path])
    assert [(s.metric, s.series, s.value) for s in checked.samples()] == [
        ("memory.memory.used", "h1", 5.0),
        ("memory.memory.used", "h1", 7.0),
        ("load.load.shortterm", "h2", 1.0),
        ("load.load.midterm", "h2", 2.0),
        ("load.load.longterm", "h2", 3.0),
    ]
    assert checked.notes() == [f"left out {tmp_path / 'README'} and 1 more: not named {LAYOUT}"]


def test_header_only_and_raw_counters_are_notes_not_errors(tmp_path: Path) -> None:
    empty = write(tmp_path / "h1" / "cpu-0" / "cpu-idle-2024-05-01", "epoch,value\n")
    counters = write(tmp_path / "h1" / "interface-lo" / "if_packets-2024-05-01", "epoch,rx,tx\n1714557600.000,12,0\n")
    checked = check_collectd_csv([empty, counters])
    assert checked.rows == 2
    assert checked.notes() == [
        f"{empty}: no known values",
        f"{counters}: whole numbers: raw counters (set StoreRates true in collectd's csv plugin)",
    ]


def test_lines_appended_between_the_passes_are_left_for_the_next_import(tmp_path: Path) -> None:
    path = write(tmp_path / "h1" / "memory" / "memory-used-2024-05-01", "epoch,value\n1714557600.000,1.000000\n")
    checked = check_collectd_csv([path])
    with path.open("a") as handle:  # collectd appends while the import runs
        handle.write("1714557610.000,2.000000\n")
    assert [s.value for s in checked.samples()] == [1.0]
    assert checked.rows == 1


@pytest.mark.parametrize("change", ["replaced", "shrunk"])
def test_a_file_replaced_or_cut_between_the_passes_fails_before_the_first_sample(tmp_path: Path, change: str) -> None:
    good = write(tmp_path / "h1" / "load" / "load-2024-05-01", LOAD + "1714557600.000,1.0,2.0,3.0\n")
    path = write(tmp_path / "h1" / "memory" / "memory-used-2024-05-01", "epoch,value\n1714557600.000,1.000000\n")
    checked = check_collectd_csv([good, path])
    if change == "replaced":
        path.unlink()
        write(path, "epoch,value\n1714557700.000,3.000000\n")  # collectd started a new file
    else:
        path.write_text("epoch,value\n")
    samples = checked.samples()
    with pytest.raises(DataError, match="replaced or cut after it was checked"):
        next(samples)


@dataclass(frozen=True)
class Bad:
    name: str
    body: bytes
    message: str  # what follows `Error: <path>`


BAD = [
    Bad("empty", b"", ": empty file, expected the header line epoch,<data source>,... collectd writes first"),
    Bad("cut in the header", b"epoch,val", ":1: the last line has no line end (a truncated file?)"),
    Bad("cut in a line", b"epoch,value\n1714557600.000,1.0\n17145576", ":3: the last line has no line end"),
    Bad("cut after a comma", b"epoch,value\n1714557600.000,", ":2: the last line has no line end"),
    Bad("not a header", b"1714557600.000,1.0\n", ":1: '1714557600.000,1.0' is not collectd's header"),
    Bad("header without sources", b"epoch\n", ":1: 'epoch' is not collectd's header"),
    Bad("header named twice", b"epoch,rx,rx\n", ":1: a data source is named twice"),
    Bad("too few fields", b"epoch,rx,tx\n1714557600.000,1\n", ":2: expected 3 fields (epoch and 2 values), got 2"),
    Bad("too many fields", b"epoch,value\n1714557600.000,1,2\n", ":2: expected 2 fields"),
    Bad("a word for a value", b"epoch,value\n1714557600.000,abc\n", ":2: value 'abc' is not a number"),
    Bad("an empty value", b"epoch,value\n1714557600.000,\n", ":2: value '' is not a number"),
    Bad("an ISO time", b"epoch,value\n2024-05-01T10:00:00Z,1\n", ":2: time '2024-05-01T10:00:00Z' is not epoch"),
    Bad("a negative time", b"epoch,value\n-5.000,1\n", ":2: time '-5.000' is not epoch seconds"),
    Bad("a time past 9999", b"epoch,value\n999999999999.000,1\n", ":2: time '999999999999.000' is outside"),
    Bad("a blank line", b"epoch,value\n\n1714557600.000,1\n", ":2: empty line (collectd writes none)"),
    Bad("NUL bytes", b"epoch,value\n" + b"\x00" * 40 + b"\n", ":2: expected 2 fields"),
    Bad("not ASCII", b"epoch,value\n1714557600.000,\xe9\n", ":2: not collectd CSV (byte 16 is not ASCII text)"),
    Bad("binary", bytes(range(256)), ":1: '\\x00\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08\\t' is not collectd's header"),
    Bad("binary after the header", b"epoch,value\n" + bytes(range(128, 256)) + b"\n", ":2: not collectd CSV (byte 1 "),
    Bad("a huge line", b"epoch,value\n" + b"1" * 70_000 + b"\n", ":2: line longer than 65536 bytes"),
]


@pytest.mark.parametrize("case", BAD, ids=[c.name for c in BAD])
def test_a_bad_file_is_one_error_line_naming_it_and_exit_2(tmp_path: Path, case: Bad) -> None:
    good = write(tmp_path / "h1" / "load" / "load-2024-05-01", LOAD + "1714557600.000,1.0,2.0,3.0\n")
    bad = write(tmp_path / "h1" / "memory" / "memory-used-2024-05-01", case.body)
    code, out, err = invoke(str(good), str(bad))
    assert (code, out, err.count("\n")) == (2, "", 1), err
    assert err.startswith(f"Error: {bad}{case.message}"), err


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: write(d / "h1" / "load" / "load.csv", LOAD), "not named <host>/<plugin>"),
        (lambda d: write(d / "h1" / "load" / "load-2024-13-01", LOAD), "not named <host>/<plugin>"),
        (lambda d: d / "h1" / "load" / "load-2024-05-01", "cannot read: No such file or directory"),
    ],
    ids=["no date", "no such date", "missing"],
)
def test_a_file_that_is_not_the_plugins_is_refused(tmp_path: Path, make: Callable[[Path], Path], message: str) -> None:
    path = make(tmp_path)
    code, _, err = invoke(str(path))
    assert (code, err.count("\n")) == (2, 1), err
    assert err.startswith(f"Error: {path}: {message}"), err


def test_a_directory_without_the_plugins_files_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "h1" / "load" / "load.rrd", b"rrd")
    code, _, err = invoke(str(tmp_path))
    assert (code, err) == (2, f"Error: {tmp_path}: no collectd CSV files ({LAYOUT}) under it\n")


GOOD_LIST = {
    "values": [0.5, None, 2],
    "dstypes": ["gauge", "gauge", "gauge"],
    "dsnames": ["shortterm", "midterm", "longterm"],
    "time": 1714557600.125,
    "interval": 10.0,
    "host": "web1",
    "plugin": "load",
    "plugin_instance": "",
    "type": "load",
    "type_instance": "",
}


def test_a_write_http_post_gives_the_csv_imports_samples() -> None:
    other = GOOD_LIST | {"values": [7], "dsnames": ["value"], "plugin": "cpu", "plugin_instance": "0"}
    other |= {"type": "cpu", "type_instance": "idle", "time": 1714557610}
    samples, unknown = parse_post(json.dumps([GOOD_LIST, other]).encode())
    assert unknown == 1
    assert [(s.timestamp.isoformat(), s.metric, s.series, s.value) for s in samples] == [
        ("2024-05-01T10:00:00.125000+00:00", "load.load.shortterm", "web1", 0.5),
        ("2024-05-01T10:00:00.125000+00:00", "load.load.longterm", "web1", 2.0),
        ("2024-05-01T10:00:10+00:00", "cpu.cpu.idle", "web1/0", 7.0),
    ]


BAD_POSTS = [
    (b"{", "not JSON"),
    (b"\xff", "not JSON"),
    (b'{"values": []}', "not a JSON array of value lists"),
    (b"[1]", "value list 1: not a JSON object"),
    (json.dumps([GOOD_LIST, GOOD_LIST | {"host": None}]), "value list 2: host null is not a printable name"),
    (json.dumps([GOOD_LIST | {"type": "a\u001bb"}]), 'value list 1: type "a\\u001bb" is not a printable name'),
    (json.dumps([GOOD_LIST | {"plugin": "my-plugin"}]), "value list 1: plugin 'my-plugin' or type 'load' holds a '-'"),
    (json.dumps([GOOD_LIST | {"host": ""}]), "value list 1: host, plugin or type is empty"),
    (json.dumps([GOOD_LIST | {"dsnames": "value"}]), 'value list 1: dsnames "value" is not a list of data source'),
    (json.dumps([GOOD_LIST | {"dsnames": ["a", "a", "b"]}]), 'value list 1: dsnames ["a", "a", "b"] names a'),
    (json.dumps([GOOD_LIST | {"values": [1]}]), "value list 1: values [1] is not a list of 3 (one per dsnames)"),
    (json.dumps([GOOD_LIST | {"values": [1, "2", 3]}]), "value list 1: value \"2\" of 'midterm' is not a number"),
    (json.dumps([GOOD_LIST | {"values": [1, True, 3]}]), "value list 1: value true of 'midterm' is not a number"),
    (json.dumps([GOOD_LIST | {"time": "now"}]), 'value list 1: time "now" is not epoch seconds'),
    (json.dumps([GOOD_LIST | {"time": 1e15}]), "value list 1: time 1000000000000000.0 is outside the years"),
    (json.dumps([GOOD_LIST | {"time": -1e12}]), "value list 1: time -1000000000000.0 is outside the years"),
]


@pytest.mark.parametrize(("body", "message"), BAD_POSTS, ids=[m for _, m in BAD_POSTS])
def test_a_bad_post_is_refused_whole_naming_the_value_list_and_field(body: str | bytes, message: str) -> None:
    with pytest.raises(DataError) as refused:
        parse_post(body.encode() if isinstance(body, str) else body)
    assert str(refused.value).startswith(message), str(refused.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Error: name the csv plugin's DataDir (or files under it), or --listen HOST:PORT [--duration]"),
        (("x", "--listen", "127.0.0.1:9"), "Error: name the csv plugin's DataDir"),
        (("x", "--duration", "1m"), "Error: name the csv plugin's DataDir"),
        (("--listen", "9425"), "Error: --listen: '9425' is not HOST:PORT (e.g. 127.0.0.1:9425)"),
        (("--listen", "127.0.0.1:70000"), "Error: --listen: '127.0.0.1:70000' is not HOST:PORT"),
        (("--listen", "127.0.0.1:9425", "--duration", "soon"), "Error: --duration: 'soon' is not a duration"),
        (("--listen", "127.0.0.1:9425", "--duration", "0s"), "Error: --duration: '0s' is not a positive duration"),
    ],
    ids=["nothing", "both", "duration without listen", "no host", "port too big", "duration words", "duration 0"],
)
def test_listen_options_are_checked_before_anything_connects(args: tuple[str, ...], message: str) -> None:
    code, out, err = invoke(*args)
    assert (code, out) == (2, "")
    errors = [line for line in err.splitlines() if line.startswith("Error")]  # click adds usage lines
    assert len(errors) == 1 and errors[0].startswith(message), err


def test_parse_address_takes_ipv6_in_brackets() -> None:
    assert parse_address("[::1]:9425") == ("::1", 9425)
    assert parse_duration_arg("90s", "--duration") == timedelta(seconds=90)
