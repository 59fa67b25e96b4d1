"""Every bad input of tests/corpus.py ends in one `Error:` line (or click's one-line usage error) and its exit code
(2, or 1 for a failure while writing), with no traceback and no secret, within its time bound, leaving no file made
or changed; nothing reaches Elasticsearch (the configured one is not even listening)."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from atlas.cli import cli
from tests.corpus import API_KEY, CANARIES, HOOK, BadInput, all_inputs
from tests.unit.test_notify import closed_port

INPUTS = all_inputs()


@dataclass(frozen=True)
class Outcome:
    """How one bad input ended: exit code, everything printed, seconds taken, paths the command left changed."""

    code: int
    printed: str
    seconds: float
    changed: list[str]


def run_bad_input(case: BadInput, directory: Path) -> Outcome:
    """Run one bad input in `directory` (the current directory of the command)."""
    for name, data in case.files.items():
        (directory / name).write_bytes(data)
    for name, what in case.special.items():
        path = directory / name
        if what == "fifo":
            os.mkfifo(path)
        elif what == "dir":
            path.mkdir()
        else:
            path.symlink_to(what.removeprefix("symlink:"))
    before = snapshot(directory)
    env = {
        "ATLAS_ES_URL": f"http://127.0.0.1:{closed_port()}",
        "ATLAS_ES_API_KEY": API_KEY,
        "ATLAS_SLACK_WEBHOOK_URL": HOOK,
        "ATLAS_HOME": str(directory / "home"),
        **case.env,
    }
    started = time.monotonic()
    with contextlib.chdir(directory):
        result = CliRunner().invoke(cli, list(case.args), env=env, catch_exceptions=True)
    seconds = time.monotonic() - started
    printed = result.stdout + result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        printed += f"\nTraceback: {type(result.exception).__name__}: {result.exception}"
    return Outcome(result.exit_code, printed, seconds, half_writes(before, snapshot(directory)))


def snapshot(directory: Path) -> dict[str, bytes | str]:
    """What a directory holds: each regular file's bytes, and the kind of everything else."""
    found: dict[str, bytes | str] = {}
    for path in sorted(directory.rglob("*")):
        name = str(path.relative_to(directory))
        if name == "home" or name.startswith("home/"):  # ATLAS_HOME: atlas's own state, not an output
            continue
        if path.is_symlink():
            found[name] = f"symlink to {os.readlink(path)}"
        elif path.is_file():
            found[name] = path.read_bytes()
        else:
            found[name] = "fifo" if path.is_fifo() else "dir"
    return found


def half_writes(before: dict[str, bytes | str], after: dict[str, bytes | str]) -> list[str]:
    """What a failed command left changed: a file it made (a temporary file, a partial output) or one it changed."""
    return sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))


def test_the_corpus_holds_at_least_200_inputs() -> None:
    assert len(INPUTS) >= 200


@pytest.mark.parametrize("case", INPUTS, ids=[f"{c.kind}: {c.name}" for c in INPUTS])
def test_a_bad_input_is_one_line_and_exit_2(case: BadInput, tmp_path: Path) -> None:
    outcome = run_bad_input(case, tmp_path)
    printed = outcome.printed
    assert "Traceback" not in printed
    assert outcome.code == case.exit_code, printed
    errors = [line for line in printed.strip().splitlines() if line.startswith("Error")]
    assert len(errors) == 1, printed
    for canary in CANARIES:
        assert canary not in printed
    assert outcome.seconds <= case.bound_s, printed
    assert outcome.changed == [], printed
