"""`atlas ingest csv` refusing bad input before it connects: one `Error:` line, exit 2, in bounded memory.

Elasticsearch is pointed at a closed port: reaching it would end in exit 1, so exit 2 shows the input was refused
before anything was sent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from atlas.cli import cli
from tests.memory import run_measured

NOWHERE = "http://127.0.0.1:9"  # discard port: nothing listens
HEADER = "timestamp,metric,series,value\n"
RSS_LIMIT_MB = 200


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--es-url", NOWHERE, "ingest", "csv", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("name", "reason"),
    [("missing.csv", "No such file or directory"), ("", "Is a directory"), ("file.csv/x", "Not a directory")],
    ids=["missing", "directory", "under-a-file"],
)
def test_a_path_that_is_not_a_readable_file_is_one_line(tmp_path: Path, name: str, reason: str) -> None:
    (tmp_path / "file.csv").write_text(HEADER)
    path = tmp_path / name
    code, out, err = invoke(str(path))
    assert (code, out, err) == (2, "", f"Error: {path}: cannot read: {reason}\n")


def test_an_unreadable_file_is_one_line() -> None:
    with tempfile.TemporaryDirectory() as directory:  # not tmp_path: a fresh directory of its own
        Path(directory).chmod(0o755)
        path = Path(directory) / "secret.csv"
        path.write_text(HEADER)
        path.chmod(0)
        if os.geteuid() != 0:
            assert invoke(str(path)) == (2, "", f"Error: {path}: cannot read: Permission denied\n")
            return
        # Root reads a file whatever its mode: run atlas as root without the capabilities that bypass file modes, as a
        # user without the permission would be (user nobody could not read a checkout in a 0700 directory).
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is part of the test setup"
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m", "atlas"]
        proc = subprocess.run(
            [*command, "ingest", "csv", str(path)], capture_output=True, text=True, cwd=directory, check=False
        )
        assert (proc.returncode, proc.stdout, proc.stderr) == (
            2,
            "",
            f"Error: {path}: cannot read: Permission denied\n",
        )


@pytest.mark.parametrize(
    ("index", "problem"),
    [
        ("Metrics", "it must be lowercase"),
        ("_metrics", "it cannot start with -, _ or +"),
        ("my metrics", "it cannot contain ' '"),
        ("a*", "it cannot contain '*'"),
        ("..", "it cannot be . or .."),
    ],
)
def test_a_bad_index_name_is_refused_before_reading_anything(tmp_path: Path, index: str, problem: str) -> None:
    code, out, err = invoke(str(tmp_path / "missing.csv"), "--index", index)
    assert (code, out, err) == (2, "", f"Error: --index: {index!r} is not a valid index name: {problem}\n")


def test_a_bad_row_in_a_later_file_is_refused_before_connecting(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(HEADER + "1714557600,cpu,h1,1\n")
    bad.write_text(HEADER + "1714557600,cpu,h1,1\n1714557600,cpu\x1b[2J,h1,1\n")
    code, out, err = invoke(str(good), str(bad))
    assert (code, out, err) == (2, "", f"Error: {bad}:3: metric 'cpu\\x1b[2J' contains a control character\n")


def test_skip_bad_names_five_rows_then_counts(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(HEADER + "".join(f"{1714557600 + i},cpu,h1,x\n" for i in range(8)) + "1714557600,cpu,h1,1\n")
    code, _, err = invoke(str(path), "--skip-bad")
    lines = err.splitlines()
    assert lines[:6] == [
        *(f"skipped {path}:{line}: value 'x' is not a number" for line in range(2, 7)),
        "skipped 3 more bad rows (only the first are listed)",
    ]
    assert code == 1 and lines[-1].startswith("Error: ")  # checked, so it connects: to nothing


def peak_rss_mb(tmp_path: Path, *args: str) -> tuple[int, str, float]:
    """Run `atlas ingest csv` in a child process: its exit code, stderr and peak resident memory in MB."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    command = [sys.executable, "-m", "atlas", "--es-url", NOWHERE, "ingest", "csv", *args]
    measured = run_measured(command, tmp_path, env)
    return measured.code, measured.stderr, measured.peak_mb


@pytest.mark.parametrize("source", ["/dev/zero", "sparse-1GiB-line"])
def test_an_endless_line_ends_in_one_line_in_bounded_memory(tmp_path: Path, source: str) -> None:
    """/dev/zero never ends; the sparse file holds a 1 GiB line of NULs without using the disk."""
    if source == "/dev/zero":
        path, line = Path(source), 1
    else:
        path, line = tmp_path / "huge.csv", 2
        path.write_text(HEADER)
        os.truncate(path, len(HEADER) + (1 << 30))
    code, err, peak = peak_rss_mb(tmp_path, str(path))
    assert (code, err) == (2, f"Error: {path}:{line}: line longer than 65536 bytes (is it CSV?)\n")
    assert peak < RSS_LIMIT_MB


def test_checking_a_large_file_holds_no_rows(tmp_path: Path) -> None:
    """500,000 good rows, then a bad one: all are checked, none kept (as samples they would take ~150 MB)."""
    path = tmp_path / "large.csv"
    with path.open("w") as out:
        out.write(HEADER)
        out.writelines(f"{1714557600 + i},metric_{i % 5},host-{i % 997},{i * 0.5}\n" for i in range(500_000))
        out.write("1714557600,cpu,h1,NaN\n")
    code, err, peak = peak_rss_mb(tmp_path, str(path))
    assert (code, err) == (2, f"Error: {path}:500002: value 'NaN' is not a finite number\n")
    assert peak < RSS_LIMIT_MB
