"""Every bad input of tests/corpus.py ends in one `Error:` line (or click's one-line usage error) and its exit code
(2; 1 for a secret-bearing URL that is valid and meets a closed port), with no traceback and no secret; nothing
reaches Elasticsearch or Kibana (the configured ones are not even listening)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from atlas.cli import cli
from tests.corpus import API_KEY, CANARIES, HOOK, BadInput, all_inputs
from tests.unit.test_notify import closed_port

INPUTS = all_inputs()


def run_bad_input(case: BadInput, directory: Path) -> tuple[int, str]:
    """Run one bad input in `directory` (its working directory, where its files are); returns the exit code and
    everything printed."""
    for name, data in case.files.items():
        (directory / name).write_bytes(data)
    env = {
        "ATLAS_ES_URL": f"http://127.0.0.1:{closed_port()}",
        "ATLAS_ES_API_KEY": API_KEY,
        "ATLAS_SLACK_WEBHOOK_URL": HOOK,
        "ATLAS_HOME": str(directory / "home"),
        **case.env,
    }
    with contextlib.chdir(directory):
        result = CliRunner().invoke(cli, list(case.args), env=env, catch_exceptions=True)
    printed = result.stdout + result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        printed += f"\nTraceback: {type(result.exception).__name__}: {result.exception}"
    return result.exit_code, printed


def test_the_corpus_holds_at_least_200_inputs() -> None:
    assert len(INPUTS) >= 200


@pytest.mark.parametrize("case", INPUTS, ids=[f"{c.kind}: {c.name}" for c in INPUTS])
def test_a_bad_input_is_one_line_and_exit_2(case: BadInput, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, printed = run_bad_input(case, tmp_path)
    assert "Traceback" not in printed, printed
    assert code == case.exit_code, printed
    errors = [line for line in printed.strip().splitlines() if line.startswith("Error")]
    assert len(errors) == 1, printed
    for canary in CANARIES:
        assert canary not in printed
