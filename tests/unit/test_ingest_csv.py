"""Reading and validating metric CSV files: good layouts, one-line errors with path:line, skipping bad rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from atlas.errors import DataError
from atlas.ingest.csv_file import MetricSample, check_csv_files, format_timestamp, parse_timestamp

HEADER = "timestamp,metric,series,value\n"
T10 = datetime(2024, 5, 1, 10, tzinfo=UTC)


def sample(ts: datetime, value: float = 1.5, metric: str = "cpu", series: str = "h1") -> MetricSample:
    return MetricSample(timestamp=ts, metric=metric, series=series, value=value)


def write(tmp_path: Path, text: str | bytes, name: str = "a.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


@dataclass(frozen=True)
class Read:
    samples: list[MetricSample]
    skipped: list[str]  # the bad rows listed (the first few)


def read_csv_files(paths: list[Path], *, skip_bad: bool = False) -> Read:
    """Both passes: check every file, then read the samples back."""
    with check_csv_files(paths, skip_bad=skip_bad) as checked:
        samples = list(checked.samples())
        assert len(samples) == checked.rows
        return Read(samples, checked.listed)


@dataclass(frozen=True)
class Good:
    id: str
    text: str | bytes
    expected: list[MetricSample]


GOOD = [
    Good("iso-z", HEADER + "2024-05-01T10:00:00Z,cpu,h1,1.5\n", [sample(T10)]),
    Good("iso-offset", HEADER + "2024-05-01T12:00:00+02:00,cpu,h1,1.5\n", [sample(T10)]),
    Good("iso-naive-is-utc", HEADER + "2024-05-01T10:00:00,cpu,h1,1.5\n", [sample(T10)]),
    Good("iso-space-separator", HEADER + "2024-05-01 10:00:00,cpu,h1,1.5\n", [sample(T10)]),
    Good("iso-millis", HEADER + "2024-05-01T10:00:00.250Z,cpu,h1,1.5\n", [sample(T10 + timedelta(milliseconds=250))]),
    Good("date-only-is-midnight-utc", HEADER + "2024-05-01,cpu,h1,1.5\n", [sample(T10 - timedelta(hours=10))]),
    Good("epoch-int", HEADER + "1714557600,cpu,h1,1.5\n", [sample(T10)]),
    Good("epoch-decimal", HEADER + "1714557600.5,cpu,h1,1.5\n", [sample(T10 + timedelta(milliseconds=500))]),
    Good("epoch-decimal-exact", HEADER + "1714557600.123,cpu,h1,1.5\n", [sample(T10 + timedelta(milliseconds=123))]),
    Good("epoch-digits-never-basic-iso", HEADER + "20240501,cpu,h1,1.5\n",
         [sample(datetime(1970, 8, 23, 6, 21, 41, tzinfo=UTC))]),
    Good("utf8-bom", b"\xef\xbb\xbf" + (HEADER + "1714557600,cpu,h1,1.5\n").encode(), [sample(T10)]),
    Good("crlf", "timestamp,metric,series,value\r\n1714557600,cpu,h1,1.5\r\n1714561200,cpu,h1,2\r\n",
         [sample(T10), sample(T10 + timedelta(hours=1), 2.0)]),
    Good("blank-lines", "\n" + HEADER + "\n1714557600,cpu,h1,1.5\n   \n\n1714561200,cpu,h1,2\n\n",
         [sample(T10), sample(T10 + timedelta(hours=1), 2.0)]),
    Good("columns-reordered", "value,series,timestamp,metric\n1.5,h1,1714557600,cpu\n", [sample(T10)]),
    Good("spaces-stripped", " timestamp , metric,series ,value\n 1714557600 , cpu , h1 , 1.5 \n", [sample(T10)]),
    Good("quoted-comma", HEADER + '1714557600,cpu,"h1,eu",1.5\n', [sample(T10, series="h1,eu")]),
    Good("no-final-newline", HEADER + "1714557600,cpu,h1,-1e3", [sample(T10, -1000.0)]),
    Good("header-only", HEADER, []),
]  # fmt: skip


@pytest.mark.parametrize("case", GOOD, ids=[c.id for c in GOOD])
def test_good_files_load(tmp_path: Path, case: Good) -> None:
    result = read_csv_files([write(tmp_path, case.text)])
    assert result.samples == case.expected
    assert result.skipped == []
    assert all(s.timestamp.utcoffset() == timedelta(0) for s in result.samples)


@dataclass(frozen=True)
class Bad:
    id: str
    text: str | bytes
    message: str  # `{path}` stands for the file's path
    is_row_problem: bool = True  # False: an error even with skip_bad (header, whole file, swallowed lines)


RULE = " (the header must be timestamp,metric,series,value)"
EMPTY = "{path}: empty file, expected the header row timestamp,metric,series,value"
BAD = [
    Bad("value-not-a-number", HEADER + "1714557600,cpu,h1,1\n1714561200,cpu,h1,abc\n",
        "{path}:3: value 'abc' is not a number"),
    Bad("value-empty", HEADER + "1714557600,cpu,h1,\n", "{path}:2: value '' is empty"),
    Bad("value-nan", HEADER + "1714557600,cpu,h1,nan\n", "{path}:2: value 'nan' is not a finite number"),
    Bad("value-inf", HEADER + "1714557600,cpu,h1,inf\n", "{path}:2: value 'inf' is not a finite number"),
    Bad("value-minus-infinity", HEADER + "1714557600,cpu,h1,-Infinity\n",
        "{path}:2: value '-Infinity' is not a finite number"),
    Bad("value-digit-separator", HEADER + "1714557600,cpu,h1,1_000\n", "{path}:2: value '1_000' is not a number"),
    Bad("timestamp-bad-month", HEADER + "2024-13-01,cpu,h1,1\n",
        "{path}:2: timestamp '2024-13-01' is not ISO-8601 or epoch seconds"),
    Bad("timestamp-empty", HEADER + ",cpu,h1,1\n", "{path}:2: timestamp '' is not ISO-8601 or epoch seconds"),
    Bad("timestamp-epoch-millis", HEADER + "1714557600000,cpu,h1,1\n",
        "{path}:2: timestamp '1714557600000' is not ISO-8601 or epoch seconds"),
    Bad("metric-empty", HEADER + "1714557600,,h1,1\n", "{path}:2: metric '' is empty"),
    Bad("series-blank", HEADER + "1714557600,cpu,  ,1\n", "{path}:2: series '  ' is empty"),
    Bad("too-few-fields", HEADER + "1714557600,cpu,1\n", "{path}:2: expected 4 fields, got 3"),
    Bad("too-many-fields", HEADER + "1714557600,cpu,h1,1,\n", "{path}:2: expected 4 fields, got 5"),
    Bad("line-counts-blank-lines-and-crlf",
        "timestamp,metric,series,value\r\n\r\n1714557600,cpu,h1,1\r\n\r\n,cpu,h1,1\r\n",
        "{path}:5: timestamp '' is not ISO-8601 or epoch seconds"),
    Bad("missing-column", "timestamp,metric,value\n1714557600,cpu,1\n", "{path}: missing column 'series'" + RULE,
        is_row_problem=False),
    Bad("extra-column", "timestamp,metric,series,value,host\n", "{path}: unexpected column 'host'" + RULE,
        is_row_problem=False),
    Bad("renamed-column", "time,metric,series,value\n",
        "{path}: unexpected column 'time'; missing column 'timestamp'" + RULE, is_row_problem=False),
    Bad("duplicate-column", "timestamp,metric,series,value,metric\n", "{path}: duplicate column 'metric'" + RULE,
        is_row_problem=False),
    Bad("no-header", "1714557600,cpu,h1,1\n",
        "{path}: first row '1714557600,cpu,h1,1' is not a header (expected timestamp,metric,series,value)",
        is_row_problem=False),
    Bad("empty-file", "", EMPTY, is_row_problem=False),
    Bad("blank-lines-only", "\n \r\n\n", EMPTY, is_row_problem=False),
    Bad("bom-only", b"\xef\xbb\xbf", EMPTY, is_row_problem=False),
    Bad("not-utf8", HEADER.encode() + b"1714557600,caf\xe9,h1,1\n",
        "{path}:2: not UTF-8 text (invalid continuation byte at byte 15)", is_row_problem=False),
    Bad("unbalanced-quote", HEADER + '1714557600,"cpu,h1,1\n1714561200,cpu,h1,2\n',
        "{path}:2: a quoted field runs on to line 3 (unbalanced '\"'?)", is_row_problem=False),
]  # fmt: skip


@pytest.mark.parametrize("skip_bad", [False, True], ids=["strict", "skip-bad"])
@pytest.mark.parametrize("case", [c for c in BAD if not c.is_row_problem], ids=lambda c: c.id)
def test_file_problems_are_errors_even_when_skipping(tmp_path: Path, case: Bad, skip_bad: bool) -> None:
    path = write(tmp_path, case.text)
    with pytest.raises(DataError) as caught:
        read_csv_files([path], skip_bad=skip_bad)
    assert str(caught.value) == case.message.format(path=path)


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_bad_input_is_one_line_naming_path_and_line(tmp_path: Path, case: Bad) -> None:
    path = write(tmp_path, case.text)
    with pytest.raises(DataError) as caught:
        read_csv_files([path])
    assert str(caught.value) == case.message.format(path=path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("skip_bad", [False, True], ids=["strict", "skip-bad"])
@pytest.mark.parametrize(
    ("name", "reason"), [("missing.csv", "No such file or directory"), ("", "Is a directory")], ids=["missing", "dir"]
)
def test_unreadable_path_is_an_error(tmp_path: Path, name: str, reason: str, skip_bad: bool) -> None:
    path = tmp_path / name
    with pytest.raises(DataError) as caught:
        read_csv_files([path], skip_bad=skip_bad)
    assert str(caught.value) == f"{path}: cannot read: {reason}"


def test_skip_bad_lists_bad_rows_and_keeps_good_ones(tmp_path: Path) -> None:
    text = HEADER + "1714557600,cpu,h1,1\n1714557600,cpu,h1,abc\n\n1714557600,cpu,h1\n1714561200,cpu,h1,2\n,cpu,h1,3\n"
    path = write(tmp_path, text)
    result = read_csv_files([path], skip_bad=True)
    assert result.samples == [sample(T10, 1.0), sample(T10 + timedelta(hours=1), 2.0)]
    assert result.skipped == [
        f"{path}:3: value 'abc' is not a number",
        f"{path}:5: expected 4 fields, got 3",
        f"{path}:7: timestamp '' is not ISO-8601 or epoch seconds",
    ]


def test_files_whose_timestamps_do_not_line_up_both_load(tmp_path: Path) -> None:
    hourly = write(tmp_path, HEADER + "2024-05-01T10:00:00Z,cpu,h1,1\n2024-05-01T11:00:00Z,cpu,h1,2\n", "a.csv")
    odd = write(tmp_path, "metric,series,value,timestamp\nlatency,q1,7,1714558620.25\n", "b.csv")
    result = read_csv_files([hourly, odd])
    assert result.samples == [
        sample(T10, 1.0),
        sample(T10 + timedelta(hours=1), 2.0),
        sample(T10 + timedelta(minutes=17, seconds=0.25), 7.0, metric="latency", series="q1"),
    ]


def test_a_bad_later_file_fails_the_whole_read(tmp_path: Path) -> None:
    good = write(tmp_path, HEADER + "1714557600,cpu,h1,1\n", "good.csv")
    bad = write(tmp_path, HEADER + "1714557600,cpu,h1,x\n", "bad.csv")
    with pytest.raises(DataError, match=r"bad\.csv:2: value 'x' is not a number"):
        read_csv_files([good, bad])


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (T10, "2024-05-01T10:00:00Z"),
        (T10 + timedelta(milliseconds=250), "2024-05-01T10:00:00.250Z"),
        (T10 + timedelta(microseconds=123456), "2024-05-01T10:00:00.123Z"),
        (datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2))), "2024-05-01T10:00:00Z"),
    ],
    ids=["whole-seconds", "millis", "micros-truncated", "offset-converted"],
)
def test_format_timestamp(ts: datetime, expected: str) -> None:
    assert format_timestamp(ts) == expected


@pytest.mark.parametrize("text", ["2024-05-01T10:00:00Z", "1714557600", "1714557600.0", " 2024-05-01T10:00:00 "])
def test_parse_timestamp_round_trips(text: str) -> None:
    assert format_timestamp(parse_timestamp(text)) == "2024-05-01T10:00:00Z"
