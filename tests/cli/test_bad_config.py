"""Bad configuration files, environment variables and options: one `Error:` line naming what to fix, exit code 2,
no traceback, and never a secret in the output."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atlas.cli import cli
from atlas.errors import ConfigError
from atlas.settings import load_settings, setting_keys

PASSWORD = "canary-pw-9f3b"


@dataclass(frozen=True)
class Case:
    config: str | bytes = ""
    env: dict[str, str] = field(default_factory=dict)
    said: str = ""


CASES = {
    "window overflows": Case("surprise:\n  window: 99999999999999999999h\n", said="surprise.window:"),
    "window of ten years in minutes": Case(
        "surprise:\n  interval: 1m\n  window: 3650d\n", said="surprise.window: 5256024 buckets per series"
    ),
    "huge baseline window": Case("surprise:\n  baseline_window: 10000000000\n", said="surprise.baseline_window"),
    "scale window of 1": Case(
        "surprise:\n  normalization: zscore\n  scale_window: 1\n", said="surprise.scale_window: must be between 2"
    ),
    "scale window with relative": Case(
        "surprise:\n  scale_window: 288\n", said="surprise.scale_window: only surprise.normalization zscore"
    ),
    "scale window past the bucket limit": Case(
        "surprise:\n  normalization: gaussian\n  interval: 1m\n  window: 7d\n  scale_window: 1440\n",
        said="surprise.window: 11520 buckets per series",
    ),
    "huge threshold window": Case("threshold:\n  window: 1000000\n", said="threshold.window: must be between 2"),
    "interval of 1ms": Case("surprise:\n  interval: 1ms\n  window: 24h\n", said="interval: must be between 1s and"),
    "not UTF-8": Case(b"source:\n  index: caf\xe9\n", said="atlas.yml:2: not UTF-8 text"),
    "duplicate key": Case(
        "threshold:\n  window: 6\n  window: 8\n", said="atlas.yml:3: the key 'window' is given twice"
    ),
    "zero request timeout": Case("es:\n  request_timeout: 0s\n", said="es.request_timeout: must be between 1s and 1h"),
    "empty job": Case("results:\n  job: ''\n", said="results.job: 1 to 100 of"),
    "job with a slash": Case("results:\n  job: a/b\n", said="results.job"),
    "infinite sigmas": Case("threshold:\n  sigmas: .inf\n", said="threshold.sigmas: must be a finite number"),
    "nan level": Case("threshold:\n  levels: [3, .nan, 5]\n", said="threshold.levels[1]: must be a finite number"),
    "NUL in an index name": Case('source:\n  index: "metrics\\0"\n', said="source.index: must not hold control"),
    "ANSI escape in a field": Case('source:\n  value_field: "\\e[31mred"\n', said="source.value_field: must not"),
    "url without host": Case(env={"ATLAS_ES_URL": "http://"}, said="es.urls[0]: 'http://' names no host"),
    "url with a word for port": Case(env={"ATLAS_ES_URL": "http://h:notaport"}, said="es.urls[0]: 'http://h:notaport'"),
    "port out of range": Case(env={"ATLAS_ES_URL": "http://h:99999"}, said="es.urls[0]: 'http://h:99999' is not a URL"),
    "newline in the url": Case(env={"ATLAS_ES_URL": "http://h:9200\nx"}, said="ATLAS_ES_URL[0]: must not hold control"),
    "password in a bad url": Case(
        env={"ATLAS_ES_URL": f"http://elastic:{PASSWORD}@h:notaport"}, said="'http://********@h:notaport'"
    ),
    "'/' in a password": Case(
        env={"ATLAS_ES_URL": f"http://elastic:{PASSWORD}/x@h:9200"},
        said="es.urls[0]: 'http://********@h:9200' has an '@' after its host; percent-encode",
    ),
    "space in a password": Case(
        env={"ATLAS_ES_URL": f"http://elastic:{PASSWORD} x@h:9200"},
        said="es.urls[0]: 'http://********@h:9200' holds a space",
    ),
    "a user without password": Case(
        env={"ATLAS_ES_URL": f"http://{PASSWORD}@h:9200"},
        said="es.urls[0]: 'http://********@h:9200' names a user without a password",
    ),
    "YAML error on a password's line": Case(
        f"kibana:\n  url: 'http://elastic:{PASSWORD}@h:5601' x: 1\n",
        said="atlas.yml:2:",
    ),
    "malformed cloud id": Case(env={"ATLAS_ES_CLOUD_ID": "prod:not-base64!"}, said="es.cloud_id: not an Elastic Cloud"),
    "huge shards": Case("results:\n  shards: 1000000000000000000000\n", said="results.shards"),
    "smtp port out of range": Case("alerts:\n  smtp_port: 70000\n", said="alerts.smtp_port"),
    "top level a list": Case("- a\n- b\n", said="the top level must be a mapping"),
    "deep nesting": Case("a: " + "[" * 5000 + "]" * 5000 + "\n", said="atlas.yml"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_configuration_is_one_line_and_exit_2(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "atlas.yml"
    if isinstance(case.config, bytes):
        path.write_bytes(case.config)
    else:
        path.write_text(case.config)
    result = CliRunner().invoke(cli, ["--config", "atlas.yml", "config", "show"], env=case.env)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert case.said in lines[0]
    assert PASSWORD not in result.stdout + result.stderr


KEYS = setting_keys()
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["1h", "0s", "24h", "1ms", "99999999999999w", "5m", "http://", "http://h:1", "max", "zscore"]),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=4), st.dictionaries(st.text(max_size=5), SCALARS, max_size=3))


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6))
def test_generated_settings_give_settings_or_a_config_error(overrides: dict[str, object]) -> None:
    with contextlib.suppress(ConfigError):
        load_settings(None, overrides)


@settings(max_examples=300, deadline=None)
@given(st.recursive(SCALARS, lambda inner: st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12))
def test_generated_files_give_settings_or_a_config_error(tree: object) -> None:
    path = Path("/tmp/atlas-hypothesis.yml")  # one file, rewritten: hypothesis forbids function-scoped fixtures
    path.write_text(yaml.safe_dump(tree))
    with contextlib.suppress(ConfigError):
        load_settings(path, {})
