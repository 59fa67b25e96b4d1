"""CSV import rules beyond the layout: what Elasticsearch would refuse is refused first, ids that cannot collide,
bounded reading, two passes over the same bytes, the bad rows --skip-bad names and counts."""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from atlas.errors import ConfigError, DataError
from atlas.ingest.csv_file import (
    MAX_LINE_BYTES,
    MAX_LISTED_BAD_ROWS,
    MAX_NAME_BYTES,
    MetricSample,
    check_csv_files,
    format_timestamp,
)
from atlas.ingest.load import check_index_name, document_id, sample_documents
from atlas.settings import SourceSettings

HEADER = "timestamp,metric,series,value\n"
T10 = datetime(2024, 5, 1, 10, tzinfo=UTC)


def write(tmp_path: Path, text: str | bytes, name: str = "a.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def check_error(path: Path, skip_bad: bool = False) -> str:
    with pytest.raises(DataError) as caught:
        check_csv_files([path], skip_bad=skip_bad).close()
    message = str(caught.value)
    assert "\n" not in message
    return message


@dataclass(frozen=True)
class BadRow:
    id: str
    row: str | bytes
    reason: str  # after `{path}:2: `


LONG_NAME = "é" * (MAX_NAME_BYTES // 2 + 1)  # under the limit in characters, over it in UTF-8 bytes
BAD_ROWS = [
    BadRow("metric-nul", "1714557600,cp\x00u,h1,1", r"metric 'cp\x00u' contains a control character"),
    BadRow("metric-ansi-escape", "1714557600,\x1b[31mcpu\x1b[0m,h1,1",
           r"metric '\x1b[31mcpu\x1b[0m' contains a control character"),
    BadRow("series-tab", "1714557600,cpu,h\t1,1", r"series 'h\t1' contains a control character"),
    BadRow("series-del", "1714557600,cpu,h1\x7f,1", r"series 'h1\x7f' contains a control character"),
    BadRow("series-c1-csi", "1714557600,cpu,h\x9b1,1", r"series 'h\x9b1' contains a control character"),
    BadRow("metric-too-long-in-bytes", f"1714557600,{LONG_NAME},h1,1",
           f"metric {LONG_NAME[:60]!r}... (257 characters) is 514 bytes, over {MAX_NAME_BYTES}"),
    BadRow("series-too-long", f"1714557600,cpu,{'s' * (MAX_NAME_BYTES + 1)},1",
           f"series {'s' * 60!r}... (513 characters) is 513 bytes, over {MAX_NAME_BYTES}"),
    BadRow("year-999", "0999-01-01T00:00:00Z,cpu,h1,1",
           "timestamp '0999-01-01T00:00:00Z' is outside the years 1000 to 9999 (UTC)"),
    BadRow("year-1-as-epoch", "-62135596800,cpu,h1,1",
           "timestamp '-62135596800' is outside the years 1000 to 9999 (UTC)"),
    BadRow("year-999-after-utc", "1000-01-01T00:30:00+01:00,cpu,h1,1",
           "timestamp '1000-01-01T00:30:00+01:00' is outside the years 1000 to 9999 (UTC)"),
    BadRow("epoch-past-year-9999", "253402300800,cpu,h1,1",
           "timestamp '253402300800' is not ISO-8601 or epoch seconds"),
    BadRow("offset-before-year-1", "0001-01-01T00:00:00+01:00,cpu,h1,1",
           "timestamp '0001-01-01T00:00:00+01:00' is not ISO-8601 or epoch seconds"),
    BadRow("long-value-shown-cut", f"1714557600,cpu,h1,{'9' * 70}x",
           f"value {'9' * 60!r}... (71 characters) is not a number"),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_ROWS, ids=[c.id for c in BAD_ROWS])
def test_rows_elasticsearch_or_a_terminal_would_trip_on_are_refused(tmp_path: Path, case: BadRow) -> None:
    row = case.row.encode() if isinstance(case.row, str) else case.row
    path = write(tmp_path, HEADER.encode() + row + b"\n")
    assert check_error(path) == f"{path}:2: {case.reason}"
    with check_csv_files([path], skip_bad=True) as checked:  # a row problem: --skip-bad skips it
        assert (checked.rows, checked.skipped, checked.listed) == (0, 1, [f"{path}:2: {case.reason}"])


@dataclass(frozen=True)
class BadFile:
    id: str
    text: bytes
    message: str  # `{path}` stands for the file's path


BAD_FILES = [
    BadFile("line-over-the-limit", (HEADER + "1714557600,cpu,h1,1\n").encode() + b"1" * MAX_LINE_BYTES + b"\n",
            f"{{path}}:3: line longer than {MAX_LINE_BYTES} bytes (is it CSV?)"),
    BadFile("header-over-the-limit", b"x" * (10 * MAX_LINE_BYTES),
            f"{{path}}:1: line longer than {MAX_LINE_BYTES} bytes (is it CSV?)"),
    BadFile("not-utf8-names-the-line", (HEADER + "1714557600,cpu,h1,1\n").encode() + b"1714557600,\xff,h1,1\n",
            "{path}:3: not UTF-8 text (invalid start byte at byte 12)"),
    BadFile("utf16", HEADER.encode("utf-16"), "{path}:1: not UTF-8 text (invalid start byte at byte 1)"),
    BadFile("quote-open-at-end-of-file", (HEADER + '1714557600,"cpu,h1,1\n').encode(),
            "{path}:2: a quoted field is still open at the end of the file (unbalanced '\"'?)"),
    BadFile("carriage-return-only-lines", b"timestamp,metric,series,value\r1714557600,cpu,h1,1\r",
            "{path}:1: a carriage return inside a line (lines must end with \\n or \\r\\n)"),
]  # fmt: skip


@pytest.mark.parametrize("skip_bad", [False, True], ids=["strict", "skip-bad"])
@pytest.mark.parametrize("case", BAD_FILES, ids=[c.id for c in BAD_FILES])
def test_file_problems_name_the_line_even_when_skipping(tmp_path: Path, case: BadFile, skip_bad: bool) -> None:
    path = write(tmp_path, case.text)
    assert check_error(path, skip_bad) == case.message.format(path=path)


def test_a_line_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    row = "1714557600,cpu,h1,1"
    padded = row + " " * (MAX_LINE_BYTES - len(row) - 1) + "\n"  # the value is stripped of its spaces
    with check_csv_files([write(tmp_path, HEADER + padded)]) as checked:
        assert [s.value for s in checked.samples()] == [1.0]


def test_names_at_the_limit_and_unicode_are_kept(tmp_path: Path) -> None:
    metric, series = "m" * MAX_NAME_BYTES, "Zürich \u2013 東京 | q"
    with check_csv_files([write(tmp_path, HEADER + f'1714557600,{metric},"{series}",1\n')]) as checked:
        assert [(s.metric, s.series) for s in checked.samples()] == [(metric, series)]


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("1000-01-01", "1000-01-01T00:00:00Z"),
        ("9999-12-31T23:59:59.999", "9999-12-31T23:59:59.999Z"),
        ("1969-12-31T23:59:59.5Z", "1969-12-31T23:59:59.500Z"),
    ],
    ids=["year-1000", "year-9999", "before-1970"],
)
def test_the_years_taken_are_written_as_elasticsearch_reads_them(tmp_path: Path, text: str, written: str) -> None:
    with check_csv_files([write(tmp_path, HEADER + f"{text},cpu,h1,1\n")]) as checked:
        (got,) = checked.samples()
    assert format_timestamp(got.timestamp) == written
    (doc,) = sample_documents([got], SourceSettings())
    assert json.loads(doc["_source"])["@timestamp"] == written


def test_years_are_written_with_four_digits() -> None:
    """Elasticsearch's `date` refuses `999-06-01` (checked on 7.10.2); strftime writes that on Linux."""
    assert format_timestamp(datetime(999, 6, 1, 12, 0, 0, 250_000, tzinfo=UTC)) == "0999-06-01T12:00:00.250Z"


def test_skip_bad_names_the_first_rows_and_counts_all(tmp_path: Path) -> None:
    rows = [f"{1714557600 + i},cpu,h1,{'x' if i % 2 else i}" for i in range(30)]
    path = write(tmp_path, HEADER + "\n".join(rows) + "\n")
    with check_csv_files([path], skip_bad=True) as checked:
        assert (checked.rows, checked.skipped) == (15, 15)
        assert checked.listed == [f"{path}:{line}: value 'x' is not a number" for line in (3, 5, 7, 9, 11)]
        assert checked.notes() == [
            *(f"skipped {m}" for m in checked.listed),
            f"skipped {15 - MAX_LISTED_BAD_ROWS} more bad rows (only the first are listed)",
        ]
        assert [s.value for s in checked.samples()] == [float(i) for i in range(0, 30, 2)]


def test_a_header_only_file_is_noted(tmp_path: Path) -> None:
    empty, full = write(tmp_path, HEADER, "empty.csv"), write(tmp_path, HEADER + "1714557600,cpu,h1,1\n", "full.csv")
    with check_csv_files([empty, full]) as checked:
        assert checked.rows == 1
        assert checked.notes() == [f"{empty}: no rows after the header"]


def test_a_path_with_a_control_character_is_shown_escaped(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "1714557600,cpu,h1,x\n", "a\x1b[2J.csv")
    assert check_error(path) == f"{str(path)!r}:2: value 'x' is not a number"


def test_a_file_cut_between_the_passes_fails_before_the_first_sample(tmp_path: Path) -> None:
    first = write(tmp_path, HEADER + "1714557600,cpu,h1,1\n", "1.csv")
    second = write(tmp_path, HEADER + "1714557600,cpu,h1,1\n", "2.csv")
    with check_csv_files([first, second]) as checked:
        second.write_text(HEADER)
        samples = checked.samples()
        with pytest.raises(DataError, match=r"2\.csv: changed after it was checked; import again$"):
            next(samples)


def test_a_file_replaced_between_the_passes_fails_before_the_first_sample(tmp_path: Path) -> None:
    first, second = write(tmp_path, HEADER + "1714557600,cpu,h1,1\n", "1.csv"), write(tmp_path, HEADER, "2.csv")
    with check_csv_files([first, second]) as checked:
        replacement = write(tmp_path, HEADER + "1714557600,cpu,h1,1\n", "new.csv")
        replacement.replace(second)
        samples = checked.samples()
        with pytest.raises(DataError, match=r"2\.csv: changed after it was checked; import again$"):
            next(samples)


def test_a_file_that_grows_between_the_passes_gives_exactly_the_rows_checked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, HEADER + "1714557600,cpu,h1,1\n")
    with check_csv_files([path]) as checked:
        with path.open("a") as appended:
            appended.write("1714561200,cpu,h1,2\n")
        assert [s.value for s in checked.samples()] == [1.0]
    checked_bytes = len(HEADER) + 20
    assert caplog.messages == [
        f"{path}: grew by 20 bytes since it was checked; importing the {checked_bytes} bytes checked"
    ]


def test_a_file_changed_in_a_later_block_stops_before_any_row_of_that_block(tmp_path: Path) -> None:
    """Rows of the blocks before the change are the checked file's; none of the changed block is read."""
    rows = [f"{1714557600 + i},cpu,h1,{i}\n" for i in range(60_000)]  # about 1.3 MiB: two blocks
    path = write(tmp_path, HEADER + "".join(rows))
    with check_csv_files([path]) as checked:
        samples = checked.samples()
        first = next(samples)
        with path.open("r+b") as handle:  # the same size: one value changed in the second block
            handle.seek(path.stat().st_size - 3)
            handle.write(b"7")
        got = [first]
        with pytest.raises(DataError) as caught:
            got.extend(samples)
    block_rows = sum(1 for _ in (HEADER + "".join(rows)).encode()[: 1 << 20].split(b"\n")) - 2
    assert [s.value for s in got] == [float(i) for i in range(len(got))] and len(got) <= block_rows
    assert str(caught.value) == (
        f"{path}: changed while it was being imported (its bytes differ from the checked ones from line"
        f" {block_rows + 2} on); rows before line {block_rows + 2} may be indexed, each as it was checked, none"
        " after: import the file again once it stays unchanged to finish (a row rewrites its own document)"
    )


def test_a_file_changed_in_place_during_the_second_pass_is_caught(tmp_path: Path) -> None:
    """Same size and mtime, so the change shows only in what the second pass reads."""
    path = write(tmp_path, HEADER + "1714557600,cpu,h1,1\n1714557600,cpu,h2,2\n")
    stamp = path.stat()
    with check_csv_files([path]) as checked:
        path.write_text(HEADER + "1714557600,cpu,h1,1\n1714557600,cpu,h2,x\n")
        os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        with pytest.raises(DataError, match="changed while it was being imported"):
            list(checked.samples())


def test_a_pipe_is_checked_and_read_back_from_a_spooled_copy(tmp_path: Path) -> None:
    fifo = tmp_path / "rows.csv"
    os.mkfifo(fifo)
    text = HEADER + "".join(f"{1714557600 + i},cpu,h1,{i}\n" for i in range(5000))
    writer = threading.Thread(target=fifo.write_text, args=(text,))
    writer.start()
    with check_csv_files([fifo]) as checked:
        writer.join()
        assert checked.rows == 5000
        assert [s.value for s in checked.samples()] == [float(i) for i in range(5000)]


def test_a_bad_row_in_a_pipe_names_its_line(tmp_path: Path) -> None:
    fifo = tmp_path / "rows.csv"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_text, args=(HEADER + "1714557600,cpu,h1,1\n,cpu,h1,2\n",))
    writer.start()
    assert check_error(fifo) == f"{fifo}:3: timestamp '' is not ISO-8601 or epoch seconds"
    writer.join()


# ---- ids ---------------------------------------------------------------------------------------------------
def test_ids_keep_metric_series_and_time_apart() -> None:
    """The old `metric|series|timestamp` id made these one document; each is its own now."""
    samples = [
        MetricSample(T10, "a|b", "c", 1.0),
        MetricSample(T10, "a", "b|c", 1.0),
        MetricSample(T10, "a", "b", 1.0),
        MetricSample(T10, 'a","b', "c", 1.0),
        MetricSample(T10, "a", '","b", "c"', 1.0),
        MetricSample(T10 + timedelta(milliseconds=1), "a", "b", 1.0),
    ]
    ids = [document_id(s) for s in samples]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 64 and set(i) <= set("0123456789abcdef") for i in ids)


def test_ids_depend_on_the_instant_to_the_millisecond_only() -> None:
    """Elasticsearch's `date` keeps milliseconds: rows a few microseconds apart are one document, as in the index."""
    early, late = T10 + timedelta(microseconds=250_100), T10 + timedelta(microseconds=250_900)
    assert document_id(MetricSample(early, "cpu", "h1", 1.0)) == document_id(MetricSample(late, "cpu", "h1", 2.0))


def test_id_is_the_sha256_of_the_json_key() -> None:
    """Pinned: a change of the id would make re-imports duplicate every document."""
    key = b'["cpu","host-b",1714557600000]'
    assert document_id(MetricSample(T10, "cpu", "host-b", 0.75)) == hashlib.sha256(key).hexdigest()
    assert document_id(MetricSample(T10, "cpu", "host-b", 0.75)) == (
        "03c6aa6eaf7cf326d33b62ef96b1cdabf2b20e2223dc12c03e4a8aff5b275576"
    )


@pytest.mark.parametrize(
    ("metric", "series"),
    [("cpu", "host-b"), ('a"b', "c"), ("a\\b", "c"), ("é ü", "日本"), ("a\u2028b", "c"), ("a", "tab\there")],
    ids=["plain", "quote", "backslash", "non-ascii", "line-separator", "control"],
)
def test_every_name_gets_the_id_of_its_json_key(metric: str, series: str) -> None:
    """Plain names skip json.dumps; the key must be what it would write, whatever the name."""
    key = json.dumps([metric, series, 1714557600000], ensure_ascii=False, separators=(",", ":"))
    want = hashlib.sha256(key.encode("utf-8")).hexdigest()
    assert document_id(MetricSample(T10, metric, series, 1.0)) == want


@pytest.mark.parametrize(
    ("metric", "series", "value"),
    [("cpu", "host-b", 0.75), ('a"b', "c\\d", -0.0), ("é ü", "日本", 1e-300), ("a\u2028b", "tab\there", 12345678.9)],
    ids=["plain", "quote-backslash", "non-ascii", "line-separator-control"],
)
def test_documents_are_the_json_of_their_fields(metric: str, series: str, value: float) -> None:
    """The documents' JSON text is written by hand for speed; it must be what json.dumps writes of the fields."""
    source = SourceSettings()
    (doc,) = sample_documents([MetricSample(T10, metric, series, value)], source)
    fields = {source.time_field: "2024-05-01T10:00:00Z", source.metric_field: metric}
    fields |= {source.series_fields[0]: series, source.value_field: value}
    assert doc["_source"] == json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    assert doc["_id"] == document_id(MetricSample(T10, metric, series, value))


# ---- index names -------------------------------------------------------------------------------------------
GOOD_INDEX = ["atlas-metrics", "metrics_2024.05", "é-metrics", ".hidden-ish", "a" * 255]
BAD_INDEX = [
    ("Metrics", "it must be lowercase"),
    ("_metrics", "it cannot start with -, _ or +"),
    ("-metrics", "it cannot start with -, _ or +"),
    ("+metrics", "it cannot start with -, _ or +"),
    ("my metrics", "it cannot contain ' '"),
    ("a\\b", "it cannot contain '\\\\'"),
    ("a/b", "it cannot contain '/'"),
    ("metrics-*", "it cannot contain '*'"),
    ("a?b", "it cannot contain '?'"),
    ('a"b', "it cannot contain '\"'"),
    ("a<b>", "it cannot contain '<' '>'"),
    ("a|b", "it cannot contain '|'"),
    ("a,b", "it cannot contain ','"),
    ("a#b", "it cannot contain '#'"),
    ("a:b", "it cannot contain ':'"),
    ("a\nb", "it cannot contain '\\n'"),
    (".", "it cannot be . or .."),
    ("..", "it cannot be . or .."),
    ("", "it is empty"),
    ("é" * 128, "it is longer than 255 bytes"),
]


@pytest.mark.parametrize("name", GOOD_INDEX)
def test_good_index_names_pass(name: str) -> None:
    assert check_index_name(name, "--index") == name


@pytest.mark.parametrize(("name", "problem"), BAD_INDEX, ids=[repr(n) for n, _ in BAD_INDEX])
def test_bad_index_names_are_refused_naming_the_rule(name: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_index_name(name, "--index")
    assert str(caught.value) == f"--index: {name!r} is not a valid index name: {problem}"
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_value_json_cannot_hold_fails_loudly(value: float) -> None:
    """The readers drop NaN and infinities; should one get through, it must not become a document Elasticsearch
    would refuse in the middle of a bulk."""
    with pytest.raises(ValueError, match="is not a finite number"):
        list(sample_documents([MetricSample(T10, "cpu", "h1", value)], SourceSettings()))
