"""Read what collectd's `csv` plugin writes (`<host>/<plugin>[-<pi>]/<type>[-<ti>]-YYYY-MM-DD`) into validated UTC
samples: one pass checks every file whole, a second pass reads back exactly the lines the check admitted.

The plugin writes one file per value list and day: a header `epoch,<data source>...`, then one line per value,
`<epoch seconds with 3 decimals>,<value>...` (`%lf` for gauges and, with `StoreRates true`, for rates; whole numbers
for counters without it; `nan` for unknown values). Names are those of `ingest rrd` (`rrd_file.name_collectd`),
so the same collectd gives the same metrics and series through either plugin. The date in the file name is the
day the file was written (local time), not the values' time: the values carry their own epoch timestamps.

collectd appends to today's file while it runs, so a file may grow between the two passes: the second pass reads
only the bytes the check read. A file that shrank or was replaced in between fails the import before anything is
written. Unknown (`nan`) and infinite values are gaps, not documents, as in `ingest rrd`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from math import isfinite
from pathlib import Path
from typing import BinaryIO

from atlas.errors import DataError
from atlas.ingest.csv_file import (
    MAX_LINE_BYTES,
    MAX_YEAR,
    MIN_YEAR,
    MetricSample,
    display_path,
    open_input,
    parse_timestamp,
    show_text,
)
from atlas.ingest.rrd_file import name_collectd, name_data_source

LAYOUT = "<host>/<plugin>[-<instance>]/<type>[-<instance>]-YYYY-MM-DD"
_FILE_NAME = re.compile(r"(.+)-([0-9]{4}-[0-9]{2}-[0-9]{2})")
_EPOCH = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_DATA_SOURCE = re.compile(r"[A-Za-z0-9_]+")  # types.db's data source names
_HEAD_BYTES = 4096
_WHOLE = re.compile(r"-?[0-9]+")  # how the plugin writes a counter or derive without StoreRates


@dataclass(frozen=True)
class CollectdFile:
    """What the check pass found in one file, and how the second pass finds the same lines again."""

    path: Path
    data_sources: tuple[str, ...]  # in the header's order
    metrics: tuple[str, ...]  # one per data source
    series: str
    length: int  # bytes of the whole lines checked; the second pass reads this far and no further
    identity: tuple[int, int, str]  # (device, inode, digest of the first bytes): appending keeps them
    samples: int  # finite values, each to become one document
    has_whole_numbers: bool  # counters written as they are (the plugin's StoreRates is false)


class CollectdCheck:
    """Every file checked whole; `samples()` reads the checked lines again."""

    skipped = 0  # no row is skipped: a bad line fails the import

    def __init__(self, files: list[CollectdFile], ignored: list[Path]) -> None:
        self.files = files
        self.ignored = ignored  # files under a directory argument that are not named like the plugin's

    @property
    def rows(self) -> int:
        """Values found by the check pass, each to become one document."""
        return sum(f.samples for f in self.files)

    def notes(self) -> list[str]:
        """Warnings for stderr: files left out of a directory, files with no value, counters stored as they are."""
        notes = []
        if self.ignored:
            more = f" and {len(self.ignored) - 1} more" if len(self.ignored) > 1 else ""
            notes.append(f"left out {display_path(self.ignored[0])}{more}: not named {LAYOUT}")
        for checked in self.files:
            where = display_path(checked.path)
            if not checked.samples:
                notes.append(f"{where}: no known values")
            if checked.has_whole_numbers:
                notes.append(f"{where}: whole numbers: raw counters (set StoreRates true in collectd's csv plugin)")
        return notes

    def samples(self) -> Iterator[MetricSample]:
        """The samples of every file, read again up to where the check stopped (lines collectd appended since then
        are left for the next import); DataError if a file was replaced or shrank in between."""
        for checked in self.files:  # before the first sample: a replaced file fails with nothing written
            with open_input(checked.path) as handle:
                _refuse_change(checked, handle)
        for checked in self.files:
            with open_input(checked.path) as handle:
                _refuse_change(checked, handle)
                count = 0
                for sample in _read_samples(handle, checked):
                    count += 1
                    yield sample
            if count != checked.samples:
                where = display_path(checked.path)
                raise DataError(f"{where}: changed while it was being imported ({checked.samples} values, now {count})")


def check_collectd_csv(paths: Sequence[Path]) -> CollectdCheck:
    """Check every file named, and every file of the plugin's layout under each directory named, before anything is
    indexed; DataError naming the file and line for an empty, truncated or corrupt file."""
    files: list[Path] = []
    ignored: list[Path] = []
    for path in paths:
        if path.is_dir():
            found, others = _walk(path)
            if not found:
                raise DataError(f"{display_path(path)}: no collectd CSV files ({LAYOUT}) under it")
            files += found
            ignored += others
        else:
            files.append(path)
    return CollectdCheck([_check_file(path) for path in files], ignored)


def _walk(directory: Path) -> tuple[list[Path], list[Path]]:
    """(files named like the plugin's, other files) under `directory`, in name order; unreadable folders fail."""
    found: list[Path] = []
    others: list[Path] = []

    def refuse(exc: OSError) -> None:
        where = display_path(Path(exc.filename)) if exc.filename else display_path(directory)
        raise DataError(f"{where}: cannot read: {exc.strerror or exc}") from exc

    for folder, subfolders, names in os.walk(directory, onerror=refuse):
        subfolders.sort()
        for name in sorted(names):
            path = Path(folder) / name
            (found if _split_name(path) is not None else others).append(path)
    return found, others


def _split_name(path: Path) -> tuple[str, str] | None:
    """(metric prefix, series) of a file named as the plugin names its files, else None."""
    match = _FILE_NAME.fullmatch(path.name)
    parts = Path(os.path.abspath(path)).parts
    if match is None or len(parts) < 4:
        return None
    try:
        date.fromisoformat(match.group(2))
    except ValueError:
        return None
    return name_collectd(parts[-3], parts[-2], match.group(1))


def _check_file(path: Path) -> CollectdFile:
    names = _split_name(path)
    if names is None:
        raise DataError(f"{display_path(path)}: not named {LAYOUT} (collectd's csv plugin)")
    if not all(name.isprintable() for name in names):
        raise DataError(f"{display_path(path)}: a control character in the host, plugin or type name")
    prefix, series = names
    with open_input(path) as handle:
        sources = _read_header(handle, path)
        samples = 0
        whole = False
        for line, fields in _read_lines(handle, path, len(sources) + 1, None):
            _parse_epoch(path, line, fields[0])
            for text in fields[1:]:
                whole = whole or _WHOLE.fullmatch(text) is not None
                samples += isfinite(_parse_value(path, line, text))
        length = handle.tell()
        metrics = tuple(name_data_source(prefix, sources, ds) for ds in sources)
        return CollectdFile(path, sources, metrics, series, length, _identity(handle, length), samples, whole)


def _read_samples(handle: BinaryIO, checked: CollectdFile) -> Iterator[MetricSample]:
    path = checked.path
    if _read_header(handle, path) != checked.data_sources:
        raise DataError(f"{display_path(path)}: changed while it was being imported (another header)")
    for line, fields in _read_lines(handle, path, len(checked.metrics) + 1, checked.length):
        timestamp = _parse_epoch(path, line, fields[0])
        for metric, text in zip(checked.metrics, fields[1:], strict=True):
            value = _parse_value(path, line, text)
            if isfinite(value):
                yield MetricSample(timestamp, metric, checked.series, value)


def _read_header(handle: BinaryIO, path: Path) -> tuple[str, ...]:
    """The data sources the header `epoch,<ds>,...` names, in its order."""
    raw = handle.readline(MAX_LINE_BYTES + 1)
    where = display_path(path)
    if not raw:
        raise DataError(f"{where}: empty file, expected the header line epoch,<data source>,... collectd writes first")
    text = _decode(raw, path, 1)
    fields = text.split(",")
    sources = fields[1:]
    if fields[0] != "epoch" or not sources or not all(_DATA_SOURCE.fullmatch(ds) for ds in sources):
        raise DataError(f"{where}:1: {show_text(text)} is not collectd's header epoch,<data source>,...")
    if len(set(sources)) != len(sources):
        raise DataError(f"{where}:1: a data source is named twice in {show_text(text)}")
    return tuple(sources)


def _read_lines(handle: BinaryIO, path: Path, width: int, length: int | None) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each line after the header, up to byte `length` (None: to the end of the file)."""
    number = 1
    while length is None or handle.tell() < length:
        try:
            raw = handle.readline(MAX_LINE_BYTES + 1)
        except OSError as exc:
            raise DataError(f"{display_path(path)}: cannot read: {exc.strerror or exc}") from exc
        if not raw:
            if length is not None:
                raise DataError(f"{display_path(path)}: changed while it was being imported (it shrank)")
            return
        number += 1
        fields = _decode(raw, path, number).split(",")
        if len(fields) != width:
            where = f"{display_path(path)}:{number}"
            raise DataError(f"{where}: expected {width} fields (epoch and {width - 1} values), got {len(fields)}")
        yield number, fields


def _decode(raw: bytes, path: Path, number: int) -> str:
    """One whole line without its line end; DataError for a line cut short, too long or not text."""
    where = f"{display_path(path)}:{number}"
    if len(raw) > MAX_LINE_BYTES:
        raise DataError(f"{where}: line longer than {MAX_LINE_BYTES} bytes (is it collectd CSV?)")
    if not raw.endswith(b"\n"):
        raise DataError(f"{where}: the last line has no line end (a truncated file?)")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: not collectd CSV (byte {exc.start + 1} is not ASCII text)") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise DataError(f"{where}: empty line (collectd writes none)")
    return text


def _parse_epoch(path: Path, number: int, text: str) -> datetime:
    where = f"{display_path(path)}:{number}"
    if not _EPOCH.fullmatch(text):
        raise DataError(f"{where}: time {show_text(text)} is not epoch seconds")
    try:
        timestamp = parse_timestamp(text)  # exact decimals: `.123` stays 123 milliseconds
    except ValueError:  # past datetime's range
        timestamp = None
    if timestamp is None or not MIN_YEAR <= timestamp.year <= MAX_YEAR:
        raise DataError(f"{where}: time {show_text(text)} is outside the years {MIN_YEAR} to {MAX_YEAR} (UTC)")
    return timestamp


def _parse_value(path: Path, number: int, text: str) -> float:
    """The value, NaN for collectd's unknown (`nan`, `-nan`); DataError naming the line for anything else."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or "_" in text or text != text.strip():
        raise DataError(f"{display_path(path)}:{number}: value {show_text(text)} is not a number")
    return value


def _identity(handle: BinaryIO, length: int) -> tuple[int, int, str]:
    """What stays the same while collectd appends to a file: device, inode and the first bytes (an inode number
    may be reused by a new file at once)."""
    st = os.fstat(handle.fileno())
    position = handle.tell()
    handle.seek(0)
    head = hashlib.sha256(handle.read(min(length, _HEAD_BYTES))).hexdigest()
    handle.seek(position)
    return st.st_dev, st.st_ino, head


def _refuse_change(checked: CollectdFile, handle: BinaryIO) -> None:
    if os.fstat(handle.fileno()).st_size < checked.length or _identity(handle, checked.length) != checked.identity:
        raise DataError(f"{display_path(checked.path)}: replaced or cut after it was checked; import again")
