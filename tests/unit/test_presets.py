"""`atlas init --preset`: each preset's atlas.yml loads back to the settings it names, durations from the interval."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from atlas.errors import ConfigError
from atlas.presets import preset_overrides
from atlas.settings import Settings, load_settings
from atlas.settings_text import render_config_file


def _written(tmp_path: Path, overrides: dict[str, object]) -> Settings:
    path = tmp_path / "atlas.yml"
    path.write_text(render_config_file(overrides), encoding="utf-8")
    return load_settings(path)


@pytest.mark.parametrize("minutes", [5, 15], ids=["5m", "15m"])
def test_the_hosts_preset_derives_every_duration_from_the_interval(tmp_path: Path, minutes: int) -> None:
    step = timedelta(minutes=minutes)
    settings = _written(tmp_path, dict(preset_overrides("hosts", step)))
    s, th = settings.surprise, settings.threshold
    assert (s.interval, s.step, s.window, th.min_duration) == (step, step, step, step)
    assert s.baseline_window * step == timedelta(hours=1)
    assert s.scale_window is not None and s.scale_window * step == timedelta(days=4)
    assert (s.normalization, s.mode, s.percentiles) == ("zscore", "last", (95.0,))
    assert th.min_value == 8.0
    assert settings.grouping.min_durations == (step, step, step)


def test_the_hourly_preset_without_an_interval_is_the_defaults(tmp_path: Path) -> None:
    assert _written(tmp_path, dict(preset_overrides("hourly", None))) == Settings()


def test_an_interval_that_does_not_divide_an_hour_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"--interval: 7m must divide 1h evenly"):
        preset_overrides("hosts", timedelta(minutes=7))


@pytest.mark.parametrize("interval", [timedelta(minutes=1), timedelta(seconds=30)], ids=["1m", "30s"])
def test_the_hosts_preset_refuses_buckets_shorter_than_five_minutes(interval: timedelta) -> None:
    with pytest.raises(ConfigError, match=r"--interval: .* is shorter than the hosts preset's shortest bucket, 5m"):
        preset_overrides("hosts", interval)
