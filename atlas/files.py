"""The user's files in and out: one reader that names the file and the problem, and one writer that replaces a
regular file atomically and writes through to a device, a pipe or a symlink's target."""

from __future__ import annotations

import errno
import os
import select
import stat
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from atlas.errors import ConfigError, DataError, OutputError

PIPE_WAIT_SECONDS = 10.0  # how long a named pipe (FIFO) may go without a writer (reading) or reader (writing)
MAX_TEXT_BYTES = 64 * 1024 * 1024  # a truth file or saved-objects file larger than this is not one (or /dev/zero)
_POLL_SECONDS = 0.1
_BOM = b"\xef\xbb\xbf"


def shown(path: Path | str) -> str:
    """The path as the user typed it, escaped when it holds characters a terminal would act on."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def open_input(path: Path, what: str = "") -> BinaryIO:
    """`path` opened for reading bytes: a regular file, or a pipe or device named on purpose (a named pipe must get
    a writer within PIPE_WAIT_SECONDS). DataError naming the file (`what` before it, e.g. `--truth`) otherwise."""
    where = f"{what} {shown(path)}" if what else shown(path)
    try:  # non-blocking: opening a named pipe without a writer would wait silently for ever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise DataError(f"{where}: cannot read: {_reason(exc)}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise DataError(f"{where}: cannot read: Is a directory")
        if stat.S_ISSOCK(mode):
            raise DataError(f"{where}: cannot read: a socket, not a file")
        if stat.S_ISFIFO(mode) and not _readable_within(fd, PIPE_WAIT_SECONDS):
            raise DataError(f"{where}: a named pipe that no program wrote to within {PIPE_WAIT_SECONDS:g} s")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _readable_within(fd: int, seconds: float) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(seconds * 1000))  # a writer's bytes, or its close (POLLHUP)


def read_text(path: Path, what: str = "") -> str:
    """The whole of a UTF-8 text file (a byte-order mark is dropped); DataError naming the file and the problem:
    missing, unreadable, a directory, not UTF-8 (with the line), larger than MAX_TEXT_BYTES."""
    where = f"{what} {shown(path)}" if what else shown(path)
    with open_input(path, what) as handle:
        try:
            data = handle.read(MAX_TEXT_BYTES + 1)
        except OSError as exc:
            raise DataError(f"{where}: cannot read: {_reason(exc)}") from exc
    if len(data) > MAX_TEXT_BYTES:
        raise DataError(f"{where}: larger than {MAX_TEXT_BYTES // (1024 * 1024)} MiB; is it the right file?")
    text = data.removeprefix(_BOM)  # what some editors write first; not part of the text
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = text[: exc.start].count(b"\n") + 1
        raise DataError(f"{where}:{line}: not UTF-8 text (byte 0x{text[exc.start]:02x})") from exc


def check_output(path: Path, option: str, *, is_dir: bool = False) -> Path:
    """Refuse, before any work, an output that cannot be written (ConfigError naming `option`): a file's directory
    must exist and be writable, unless the file is a device or pipe that is itself writable; a directory output may
    be created, if its parent exists."""
    real = Path(os.path.realpath(path))  # a symlink is written through: its target is what must be writable
    if not is_dir and _is_written_in_place(path):
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{option}: {shown(path)} is not writable")
        return path
    if is_dir:
        if real.exists() and not real.is_dir():
            raise ConfigError(f"{option}: {shown(path)} exists and is not a directory")
        anchor = real if real.exists() else real.parent
    else:
        if real.is_dir():
            raise ConfigError(f"{option}: {shown(path)} is a directory; name a file")
        anchor = real.parent
    # the directory as the user named it, unless a symlink led elsewhere
    named = anchor if path.is_symlink() else (path if anchor == real else path.parent)
    if not anchor.is_dir():
        raise ConfigError(f"{option}: the directory {shown(named)} does not exist")
    if not os.access(anchor, os.W_OK):
        raise ConfigError(f"{option}: the directory {shown(named)} is not writable")
    return path


def is_replaceable(path: Path) -> bool:
    """True when writing `path` would replace an existing regular file: what `--force` guards."""
    return not _is_written_in_place(path) and Path(os.path.realpath(path)).is_file()


def _is_written_in_place(path: Path) -> bool:
    """A device, a pipe or a socket, or a path under /dev or /proc (`/dev/stdout` may stand for a regular file the
    shell opened, whose other content is not atlas's to replace): opened and written, never renamed over."""
    if str(Path(os.path.abspath(path))).startswith(("/dev/", "/proc/")):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def write_output(path: Path, data: str | bytes, option: str = "") -> None:
    """Write `data` (text as UTF-8) to `path`: a regular file (or a new path) is replaced atomically through a
    temporary file beside it, so a reader sees the old or the new file and a failure (a full disk) leaves the old
    one; a device or pipe (`/dev/stdout`, a FIFO) gets the bytes in place; a symlink is followed to its target.
    OutputError naming the file and the reason when it cannot be written, with nothing half-written left behind."""
    where = f"{option} {shown(path)}" if option else shown(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    real = Path(os.path.realpath(path))  # a symlink's target is replaced; the symlink stays
    try:
        if _is_written_in_place(path):
            _write_in_place(path, payload, where)
        elif real.is_dir():
            raise OutputError(f"{where}: is a directory; name a file")
        else:
            mode = stat.S_IMODE(real.stat().st_mode) if real.exists() else None
            _replace_atomically(real, payload, mode)
    except OSError as exc:
        raise OutputError(f"{where}: cannot write: {_reason(exc)}") from exc


def _replace_atomically(path: Path, payload: bytes, mode: int | None) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())  # a full disk shows here at the latest, before the old file is replaced
        os.chmod(tmp_name, mode if mode is not None else 0o666 & ~_umask())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _write_in_place(path: Path, payload: bytes, where: str) -> None:
    deadline = time.monotonic() + PIPE_WAIT_SECONDS
    while True:  # non-blocking: opening a named pipe without a reader would wait silently for ever
        try:
            # O_APPEND: `/dev/stdout` redirected with `>>` to a file keeps what the file held
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
            break
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            if time.monotonic() >= deadline:
                raise OutputError(
                    f"{where}: a named pipe that no program read from within {PIPE_WAIT_SECONDS:g} s"
                ) from exc
            time.sleep(_POLL_SECONDS)
    os.set_blocking(fd, True)
    with os.fdopen(fd, "wb") as handle:
        handle.write(payload)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return str(exc.strerror or exc).rstrip(".")
