"""Configuration through the CLI: bad files give one line naming the key and exit 2; show masks secrets."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from atlas.cli import cli


@dataclass(frozen=True)
class BadConfig:
    name: str
    yaml: str
    expected: str
    env: dict[str, str] = field(default_factory=dict)


BAD_CONFIGS = [
    BadConfig("unknown-key", "source:\n  indx: metrics\n", "unknown key source.indx"),
    BadConfig("unknown-section", "sourc:\n  index: metrics\n", "unknown section 'sourc'"),
    BadConfig("wrong-type", "surprise:\n  baseline_window: many\n", "surprise.baseline_window: must be a whole number"),
    BadConfig("bad-duration", "surprise:\n  interval: 1hour\n", "surprise.interval: '1hour' is not a duration"),
    BadConfig("empty-index", "source:\n  index: ''\n", "source.index: must name an index"),
    BadConfig("missing-index", "source:\n  index:\n", "source.index: must not be empty"),
    BadConfig("secret-in-file", "es:\n  api_key: abc123\n", "es.api_key: secrets are read only from the environment"),
    BadConfig("bad-choice", "surprise:\n  mode: median\n", "surprise.mode: must be one of max, last"),
    BadConfig("percentile-range", "surprise:\n  percentiles: [90, 150]\n", "[1]: must be > 0 and <= 100, got 150"),
    BadConfig("window-not-multiple", "surprise:\n  window: 90m\n", "surprise.window: must be a multiple"),
    BadConfig("bad-url", "es:\n  urls: [localhost:9200]\n", "es.urls[0]: 'localhost:9200' must start with http"),
    BadConfig("not-yaml", "source: [unclosed\n", "not valid YAML"),
    BadConfig("levels-descending", "threshold:\n  levels: [5, 4, 3]\n", "threshold.levels: give 3 ascending sigmas"),
    BadConfig(
        "floor-negative",
        "threshold:\n  min_value: -0.5\n",
        "threshold.min_value: must be between 0 and 1000000, got -0.5",
    ),
    BadConfig("floor-nan", "threshold:\n  min_value: .nan\n", "threshold.min_value: must be a finite number, got nan"),
    BadConfig("floor-inf-text", "threshold:\n  min_value: 'inf'\n", "threshold.min_value: must be a finite number"),
    BadConfig("floor-not-a-number", "threshold:\n  min_value: high\n", "threshold.min_value: must be a finite number"),
    BadConfig("list-expected", "source:\n  series_fields: query\n", "source.series_fields: must be a list"),
    BadConfig("bool-expected", "es:\n  verify_certs: maybe\n", "es.verify_certs: must be true or false"),
    BadConfig("top-level-list", "- es\n", "the top level must be a mapping"),
    BadConfig("bad-env-url", "", "es.urls[0]: 'ftp://x' must start with http", {"ATLAS_ES_URL": "ftp://x"}),
]


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=[c.name for c in BAD_CONFIGS])
def test_bad_config_is_one_line_and_exit_2(case: BadConfig, tmp_path: Path) -> None:
    path = tmp_path / "atlas.yml"
    path.write_text(case.yaml)
    env = {"ATLAS_ES_URL": "", **case.env}
    result = subprocess.run(
        [sys.executable, "-m", "atlas", "--config", str(path), "config", "show"],
        capture_output=True,
        text=True,
        env={**_base_env(), **env},
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and case.expected in lines[0], lines[0]
    assert "abc123" not in result.stderr
    assert result.stdout == ""


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}


def test_config_show_masks_secrets_and_prints_sorted_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATLAS_ES_PASSWORD", "p4ssw0rd-xyz")
    monkeypatch.setenv("ATLAS_ES_USERNAME", "elastic")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["es"]["password"] == "********"
    assert shown["es"]["username"] == "elastic"
    assert "p4ssw0rd-xyz" not in result.output
    assert result.output == json.dumps(shown, indent=2, sort_keys=True) + "\n"


def test_init_writes_a_loadable_file_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "atlas.yml"
    runner = CliRunner()
    first = runner.invoke(cli, ["init", "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert "# Elasticsearch URL(s)" in out.read_text()
    shown = runner.invoke(cli, ["--config", str(out), "config", "show"])
    assert json.loads(shown.output)["surprise"]["percentiles"] == [90.0, 99.0]
    second = subprocess.run(
        [sys.executable, "-m", "atlas", "init", "--out", str(out)], capture_output=True, text=True, check=False
    )
    assert second.returncode == 2
    assert "exists; use --force" in second.stderr


def test_init_of_the_hosts_preset_refuses_one_minute_buckets_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "atlas.yml"
    refused = subprocess.run(
        [sys.executable, "-m", "atlas", "init", "--preset", "hosts", "--interval", "1m", "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and not out.exists()
    assert len(refused.stderr.strip().splitlines()) == 1 and "use --interval 5m" in refused.stderr
    written = CliRunner().invoke(cli, ["init", "--preset", "hosts", "--interval", "5m", "--out", str(out)])
    assert written.exit_code == 0, written.output
    shown = json.loads(CliRunner().invoke(cli, ["--config", str(out), "config", "show"]).output)
    assert (shown["surprise"]["interval"], shown["surprise"]["scale_window"]) == ("5m", 1152)
