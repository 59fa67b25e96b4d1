"""Settings: declared once, loaded from file + environment + overrides, validated at load."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from atlas.clock import format_duration, parse_duration
from atlas.errors import ConfigError
from atlas.settings import Settings, load_settings, setting_keys
from atlas.settings_text import effective_settings, render_config_file

README = Path(__file__).resolve().parents[2] / "README.md"


def test_init_file_loads_back_to_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "atlas.yml"
    path.write_text(render_config_file())
    assert load_settings(path) == Settings()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("250ms", timedelta(milliseconds=250)),
    ],
    ids=["seconds", "minutes", "hours", "days", "weeks", "millis"],
)
def test_durations_parse_and_format_back(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize(
    "text", ["1hour", "h", "-5m", "1.5h", ""], ids=["word", "no-number", "negative", "fraction", "empty"]
)
def test_bad_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "atlas.yml"
    path.write_text("es:\n  urls: [http://file:9200]\n  username: from-file\n")
    monkeypatch.setenv("ATLAS_ES_URL", "http://a:9200,http://b:9200")
    monkeypatch.setenv("ATLAS_ES_USERNAME", "from-env")
    monkeypatch.setenv("ATLAS_ES_PASSWORD", "s3cret-value")
    s = load_settings(path)
    assert s.es.urls == ("http://a:9200", "http://b:9200")
    assert s.es.username == "from-env"
    assert s.es.password == "s3cret-value"


def test_overrides_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_ES_URL", "http://env:9200")
    assert load_settings(None, {"es.urls": ["http://cli:9200"]}).es.urls == ("http://cli:9200",)


def test_effective_settings_mask_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_ES_API_KEY", "c2VjcmV0OmtleQ==")
    shown = effective_settings(load_settings(None))
    assert shown["es"]["api_key"] == "********"
    assert shown["es"]["password"] is None
    assert "c2VjcmV0OmtleQ==" not in repr(shown)
    assert shown["surprise"]["window"] == "24h"


def test_credentials_in_urls_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_ES_URL", "https://elastic:changeme@es.example:9200,http://plain:9200")
    shown = effective_settings(load_settings(None))
    assert shown["es"]["urls"] == ["https://********@es.example:9200", "http://plain:9200"]


def test_settings_are_frozen() -> None:
    s = load_settings(None)
    with pytest.raises(AttributeError):
        s.surprise.window = timedelta(hours=1)  # type: ignore[misc]


def test_wide_form_value_fields_load(tmp_path: Path) -> None:
    path = tmp_path / "atlas.yml"
    path.write_text("source:\n  series_fields: [host.name]\n  value_fields:\n    cpu: system.cpu.total.pct\n")
    s = load_settings(path)
    assert dict(s.source.value_fields) == {"cpu": "system.cpu.total.pct"}


def test_secret_in_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "atlas.yml"
    path.write_text("es:\n  password: hunter2\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "ATLAS_ES_PASSWORD" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_readme_documents_every_setting() -> None:
    text = README.read_text()
    missing = [key for key in setting_keys() if f"`{key}`" not in text]
    assert not missing, f"README.md does not document: {missing}"
