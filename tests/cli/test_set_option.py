"""CLI conventions: `atlas --version`, `-s/--set KEY VALUE` (or KEY=VALUE) after file and environment, unknown keys
answered with the closest names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from atlas import __version__
from atlas.cli import cli


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"atlas {__version__}\n")


def test_set_wins_over_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("atlas.yml").write_text("threshold:\n  sigmas: 3\nresults:\n  job: from-file\nes:\n  username: file\n")
    args = ["-s", "threshold.sigmas", "4.5", "--set", "results.job=from-set", "-s", "es.username=cli", "config", "show"]
    result = CliRunner().invoke(cli, args, env={"ATLAS_ES_USERNAME": "env"})
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert (shown["threshold"]["sigmas"], shown["results"]["job"], shown["es"]["username"]) == (4.5, "from-set", "cli")


def test_the_last_set_of_a_key_wins_and_beats_es_url() -> None:
    args = ["--es-url", "http://a:9200", "-s", "es.urls", "http://b:9200,http://c:9200", "-s", "results.job", "x"]
    result = CliRunner().invoke(cli, [*args, "-s", "results.job", "y", "config", "show"])
    shown = json.loads(result.stdout)
    assert (shown["es"]["urls"], shown["results"]["job"]) == (["http://b:9200", "http://c:9200"], "y")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["-s", "threshold.sigmass", "4"],
         "Error: --set: unknown setting 'threshold.sigmass' (did you mean threshold.sigmas?)"),
        (["-s", "threshold.sigmas", "inf"], "Error: threshold.sigmas: must be a finite number, got 'inf'"),
        (["--set", "threshold.sigmas=nan"], "Error: threshold.sigmas: must be a finite number, got 'nan'"),
        (["-s", "es.api_key", "k"],
         "Error: --set es.api_key: secrets are read only from the environment (ATLAS_ES_API_KEY)"),
    ],
    ids=["misspelt", "inf", "nan", "secret"],
)  # fmt: skip
def test_a_bad_set_is_one_error_line(args: list[str], said: str) -> None:
    result = CliRunner().invoke(cli, [*args, "config", "show"])
    assert (result.exit_code, result.stderr.strip(), result.stdout) == (2, said, "")


def test_an_unknown_key_in_the_file_names_the_closest(tmp_path: Path) -> None:
    path = tmp_path / "atlas.yml"
    path.write_text("threshold:\n  sigma: 3\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "config", "show"])
    assert (result.exit_code, result.stderr.strip()) == (
        2,
        "Error: unknown key threshold.sigma (did you mean threshold.sigmas?)",
    )
