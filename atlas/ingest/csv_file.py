"""Read metric CSV files (`timestamp,metric,series,value`, header row) into validated UTC samples."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import isfinite
from pathlib import Path

from atlas.clock import format_instant
from atlas.errors import DataError

COLUMNS = ("timestamp", "metric", "series", "value")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_SECONDS = re.compile(r"([+-]?)([0-9]+)(?:\.([0-9]*))?")
_EPOCH_CHARS = "+-.0123456789"


@dataclass(frozen=True, slots=True)
class MetricSample:
    """One value of one series of one metric at one instant (`timestamp` is timezone-aware UTC)."""

    timestamp: datetime
    metric: str
    series: str
    value: float


@dataclass(frozen=True)
class CsvReadResult:
    """The valid samples of all files, and one `path:line: reason` per bad row skipped."""

    samples: list[MetricSample]
    skipped: list[str]


class _BadRow(ValueError):
    """A row that cannot become a sample; the message says why, without path and line."""


def format_timestamp(ts: datetime) -> str:
    """ISO-8601 UTC with a `Z`, to the second (milliseconds when non-zero), e.g. `2024-05-01T10:00:00Z`."""
    return format_instant(ts)


def parse_timestamp(text: str) -> datetime:
    """Parse ISO-8601 (naive or date-only means UTC) or epoch seconds into an aware UTC datetime; else ValueError.

    Digits with an optional sign and decimals (`1714557600`, `1714557600.5`) are epoch seconds, never a
    basic-format ISO date (Python would read `20240501.10` as 2024-05-01T10:00).
    """
    text = text.strip()
    try:
        if text.isdigit() and text.isascii():  # the common epoch case, without the regex
            return datetime.fromtimestamp(int(text), UTC)
        epoch = None if text.strip(_EPOCH_CHARS) else _EPOCH_SECONDS.fullmatch(text)
        if epoch:
            sign, whole, fraction = epoch.groups()
            # Decimal digits, not float: float seconds would turn `.123` into 122999 microseconds.
            delta = timedelta(seconds=int(whole), microseconds=int((fraction or "")[:6].ljust(6, "0")))
            return _EPOCH - delta if sign == "-" else _EPOCH + delta
        value = datetime.fromisoformat(text)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    except (OverflowError, OSError) as exc:  # out of datetime range, or of the platform's time_t
        raise ValueError(f"{text!r} is out of range") from exc


def read_csv_files(paths: Sequence[Path], *, skip_bad: bool = False) -> CsvReadResult:
    """Read and validate every file into UTC samples before returning; a bad row raises DataError unless skipped."""
    samples: list[MetricSample] = []
    skipped: list[str] = []
    names: dict[str, str] = {}  # one str object per distinct metric/series name, to save memory
    for path in paths:
        _read_file(path, skip_bad, samples, skipped, names)
    return CsvReadResult(samples=samples, skipped=skipped)


def _read_file(
    path: Path, skip_bad: bool, samples: list[MetricSample], skipped: list[str], names: dict[str, str]
) -> None:
    try:
        handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed below; errors mapped
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header = next((row for row in reader if not _is_blank(row)), None)
            if header is None:
                raise DataError(f"{path}: empty file, expected the header row {','.join(COLUMNS)}")
            order = _column_order(path, header)
            line = reader.line_num
            for row in reader:
                start, line = line + 1, reader.line_num
                if line != start:
                    # Names and numbers never hold newlines: an unbalanced quote swallowed the lines after it.
                    raise DataError(f"{path}:{start}: a quoted field runs on to line {line} (unbalanced '\"'?)")
                if len(row) < 2 and _is_blank(row):
                    continue
                try:
                    samples.append(_parse_row(row, order, names))
                except _BadRow as exc:
                    if not skip_bad:
                        raise DataError(f"{path}:{start}: {exc}") from None
                    skipped.append(f"{path}:{start}: {exc}")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from exc
        except csv.Error as exc:
            raise DataError(f"{path}:{reader.line_num}: {exc}") from exc
        except OSError as exc:
            raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _is_blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())


def _column_order(path: Path, header: list[str]) -> tuple[int, int, int, int]:
    """The positions of timestamp, metric, series and value in the header; DataError naming a bad column."""
    columns = [name.strip() for name in header]
    expected = ",".join(COLUMNS)
    if not set(columns) & set(COLUMNS):
        raise DataError(f"{path}: first row {','.join(header)!r} is not a header (expected {expected})")
    problems = [f"unexpected column {name!r}" for name in columns if name not in COLUMNS]
    problems += [f"duplicate column {name!r}" for name in COLUMNS if columns.count(name) > 1]
    problems += [f"missing column {name!r}" for name in COLUMNS if name not in columns]
    if problems:
        raise DataError(f"{path}: {'; '.join(problems)} (the header must be {expected})")
    ts, metric, series, value = (columns.index(name) for name in COLUMNS)
    return ts, metric, series, value


def _parse_row(row: list[str], order: tuple[int, int, int, int], names: dict[str, str]) -> MetricSample:
    if len(row) != len(COLUMNS):
        raise _BadRow(f"expected {len(COLUMNS)} fields, got {len(row)}")
    ts, metric_at, series_at, value_at = order
    ts_text, metric_text, series_text, value_text = row[ts], row[metric_at], row[series_at], row[value_at]
    try:
        timestamp = parse_timestamp(ts_text)
    except ValueError:
        raise _BadRow(f"timestamp {ts_text!r} is not ISO-8601 or epoch seconds") from None
    metric, series = metric_text.strip(), series_text.strip()
    if not metric:
        raise _BadRow(f"metric {metric_text!r} is empty")
    if not series:
        raise _BadRow(f"series {series_text!r} is empty")
    try:
        value = float(value_text)
    except ValueError:
        reason = "is empty" if not value_text.strip() else "is not a number"
        raise _BadRow(f"value {value_text!r} {reason}") from None
    if "_" in value_text:  # float() reads `1_000`; a CSV number has no digit separators
        raise _BadRow(f"value {value_text!r} is not a number")
    if not isfinite(value):
        raise _BadRow(f"value {value_text!r} is not a finite number")
    return MetricSample(timestamp, names.setdefault(metric, metric), names.setdefault(series, series), value)
