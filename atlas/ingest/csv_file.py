"""Read metric CSV files (`timestamp,metric,series,value`, header row) into validated UTC samples in bounded memory:
one pass checks every file whole, a second pass reads back exactly the samples the check admitted. What a row's
fields mean (the header's order, each field's rules) is csv_rows'; this module reads files, lines and fields."""

from __future__ import annotations

import csv
import logging
import os
import stat
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from atlas import files
from atlas.errors import DataError
from atlas.ingest.csv_rows import (
    COLUMNS,
    MAX_NAME_BYTES,
    MAX_YEAR,
    MIN_YEAR,
    BadRow,
    MetricSample,
    column_order,
    format_timestamp,
    parse_row,
    parse_timestamp,
    show_text,
)

__all__ = [  # the names importers of CSV files use, wherever they are defined
    "COLUMNS", "MAX_LINE_BYTES", "MAX_LISTED_BAD_ROWS", "MAX_NAME_BYTES", "MAX_YEAR", "MIN_YEAR", "CsvCheck",
    "FileCheck", "MetricSample", "check_csv_files", "display_path", "format_timestamp", "open_input",
    "parse_timestamp", "show_text",
]  # fmt: skip

MAX_LINE_BYTES = 64 * 1024  # including the line ending; a longer line is not a metric row (or not CSV at all)
MAX_LISTED_BAD_ROWS = 5  # --skip-bad names this many bad rows and counts the rest
_BOM = b"\xef\xbb\xbf"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileCheck:
    """What the check pass found in one file, and how the second pass finds the same bytes again."""

    path: Path
    rows: int  # good rows
    bad: int  # rows skipped (only with skip_bad)
    identity: tuple[int, int] | None  # (device, inode) of a regular file
    spool: BinaryIO | None  # a copy of a pipe's or device's bytes, which cannot be read twice
    size: int = 0  # bytes checked; the second pass reads this far and no further (a growing file keeps its rows)
    digests: tuple[int, ...] = ()  # crc32 of each block checked, compared block by block by the second pass


class CsvCheck:
    """Every file checked whole; `samples()` reads them again. Use it as a context manager: it owns spooled copies."""

    def __init__(self, files: list[FileCheck], listed: list[str], skip_bad: bool, cleanup: ExitStack) -> None:
        self.files = files
        self.listed = listed  # `path:line: reason` of the first MAX_LISTED_BAD_ROWS bad rows
        self.skip_bad = skip_bad
        self._cleanup = cleanup

    @property
    def rows(self) -> int:
        """Good rows in all files, each to become one document (repeated keys included)."""
        return sum(f.rows for f in self.files)

    @property
    def skipped(self) -> int:
        return sum(f.bad for f in self.files)

    def notes(self) -> list[str]:
        """Warnings for stderr: the first bad rows skipped, how many more, and files with no rows."""
        notes = [f"skipped {message}" for message in self.listed]
        if self.skipped > len(self.listed):
            notes.append(f"skipped {self.skipped - len(self.listed)} more bad rows (only the first are listed)")
        notes += [f"{display_path(f.path)}: no rows after the header" for f in self.files if not f.rows + f.bad]
        return notes

    def samples(self) -> Iterator[MetricSample]:
        """The good samples of every file, read again; DataError if a file changed since it was checked."""
        for checked in self.files:  # before the first sample: a file replaced or cut fails with nothing written
            if checked.identity is not None:
                _refuse_change(checked, *_path_identity(checked.path))
        for checked in self.files:
            yield from _reread(checked, self.skip_bad)

    def close(self) -> None:
        self._cleanup.close()

    def __enter__(self) -> CsvCheck:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def check_csv_files(paths: Sequence[Path], *, skip_bad: bool = False) -> CsvCheck:
    """Check every file whole, streaming, before anything is indexed; a bad row raises DataError unless skipped.

    Holds no rows: memory stays bounded by MAX_LINE_BYTES whatever the size of the files.
    """
    cleanup = ExitStack()  # spooled copies of pipes, kept for the second pass unless the check fails
    try:
        listed: list[str] = []
        files = [_check_file(path, skip_bad, listed, cleanup) for path in paths]
    except BaseException:
        cleanup.close()
        raise
    return CsvCheck(files, listed, skip_bad, cleanup)


def _check_file(path: Path, skip_bad: bool, listed: list[str], cleanup: ExitStack) -> FileCheck:
    where = display_path(path)
    with open_input(path) as opened:
        identity = _stat_identity(os.fstat(opened.fileno()))
        # A pipe or device is copied while checked: the second pass needs the same bytes, and cannot reread them.
        spool = None if identity else cleanup.enter_context(tempfile.TemporaryFile(prefix="atlas-csv-"))  # noqa: SIM115
        handle = _Recorded(opened)
        rows = bad = 0
        for line, item in _read_rows(handle, where, spool):
            if isinstance(item, MetricSample):
                rows += 1
                continue
            if not skip_bad:
                raise DataError(f"{where}:{line}: {item}")
            bad += 1
            if len(listed) < MAX_LISTED_BAD_ROWS:
                listed.append(f"{where}:{line}: {item}")
    return FileCheck(path, rows, bad, identity, spool, handle.size, tuple(handle.digests))


class _Recorded:
    """A reader that notes the size and a crc32 of each block read, for the second pass to compare."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.size = 0
        self.digests: list[int] = []

    def read(self, n: int) -> bytes:
        block = self._handle.read(n)
        if block:
            self.size += len(block)
            self.digests.append(zlib.crc32(block))
        return block


class _Replayed:
    """A reader of the bytes checked, and no further: each block must be the block checked (crc32), else DataError
    before any row of it is read. Rows of earlier blocks are the checked file's, so an import that stops here has
    written only rows one clean import would write."""

    def __init__(self, handle: BinaryIO, checked: FileCheck) -> None:
        self._handle, self._checked = handle, checked
        self._read = self._block = self._lines = 0

    def read(self, n: int) -> bytes:
        block = self._handle.read(min(n, self._checked.size - self._read))
        if self._read + len(block) < self._checked.size and len(block) < n:
            self._changed("it shrank")
        if block and (
            self._block >= len(self._checked.digests) or zlib.crc32(block) != self._checked.digests[self._block]
        ):
            self._changed("its bytes differ from the checked ones")
        self._read += len(block)
        self._block += bool(block)
        self._lines += block.count(b"\n")
        return block

    def _changed(self, how: str) -> None:
        line = self._lines + 1
        raise DataError(
            f"{display_path(self._checked.path)}: changed while it was being imported ({how} from line {line} on);"
            f" rows before line {line} may be indexed, each as it was checked, none after: import the file again"
            " once it stays unchanged to finish (a row rewrites its own document)"
        )


def _reread(checked: FileCheck, skip_bad: bool) -> Iterator[MetricSample]:
    where = display_path(checked.path)
    rows = bad = 0
    with open_input(checked.path) if checked.spool is None else _rewound(checked.spool) as opened:
        handle: _Reader = opened
        if checked.identity is not None:
            _refuse_change(checked, _stat_identity(os.fstat(opened.fileno())), os.fstat(opened.fileno()).st_size)
            handle = _Replayed(opened, checked)
            grown = os.fstat(opened.fileno()).st_size - checked.size
            if grown > 0:
                log.warning("%s: grew by %d bytes since it was checked; importing the %d bytes checked", where,
                            grown, checked.size)  # fmt: skip
        for _, item in _read_rows(handle, where, None):
            if isinstance(item, MetricSample):
                rows += 1
                yield item
            elif skip_bad:
                bad += 1
            else:
                raise DataError(f"{where}: changed while it was being imported (a bad row appeared); import again")
    if (rows, bad) != (checked.rows, checked.bad):
        raise DataError(f"{where}: changed while it was being imported ({checked.rows} good rows, now {rows})")


def _rewound(spool: BinaryIO) -> BinaryIO:
    spool.seek(0)
    return spool  # closing it (leaving the `with`) deletes it, once read the second time


def _refuse_change(checked: FileCheck, identity: tuple[int, int] | None, size: int | None) -> None:
    """A file replaced by another or cut below the size checked fails before anything of it is indexed."""
    if identity != checked.identity or size is None or size < checked.size:
        raise DataError(f"{display_path(checked.path)}: changed after it was checked; import again")


def open_input(path: Path) -> BinaryIO:
    """The file opened for reading bytes (files.open_input: the one reader of user files)."""
    return files.open_input(path)


def _stat_identity(st: os.stat_result) -> tuple[int, int] | None:
    """Which regular file it is (device, inode); None for pipes and devices."""
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def _path_identity(path: Path) -> tuple[tuple[int, int] | None, int | None]:
    try:
        st = os.stat(path)
    except OSError:  # gone or unreadable: changed, as far as the import is concerned
        return None, None
    return _stat_identity(st), st.st_size


def display_path(path: Path) -> str:
    """The path as the user typed it, escaped when it holds characters a terminal would act on."""
    return files.shown(path)


_BLOCK_BYTES = 1 << 20  # read at a time: with lines of at most MAX_LINE_BYTES, memory stays bounded


class _Reader(Protocol):
    def read(self, n: int, /) -> bytes: ...


def _lines(handle: _Reader, where: str, spool: BinaryIO | None) -> Iterator[str]:
    """The decoded lines of a binary file, without their `\\n`, read in blocks and numbered from 1 in messages.

    Raises DataError naming the line for a line over MAX_LINE_BYTES (the `\\n` included) and bytes that are not
    UTF-8, once the lines before it are taken: rows before a bad line are checked first."""
    number = 0
    carry = b""
    while True:
        try:
            block = handle.read(_BLOCK_BYTES)
        except OSError as exc:
            raise DataError(f"{where}: cannot read: {exc.strerror or exc}") from exc
        if spool is not None:
            spool.write(block)
        data = carry + block
        if block:  # its complete lines; the rest waits for the next block
            end = data.rfind(b"\n")
            pieces, carry = (data[:end].split(b"\n"), data[end + 1 :]) if end >= 0 else ([], data)
        else:  # the end of the file: what is left is its last line, without a `\n`
            pieces, carry = ([data] if data else []), b""
        for piece in pieces:
            number += 1
            if len(piece) >= MAX_LINE_BYTES + (not block):  # the last line of a file may lack its `\n`
                raise DataError(f"{where}:{number}: line longer than {MAX_LINE_BYTES} bytes (is it CSV?)")
            if number == 1 and piece.startswith(_BOM):
                piece = piece[len(_BOM) :]
            try:
                yield piece.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{where}:{number}: not UTF-8 text ({exc.reason} at byte {exc.start + 1})") from None
        if not block:
            return
        if len(carry) > MAX_LINE_BYTES:
            raise DataError(f"{where}:{number + 1}: line longer than {MAX_LINE_BYTES} bytes (is it CSV?)")


def _read_rows(handle: _Reader, where: str, spool: BinaryIO | None) -> Iterator[tuple[int, MetricSample | str]]:
    """(line, sample) for each good row and (line, reason) for each bad one; DataError for a bad file.

    A line without quotes or carriage returns (but one at its end) is split at its commas, which is what csv.reader
    makes of it; any other line goes through csv.reader."""
    lines = _lines(handle, where, spool)
    order: tuple[int, int, int, int] | None = None
    number = 0
    for line in lines:
        number += 1
        body = line[:-1] if line.endswith("\r") else line
        row = _csv_row(line, lines, where, number) if '"' in body or "\r" in body else body.split(",")
        if len(row) < 2 and _is_blank(row):
            continue
        if order is None:
            order = column_order(where, row)
            continue
        try:
            yield number, parse_row(row, order)
        except BadRow as exc:
            yield number, str(exc)
    if order is None:
        raise DataError(f"{where}: empty file, expected the header row {','.join(COLUMNS)}")


def _csv_row(line: str, lines: Iterator[str], where: str, number: int) -> list[str]:
    """The fields of one line as csv.reader reads them; a quoted field left open at the line's end is an error
    (names and numbers never hold a newline: the quote is unbalanced)."""

    def this_line_only() -> Iterator[str]:
        yield line
        try:
            more = next(lines, None) is not None
        except DataError:  # a bad line follows: a line all the same
            more = True
        after = f"runs on to line {number + 1}" if more else "is still open at the end of the file"
        raise DataError(f"{where}:{number}: a quoted field {after} (unbalanced '\"'?)")

    try:
        return next(csv.reader(this_line_only()), [])
    except csv.Error as exc:
        raise DataError(f"{where}:{number}: {_csv_reason(exc)}") from exc


def _csv_reason(exc: csv.Error) -> str:
    if "new-line character" in str(exc):  # csv's own hint (open with newline='') is about Python, not the file
        return "a carriage return inside a line (lines must end with \\n or \\r\\n)"
    return str(exc)


def _is_blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())
