"""Starting configurations `atlas init` writes: the hourly blog setting, and host metrics at the data's resolution."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

from atlas.clock import format_duration
from atlas.errors import ConfigError

Preset = Literal["hourly", "hosts"]
PRESETS: tuple[Preset, ...] = ("hourly", "hosts")

# Host metrics (one metric per host, its columns as series): every duration is a count of buckets, so a user changes
# only the interval. Chosen on the SMD development machines (docs/evaluation.md, "Real server metrics").
HOST_BASELINE = timedelta(hours=1)  # the median of the last hour is what the host "usually" does now
HOST_SCALE = timedelta(days=4)  # 4 days' spread says how far each column normally strays, spikes of past days included
HOST_PERCENTILE = 95.0  # a host's disruption moves a few of its columns, not most of them
HOST_MIN_SURPRISE = 8.0  # the P95 of the columns' z-scores must also pass 8 standard deviations
HOST_SIGMAS = 3.0  # with the floor doing most of the work, the moving threshold only has to keep a busy host quiet
HOST_RECOVERY = 3.0  # an event, once open, lasts while the P95 stays at or above 3 standard deviations
HOST_REALERT = timedelta(hours=1)
# The shortest bucket: a run reads HOST_SCALE of buckets per column, and at 1 minute (5,760 of them) one run over 19
# hosts took 80 s on 2 cores, behind its 1-minute schedule, and alerted 2.2 false events per machine-day against 0.6
# at 5 minutes (docs/hosts.md, "One-minute buckets"). 1-minute rows are scored as 5-minute means.
HOST_MIN_INTERVAL = timedelta(minutes=5)


def preset_overrides(preset: Preset, interval: timedelta | None) -> Mapping[str, Any]:
    """Settings (dotted keys, as `-s` takes them) of a preset; `interval` is the bucket size (the data's resolution
    or coarser). The hourly preset is atlas's defaults, with its interval when given."""
    if preset == "hourly":
        return {} if interval is None else _hourly(interval)
    step = interval or timedelta(minutes=5)
    if step < timedelta(seconds=1) or HOST_SCALE % step or HOST_BASELINE % step:
        raise ConfigError(f"--interval: {format_duration(step)} must divide 1h evenly (for example 5m or 15m)")
    if step < HOST_MIN_INTERVAL:
        raise ConfigError(
            f"--interval: {format_duration(step)} is shorter than the hosts preset's shortest bucket,"
            f" {format_duration(HOST_MIN_INTERVAL)} (a run reads 4 days of buckets; docs/hosts.md): use --interval"
            f" {format_duration(HOST_MIN_INTERVAL)}, which scores the means of finer rows in each bucket"
        )
    every = format_duration(step)
    return {
        "source.series_fields": ["series"],
        "source.ingest_delay": every,
        "surprise.interval": every,
        "surprise.step": every,
        "surprise.window": every,
        "surprise.mode": "last",
        "surprise.normalization": "zscore",
        "surprise.baseline": "median",
        "surprise.baseline_window": HOST_BASELINE // step,
        "surprise.scale_window": HOST_SCALE // step,
        "surprise.percentiles": [HOST_PERCENTILE],
        "surprise.top_series": 10,
        "threshold.sigmas": HOST_SIGMAS,
        "threshold.levels": [HOST_SIGMAS, 2 * HOST_SIGMAS, 3 * HOST_SIGMAS],
        "threshold.min_value": HOST_MIN_SURPRISE,
        "threshold.recovery": HOST_RECOVERY,
        "threshold.min_duration": every,
        "grouping.field": None,
        "grouping.min_durations": [every, every, every],
        "alerts.realert": format_duration(HOST_REALERT),
    }


def _hourly(interval: timedelta) -> Mapping[str, Any]:
    """The blog's setting scaled to another bucket: windows and steps follow the interval, counts stay."""
    every = format_duration(interval)
    return {
        "surprise.interval": every,
        "surprise.step": every,
        "surprise.window": format_duration(interval * 24),
        "threshold.min_duration": every,
        "grouping.min_durations": [every, every, every],
    }
