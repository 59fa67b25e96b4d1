"""Real Watcher (Elasticsearch 6.8.23, trial licence): the watch installed with `atlas watch install` and run by
Watcher for every window end flags exactly what the Python threshold stage flags, and its Slack and email actions
reach a local HTTP server and a local SMTP server. The same node checks 6.x's two-step surprise aggregation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from atlas import es_client
from atlas.cli import cli
from atlas.embedded_nodes import NodeOptions
from atlas.es_server import moving_fn_takes_shift
from atlas.ingest import load
from atlas.outputs.notify import point_phrase
from atlas.outputs.watch import execute_dry_run, execute_in_watcher
from atlas.settings import load_settings
from atlas.threshold import select_anomalies
from tests.es_nodes import running_node
from tests.integration.test_surprise_parity import WINDOW_ENDS, datasets
from tests.local_servers import Recorded, http_server, smtp_server
from tests.parity import assert_windows_match_reference
from tests.surprise_series import (
    FLOOR,
    PERCENTILES,
    RECOVERY,
    assert_recovery_matters,
    assert_the_floor_matters,
    flagged_by_python,
    flagged_in_payload,
    floor_series,
    index_series,
    recovery_series,
    sample_series,
    threshold_section,
    window_ends,
)

pytestmark = pytest.mark.integration

PORT = 9292
HOUR = timedelta(hours=1)
SLACK_PATH = "/services/T0/B0/atlas-test"


@dataclass(frozen=True)
class WatcherNode:
    url: str
    slack: Recorded
    mail: Recorded


@pytest.fixture(scope="module")
def watcher_node() -> Iterator[WatcherNode]:
    with http_server() as (slack_url, slack_seen), smtp_server() as (smtp_port, mail_seen):
        accounts = {
            "xpack.notification.slack.account.ops.url": slack_url + SLACK_PATH,
            "xpack.notification.email.account.mail.profile": "standard",
            "xpack.notification.email.account.mail.email_defaults.from": "watcher@localhost",
            "xpack.notification.email.account.mail.smtp.host": "127.0.0.1",
            "xpack.notification.email.account.mail.smtp.port": smtp_port,
        }
        with running_node("6.8.23", PORT, NodeOptions(settings=accounts)) as (url, _):
            yield WatcherNode(url, slack_seen, mail_seen)


def write_config(
    path: Path,
    url: str,
    prefix: str,
    window: int,
    sigmas: float,
    lookback: int,
    min_value: float = 0.0,
    recovery: float = 0.0,
) -> Path:
    config = {
        "es": {"urls": [url]},
        "results": {"prefix": prefix},
        "surprise": {"percentiles": list(PERCENTILES)},
        "threshold": threshold_section(window, sigmas, lookback, min_value, recovery),
        "alerts": {"watcher_slack_account": "ops", "watcher_email_account": "mail", "email_to": ["sre@example.com"]},
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("window", "sigmas", "lookback", "min_value", "recovery"),
    [(6, 3.0, 6, 0.0, 0.0), (4, 2.0, 12, 0.0, 0.0), (4, 2.0, 12, FLOOR, 0.0), (4, 2.0, 12, FLOOR, RECOVERY)],
    ids=[
        "window6-sigmas3-plain",
        "window4-sigmas2-unflagged-from-12",
        "window4-sigmas2-unflagged-from-12-floor",
        "window4-sigmas2-unflagged-from-12-floor-recovery",
    ],
)
def test_watcher_flags_what_the_threshold_stage_flags_and_alerts(
    watcher_node: WatcherNode,
    tmp_path: Path,
    window: int,
    sigmas: float,
    lookback: int,
    min_value: float,
    recovery: float,
) -> None:
    prefix = f"atlas-watcher-w{window}-l{lookback}{'-floor' if min_value else ''}{'-recovery' if recovery else ''}"
    config = write_config(
        tmp_path / "atlas.yml", watcher_node.url, prefix, window, sigmas, lookback, min_value, recovery
    )
    settings = load_settings(config, {})
    client = es_client.connect(settings.es)
    assert client.version == (6, 8)
    values = recovery_series() if recovery else floor_series() if min_value else sample_series()
    index_series(client, f"{prefix}-surprise", values)
    expected = flagged_by_python(values, settings.threshold)
    if min_value:
        assert_the_floor_matters(values, settings.threshold)
    if recovery:
        assert_recovery_matters(values, settings.threshold)
    found = {
        (a.metric, a.percentile, a.window_end): a
        for (metric, p), raw in values.items()
        for a in select_anomalies(metric, p, pd.Series(raw, index=window_ends()), settings.threshold, HOUR)
    }

    installed = CliRunner().invoke(cli, ["--config", str(config), "watch", "install"])
    assert installed.exit_code == 0, installed.output
    assert installed.stdout.strip() == "atlas-default"

    slack_before, mail_before = len(watcher_node.slack.requests), len(watcher_node.mail.messages)
    alerted = []
    for end in window_ends():
        t = end.to_pydatetime()
        run = execute_in_watcher(client, settings, t, send=True)
        assert run.executed_by == "watcher"
        assert flagged_in_payload(run.payload, t) == expected[t], t
        assert run.condition_met == bool(expected[t]), t
        if expected[t]:
            alerted.append(t)
            assert run.action_status == {"slack": "success", "email": "success"}, t
            for metric, p in expected[t]:
                assert f"metric {metric}:" in run.actions["slack"] and f"p{p:g} " in run.actions["slack"]
                # each point in the words and numbers the built-in alerts use (atlas/outputs/notify.py)
                assert f"  {point_phrase(found[(metric, p, t)])}, severity " in run.actions["slack"], t
            # atlas's own evaluation of the same watch (for clusters without Watcher) renders the same text, but
            # for the last newline, which Watcher's Mustache drops after a line of closing tags
            own = execute_dry_run(client, settings, t).actions["slack"]
            assert own.rstrip("\n") == run.actions["slack"].rstrip("\n"), t
        else:
            assert run.action_status == {}, t
    assert len(alerted) >= 4

    posts = watcher_node.slack.requests[slack_before:]
    assert len(posts) == len(alerted)
    assert {post["path"] for post in posts} == {SLACK_PATH}
    texts = [json.loads(post["body"])["text"] for post in posts]
    assert all(text.startswith("atlas job default: metrics above their threshold at ") for text in texts)
    mails = watcher_node.mail.messages[mail_before:]
    assert len(mails) == len(alerted)
    assert {m["To"] for m in mails} == {"sre@example.com"}
    assert {m["Subject"] for m in mails} == {"[atlas] job default: metrics above their threshold"}


def test_atlas_watch_execute_uses_watcher_and_simulates_by_default(watcher_node: WatcherNode, tmp_path: Path) -> None:
    prefix = "atlas-watcher-cli"
    config = write_config(tmp_path / "atlas.yml", watcher_node.url, prefix, 6, 3.0, 6)
    settings = load_settings(config, {})
    index_series(es_client.connect(settings.es), f"{prefix}-surprise", sample_series())
    assert CliRunner().invoke(cli, ["--config", str(config), "watch", "install"]).exit_code == 0
    spike = next(t for t, keys in flagged_by_python(sample_series(), settings.threshold).items() if keys)

    slack_before = len(watcher_node.slack.requests)
    result = CliRunner().invoke(cli, ["--config", str(config), "watch", "execute", "--at", spike.isoformat()])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert (answer["executed_by"], answer["condition_met"]) == ("watcher", True)
    assert answer["action_status"] == {"slack": "simulated", "email": "simulated"}
    assert "metric " in answer["actions"]["slack"]
    assert len(watcher_node.slack.requests) == slack_before  # simulated: nothing sent


@pytest.mark.parametrize(
    ("mode", "normalization", "baseline", "scale_window"),
    [
        ("max", "none", "mean", None),
        ("last", "relative", "median", None),
        ("max", "zscore", "median", None),
        ("last", "gaussian", "mean", None),
        ("max", "zscore", "median", 60),
        ("last", "gaussian", "mean", 7),
    ],
)
def test_the_two_step_surprise_of_6x_equals_the_reference(
    watcher_node: WatcherNode, mode: str, normalization: str, baseline: str, scale_window: int | None
) -> None:
    """6.x's moving_fn has no shift: the same node checks the two-step form (baseline, then bucket_script) against
    reference.py, every series' window surprise and every percentile to 1e-9; also with the std over its own
    window (surprise.scale_window)."""
    index = "atlas-test-two-step"
    frame = datasets()
    settings = load_settings(
        None,
        {
            "es.urls": [watcher_node.url],
            "source.index": index,
            "surprise.mode": mode,
            "surprise.normalization": normalization,
            "surprise.baseline": baseline,
            "surprise.scale_window": scale_window,
            "surprise.min_tail_series": 1,
            "surprise.top_series": 1000,
        },
    )
    client = es_client.connect(settings.es)
    assert not moving_fn_takes_shift(client.version)
    if not es_client.index_exists(client, index):
        docs = (
            {"@timestamp": ts.isoformat(), "metric": m, "query": q, "value": v}
            for ts, m, q, v in frame.itertuples(index=False)
        )
        load.load_documents(client, settings.source, index, docs)
    compared = assert_windows_match_reference(client, settings, frame, WINDOW_ENDS)
    assert compared >= len(WINDOW_ENDS) * (frame["metric"].nunique() - 1)
