"""Secrets never printed: with a canary password, API key, cloud id, Slack webhook and SMTP password set, every
command that fails on an unreachable cluster (with and without -v) and `config show` print none of them."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from click.testing import CliRunner

from atlas.cli import cli
from tests.unit.test_notify import closed_port

PASSWORD, API_KEY, HOOK, SMTP = "canary-pw-51c", "canary-key-77d", "canary-hook-0ae", "canary-smtp-93f"
ENCODED_KEY = base64.b64encode(f"id:{API_KEY}".encode()).decode()
CANARIES = (PASSWORD, API_KEY, ENCODED_KEY, HOOK, SMTP)
COMMANDS = {
    "config show": ["config", "show"],
    "setup": ["setup"],
    "run": ["run", "--at", "2024-01-03T00:00:00Z"],
    "backfill": ["backfill", "--from", "2024-01-02", "--to", "2024-01-03"],
    "anomalies": ["anomalies"],
    "watch install": ["watch", "install"],
    "watch execute": ["watch", "execute"],
    "report": ["report", "--out", "report.html"],
    "simulate": ["simulate", "--hours", "2", "--queries", "1", "--nodes", "1", "--metrics", "1"],
}


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_no_secret_in_any_output(
    command: list[str], verbose: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {
        "ATLAS_ES_URL": f"http://elastic:{PASSWORD}@127.0.0.1:{closed_port()}",
        "ATLAS_ES_API_KEY": ENCODED_KEY,
        "ATLAS_SLACK_WEBHOOK_URL": f"https://hooks.example.com/services/{HOOK}",
        "ATLAS_SMTP_PASSWORD": SMTP,
    }
    result = CliRunner().invoke(cli, [*(["-v"] if verbose else []), *command], env=env)
    assert result.exit_code in (0, 1), result.stderr
    if not verbose and result.exit_code == 1:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    written = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())
    for canary in CANARIES:
        assert canary not in result.stdout + result.stderr + written
