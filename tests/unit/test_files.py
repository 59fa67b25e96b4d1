"""atlas/files.py: the one reader and the one writer of the user's files."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from atlas import files
from atlas.errors import ConfigError, DataError, OutputError

ROOT = Path(__file__).resolve().parents[2]


def test_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "truth.csv"
    path.write_bytes(b"\xef\xbb\xbfstart,end\n")
    assert files.read_text(path) == "start,end\n"


def test_bytes_that_are_not_utf8_name_the_file_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "truth.csv"
    path.write_bytes(b"\xef\xbb\xbfstart,end\ncaf\xe9\n")
    with pytest.raises(DataError) as caught:
        files.read_text(path, "--truth")
    assert str(caught.value) == f"--truth {path}:2: not UTF-8 text (byte 0xe9)"


def test_a_directory_is_refused_by_the_reader(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r": cannot read: Is a directory$"):
        files.read_text(tmp_path)


def test_a_named_pipe_without_a_writer_is_refused_within_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "PIPE_WAIT_SECONDS", 0.5)
    fifo = tmp_path / "rows.csv"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(DataError) as caught:
        files.read_text(fifo)
    assert time.monotonic() - started < 3
    assert str(caught.value) == f"{fifo}: a named pipe that no program wrote to within 0.5 s"


def test_a_named_pipe_with_a_writer_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "rows.csv"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_text, args=("start,end\n",))
    writer.start()
    assert files.read_text(fifo) == "start,end\n"
    writer.join()


def test_a_regular_file_is_replaced_whole_and_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text("old")
    path.chmod(0o600)
    files.write_output(path, "new")
    assert path.read_text() == "new"
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_a_failure_while_writing_leaves_the_old_file_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "report.html"
    path.write_text("old")

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OutputError) as caught:
        files.write_output(path, "new" * 1000, "--out")
    assert str(caught.value) == f"--out {path}: cannot write: no space left on the device"
    assert caught.value.exit_code == 1
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_a_full_device_is_one_output_error() -> None:
    with pytest.raises(OutputError, match=r"^/dev/full: cannot write: no space left on the device$"):
        files.write_output(Path("/dev/full"), "x" * 100_000)


def test_a_symlink_is_kept_and_its_target_replaced(tmp_path: Path) -> None:
    target = tmp_path / "real.html"
    target.write_text("old")
    link = tmp_path / "link.html"
    link.symlink_to(target.name)
    files.write_output(link, "new")
    assert link.is_symlink() and os.readlink(link) == "real.html"
    assert target.read_text() == "new"


def test_a_named_pipe_gets_the_bytes_and_stays_a_pipe(tmp_path: Path) -> None:
    fifo = tmp_path / "out"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    files.write_output(fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert got == [b"through the pipe\n"]
    assert fifo.is_fifo()


def test_a_named_pipe_without_a_reader_is_refused_within_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "PIPE_WAIT_SECONDS", 0.5)
    fifo = tmp_path / "out"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match=r"a named pipe that no program read from within 0.5 s$"):
        files.write_output(fifo, "x")


@pytest.mark.parametrize("path", ["/dev/stdout", "/dev/null", "/dev/full"])
def test_a_device_is_an_output_written_in_place(path: str) -> None:
    assert files.check_output(Path(path), "--out") == Path(path)
    assert not files.is_replaceable(Path(path))


def test_a_directory_is_refused_as_a_file_output(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is a directory; name a file$"):
        files.check_output(tmp_path, "--out")


@pytest.mark.parametrize("command", [["init", "--out"], ["init", "--force", "--out"]])
def test_init_writes_to_dev_stdout_through_a_pipe(command: list[str]) -> None:
    """/dev/stdout stays a device (root could otherwise rename a regular file over it) and the bytes arrive."""
    proc = subprocess.run(
        [sys.executable, "-m", "atlas", *command, "/dev/stdout"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("#") and "es:" in proc.stdout and proc.stdout.endswith("/dev/stdout\n")
    assert Path("/dev/stdout").is_symlink() or Path("/dev/stdout").is_char_device()


def test_init_through_dev_stdout_redirected_to_a_file_appends_to_it(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text("kept\n")
    with out.open("a") as handle:
        proc = subprocess.run(
            [sys.executable, "-m", "atlas", "init", "--out", "/dev/stdout"],
            stdout=handle,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("kept\n#")
