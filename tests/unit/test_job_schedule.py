"""The warning `atlas run` logs when it spends longer than its step on each window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from atlas import job
from atlas.settings import load_settings

END = datetime(2024, 1, 5, tzinfo=UTC)


def result_of(windows: int) -> job.RunResult:
    ends = tuple(END + k * timedelta(minutes=5) for k in range(windows))
    return job.RunResult(windows=ends, surprise_documents=0, anomalies=(), events=(), dry_run=False)


def test_a_window_that_takes_longer_than_the_step_is_said_and_a_faster_one_is_not() -> None:
    settings = load_settings(None, {"surprise.interval": "5m", "surprise.step": "5m", "surprise.window": "5m"})
    late = job.schedule_warning(settings, result_of(1), timedelta(minutes=7, seconds=12))
    assert late is not None
    assert late.startswith("this run took 432 s per window, longer than surprise.step (5m)")
    assert "scale_window" in late
    assert job.schedule_warning(settings, result_of(1), timedelta(minutes=5)) is None
    assert job.schedule_warning(settings, result_of(1), timedelta(seconds=12)) is None


def test_catching_up_is_judged_per_window_and_a_run_with_nothing_to_do_is_never_late() -> None:
    settings = load_settings(None, {"surprise.interval": "5m", "surprise.step": "5m", "surprise.window": "5m"})
    assert job.schedule_warning(settings, result_of(10), timedelta(minutes=20)) is None  # 2 minutes each
    assert job.schedule_warning(settings, result_of(2), timedelta(minutes=11)) is not None  # 5.5 minutes each
    assert job.schedule_warning(settings, result_of(0), timedelta(hours=1)) is None
