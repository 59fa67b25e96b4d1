"""Watcher watches from watches/: render, install, and dry-run them against a cluster that may lack Watcher."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from atlas import es_client, files, scoring
from atlas.clock import format_duration, format_instant
from atlas.errors import EsQueryRejected, OutputError
from atlas.es_client import EsClient
from atlas.es_server import ApiVersion, histogram_interval_key
from atlas.indices import percentile_field, result_indices
from atlas.outputs.mustache import render_mustache
from atlas.settings import Settings, ThresholdSettings
from atlas.templating import render_json, render_text

# Watcher renders the search body with Mustache at each trigger; `||-7h` is Elasticsearch date math on top of it.
_SCHEDULED = "{{ctx.trigger.scheduled_time}}"


@dataclass(frozen=True)
class DryRun:
    """A watch executed once: whether its condition held on the live answer, and its rendered actions.

    `executed_by` is `watcher` when the cluster's Watcher ran it, `atlas` when atlas evaluated it without Watcher;
    `action_status` is Watcher's status of each action (`simulated`, `success`, `failure`, ...), empty for atlas.
    """

    watch_id: str
    condition_met: bool
    flagged_metrics: int
    actions: dict[str, str]
    payload: dict[str, Any]
    executed_by: str = "atlas"
    action_status: dict[str, str] = field(default_factory=dict)


def watch_id(settings: Settings) -> str:
    """The id of the job's watch: `atlas-<job>`."""
    return f"atlas-{settings.results.job}"


def build_watch(settings: Settings, api_version: ApiVersion) -> dict[str, Any]:
    """The job's watch for a cluster of this (major, minor) Elasticsearch API version (Server.api_version): the
    threshold stage computed by Elasticsearch from the surprise index, with its alerts."""
    step, th = settings.surprise.step, settings.threshold
    reach = format_duration((th.lookback + 1) * step)
    return render_json(
        "anomaly.json.j2",
        job=settings.results.job,
        interval=format_duration(step),
        index=result_indices(settings.results).surprise,
        range_from=f"{_SCHEDULED}||-{reach}",
        range_to=_SCHEDULED,
        metric_aggs=_metric_aggs(settings, histogram_interval_key(api_version)),
        throttle_period=format_duration(settings.alerts.realert),
        actions=_actions(settings),
    )


def write_watches(settings: Settings, out_dir: Path, api_version: ApiVersion) -> list[Path]:
    """Write each watch for that API version as `<id>.json` (sorted keys, 2-space indent, final newline) into
    out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{watch_id(settings)}.json"
    files.write_output(path, json.dumps(build_watch(settings, api_version), indent=2, sort_keys=True) + "\n", "--out")
    return [path]


def install_watch(client: EsClient, settings: Settings) -> str:
    """PUT the job's watch into Elasticsearch; a clear OutputError when the cluster has no Watcher (OpenSearch never
    has)."""
    wid = watch_id(settings)
    if not has_watcher(client):
        if client.server.is_opensearch:  # no licence or distribution brings it there
            raise OutputError(
                f"the cluster at {client.target} is {client.server.title}, which has no Watcher: use atlas run's"
                " built-in alerts instead (alerts.slack_webhook, alerts.email_to)"
            )
        raise OutputError(
            f"the cluster at {client.target} has no Watcher (it is an x-pack feature: use a default distribution"
            " with a licence that includes it), or use atlas run's built-in alerts instead"
        )
    try:
        put_watch(client, wid, build_watch(settings, client.server.api_version))
    except EsQueryRejected as exc:
        text = str(exc)
        if "license" in text:  # Watcher is there (has_watcher said so) but the licence does not include it
            raise OutputError(
                "this cluster's licence does not include Watcher (Basic):"
                f" use atlas run's built-in alerts instead ({text})"
            ) from exc
        raise
    return wid


def execute_dry_run(client: EsClient, settings: Settings, scheduled: datetime) -> DryRun:
    """Run the watch's search on the live cluster as if triggered at `scheduled` (UTC), evaluate its condition
    and render its actions' text; nothing is sent."""
    watch = build_watch(settings, client.server.api_version)
    when = format_instant(scheduled, milliseconds=True)  # as Watcher writes ctx times into its templates
    ctx = {"trigger": {"scheduled_time": when}, "watch_id": watch_id(settings)}
    request = json.loads(render_mustache(json.dumps(watch["input"]["search"]["request"]), {"ctx": ctx}))
    payload = es_client.search(client, ",".join(request["indices"]), request["body"])
    context = {"ctx": {**ctx, "payload": payload, "execution_time": when}}
    met = all(_compare(context, path, rule) for path, rule in watch["condition"]["compare"].items())
    actions = {}
    if met:
        for name, action in watch["actions"].items():
            body = action.get("slack", {}).get("message", {}).get("text") or action["email"]["body"]["text"]
            actions[name] = render_mustache(body, context)
    count = payload.get("aggregations", {}).get("flagged_metrics", {}).get("count", 0)
    return DryRun(watch_id(settings), met, int(count), actions, payload)


def execute_once(client: EsClient, settings: Settings, scheduled: datetime, *, send: bool = False) -> DryRun:
    """Run the watch once as if triggered at `scheduled` (UTC): by the cluster's Watcher when it has one, else
    evaluated by atlas (nothing sent then)."""
    if has_watcher(client):
        return execute_in_watcher(client, settings, scheduled, send=send)
    return execute_dry_run(client, settings, scheduled)


def execute_in_watcher(client: EsClient, settings: Settings, scheduled: datetime, *, send: bool) -> DryRun:
    """Have the cluster's Watcher run the installed watch as if triggered at `scheduled` (UTC); its actions are
    sent when `send`, else simulated (rendered, not sent)."""
    answer = execute_watch(client, watch_id(settings), format_instant(scheduled), send=send)
    result = answer.get("watch_record", {}).get("result", {})
    payload = result.get("input", {}).get("payload", {})
    actions, status = {}, {}
    for action in result.get("actions", []):
        status[action["id"]] = str(action.get("status"))
        actions[action["id"]] = _sent_text(action)
    count = payload.get("aggregations", {}).get("flagged_metrics", {}).get("count", 0)
    met = bool(result.get("condition", {}).get("met"))
    return DryRun(watch_id(settings), met, int(count), actions, payload, "watcher", status)


def _sent_text(action: dict[str, Any]) -> str:
    """The text Watcher rendered for a Slack or email action (sent or simulated)."""
    if "slack" in action:
        slack = action["slack"]
        messages = [m.get("message", {}) for m in slack.get("sent_messages", [])] or [slack.get("message", {})]
        return str(messages[0].get("text", "")) if messages else ""
    body = action.get("email", {}).get("message", {}).get("body", {})
    return str(body.get("text", ""))


def _watcher_path(client: EsClient, watch_id: str = "") -> str:
    """Watcher's REST root moved from `_xpack/watcher` (6.x) to `_watcher` (7.0)."""
    root = "/_xpack/watcher" if client.version[0] == 6 else "/_watcher"
    return f"{root}/watch/{watch_id}" if watch_id else root


def has_watcher(client: EsClient) -> bool:
    """Whether the cluster runs Watcher (an x-pack feature that needs a licence that includes it)."""
    stats = es_client.perform_request(
        client,
        "GET",
        f"{_watcher_path(client)}/stats",
        f"asking {client.target} for Watcher",
        absent=(400, 404, 405, 410),
    )
    return stats is not None


def put_watch(client: EsClient, watch_id: str, watch: Mapping[str, Any]) -> None:
    """Create or replace a Watcher watch."""
    es_client.perform_request(
        client, "PUT", _watcher_path(client, watch_id), f"installing watch {watch_id}", body=watch
    )


def execute_watch(client: EsClient, watch_id: str, scheduled_time: str, *, send: bool) -> dict[str, Any]:
    """Run an installed watch now as if triggered at scheduled_time (ISO-8601), its actions sent (past any
    throttle) when `send`, else simulated."""
    body = {
        "trigger_data": {"scheduled_time": scheduled_time, "triggered_time": scheduled_time},
        "action_modes": {"_all": "force_execute" if send else "force_simulate"},
        "record_execution": False,
    }
    path = _watcher_path(client, watch_id) + "/_execute"
    return es_client.perform_request(client, "POST", path, f"executing watch {watch_id}", body=body) or {}


def threshold_history_script(th: ThresholdSettings, result: str) -> str:
    """The `moving_fn` script giving the mean (result "mean") or std ("sd") of a point's threshold history from the
    previous `lookback` present points: atlas/threshold.py's rule, step for step, with the same sums in the same
    order and the same floor (`threshold.min_value`, 0 = none) on the threshold that decides which points are left
    out (and `threshold.recovery`, which keeps an event open), so both flag the same points. NaN where the point has
    no threshold. Result "open": 1 when the last point of the history is anomalous, else 0."""
    return (
        f"int w = {th.window}; double k = {th.sigmas!r}; double f = {th.min_value!r}; double r = {th.recovery!r};"
        " int n = values.length; double[] u = new double[n];"
        " int nu = 0; double mean = Double.NaN; double sd = Double.NaN; boolean open = false;"
        " for (int j = 0; j <= n; ++j) { double[] src; int from;"
        " if (nu >= w) { src = u; from = nu - w; } else if (j >= w) { src = values; from = j - w; }"
        " else { if (j < n) { u[nu++] = values[j]; open = false; } continue; }"
        " double sum = 0; for (int i = from; i < from + w; ++i) { sum += src[i]; } double m = sum / w;"
        " double sq = 0; for (int i = from; i < from + w; ++i) { sq += (src[i] - m) * (src[i] - m); }"
        " double s = Math.sqrt(sq / w);"
        " if (j == n) { mean = m; sd = s; continue; } double t = m + k * s; if (f > 0) { t = Math.max(t, f); }"
        " open = values[j] > t || (open && r > 0 && values[j] >= r); if (!open) { u[nu++] = values[j]; } }"
        f" return {'open ? 1 : 0' if result == 'open' else result};"
    )


def _metric_aggs(settings: Settings, interval_key: str) -> dict[str, Any]:
    step, th = settings.surprise.step, settings.threshold
    aggs: dict[str, Any] = {}
    for p in settings.surprise.percentiles:
        aggs[f"points_{percentile_field(p)}"] = render_json(
            "percentile_points.json.j2",
            field=percentile_field(p),
            interval_key=interval_key,
            interval=format_duration(step),
            newest=_SCHEDULED,
            step_ms=step // timedelta(milliseconds=1),
            lookback=th.lookback,
            mean_script=threshold_history_script(th, "mean"),
            std_script=threshold_history_script(th, "sd"),
            open_script=threshold_history_script(th, "open"),
            sigmas=th.sigmas,
            min_value=th.min_value,
            recovery=th.recovery,
            levels=[th.sigmas, *th.levels[1:]],
            number_format=scoring.NUMBER_FORMAT,
            max_score=scoring.MAX_SCORE,
            score_per_decade=scoring.SCORE_PER_DECADE,
        )
    counts = {
        f"n_{percentile_field(p)}": f"points_{percentile_field(p)}._bucket_count" for p in settings.surprise.percentiles
    }
    aggs["keep"] = {
        "bucket_selector": {"buckets_path": counts, "script": " + ".join(f"params.{n}" for n in counts) + " > 0"}
    }
    return aggs


def _actions(settings: Settings) -> dict[str, Any]:
    alerts = settings.alerts
    keys = [(f"points_{percentile_field(p)}", f"p{p:g}") for p in settings.surprise.percentiles]
    text = render_text("alert_text.txt.j2", job=settings.results.job, percentiles=keys)
    throttle = format_duration(alerts.realert)
    actions: dict[str, Any] = {}
    if alerts.watcher_slack_account:
        actions["slack"] = render_json(
            "slack_action.json.j2", account=alerts.watcher_slack_account, text=text, throttle_period=throttle
        )
    if alerts.watcher_email_account and alerts.email_to:
        subject = f"[atlas] job {settings.results.job}: metrics above their threshold"
        actions["email"] = render_json(
            "email_action.json.j2",
            account=alerts.watcher_email_account,
            to=list(alerts.email_to),
            subject=subject,
            text=text,
            throttle_period=throttle,
        )
    return actions


def _compare(context: dict[str, Any], path: str, rule: dict[str, Any]) -> bool:
    """Watcher's `compare` condition for the operators atlas emits (gt, gte, lt, lte, eq)."""
    value: Any = context
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    ((op, expected),) = rule.items()
    if value is None:
        return False
    checks = {"gt": value > expected, "gte": value >= expected, "lt": value < expected, "lte": value <= expected}
    return bool(checks.get(op, value == expected))
