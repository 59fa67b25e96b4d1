"""`atlas watch`, `timelion`, `kibana`, `report`: where people see the job's results, outside atlas itself."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from atlas import es_client, evaluate, files, findings, indices
from atlas.cli_support import CliContext, api_version_of, echo_json, output_path, parse_at, server_version_option
from atlas.errors import ConfigError
from atlas.outputs import kibana as kibana_objects
from atlas.outputs import report, timelion
from atlas.outputs import watch as outputs_watch
from atlas.surprise import resolve_metrics


@click.group()
def watch() -> None:
    """Watcher watches computing the threshold inside Elasticsearch."""


@watch.command("render")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("watches"), show_default=True)
@server_version_option("before 7.2 the watch's date_histogram takes `interval`")
@click.pass_obj
def watch_render(obj: CliContext, out: Path, server_version: str) -> None:
    """Write the job's watch as JSON, ready for PUT _watcher/watch/<id> on a cluster of --server-version."""
    api_version = api_version_of(server_version)
    paths = outputs_watch.write_watches(obj.settings(), output_path(out, "--out", is_dir=True), api_version)
    for path in paths:
        click.echo(str(path))


@watch.command("install")
@click.pass_obj
def watch_install(obj: CliContext) -> None:
    """PUT the job's watch into Elasticsearch."""
    settings = obj.settings()
    click.echo(outputs_watch.install_watch(es_client.connect(settings.es), settings))


@watch.command("execute")
@click.option("--at", help="trigger time (ISO-8601, UTC) [default: now]")
@click.option("--send", is_flag=True, help="with Watcher: send the actions for real (default: simulate them)")
@click.pass_obj
def watch_execute(obj: CliContext, at: str | None, send: bool) -> None:
    """Run the watch once: by the cluster's Watcher (the installed watch) when it has one, else evaluated by atlas
    (its search on the live cluster, its condition, its rendered actions); nothing is sent without --send."""
    settings = obj.settings()
    run = outputs_watch.execute_once(es_client.connect(settings.es), settings, parse_at(at), send=send)
    echo_json(
        {
            "watch": run.watch_id,
            "executed_by": run.executed_by,
            "condition_met": run.condition_met,
            "flagged_metrics": run.flagged_metrics,
            "actions": run.actions,
            "action_status": run.action_status,
        }
    )


@click.command("timelion")
@click.option("--metric", "metrics", multiple=True, help="metric [default: every metric of the source]")
@click.pass_obj
def timelion_command(obj: CliContext, metrics: tuple[str, ...]) -> None:
    """Print the Timelion expression of each metric and percentile."""
    settings = obj.settings()
    names = list(metrics) or resolve_metrics(es_client.connect(settings.es), settings)
    for chart in timelion.timelion_expressions(settings, names):
        click.echo(f"# {chart.metric} p{chart.percentile:g}\n{chart.expression}")


@click.group()
def kibana() -> None:
    """Kibana saved objects: Timelion charts and a dashboard."""


@kibana.command("export")
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("atlas-kibana.ndjson"), show_default=True
)
@click.pass_obj
def kibana_export(obj: CliContext, out: Path) -> None:
    """Write the saved-objects NDJSON (a chart per metric, ground truth when indexed, a dashboard)."""
    settings = obj.settings()
    output_path(out, "--out")
    client = es_client.connect(settings.es)
    with_truth = es_client.index_exists(client, indices.result_indices(settings.results).truth)
    ndjson = kibana_objects.export_saved_objects(settings, resolve_metrics(client, settings), with_truth)
    files.write_output(out, ndjson, "--out")
    click.echo(str(out))


@kibana.command("import")
@click.option("--file", "path", type=click.Path(path_type=Path, dir_okay=False), default=Path("atlas-kibana.ndjson"))
@click.option("--kibana-url", help="Kibana URL [default: kibana.url]")
@click.pass_obj
def kibana_import(obj: CliContext, path: Path, kibana_url: str | None) -> None:
    """POST the NDJSON to Kibana's saved-objects import (overwriting atlas's own objects)."""
    settings = obj.settings({"kibana.url": kibana_url} if kibana_url else {})  # checked and masked as kibana.url
    echo_json(
        kibana_objects.import_saved_objects(files.read_text(path, "--file"), settings.kibana.url, settings.kibana.space)
    )


@click.command("report")
@click.option("--from", "start", help="first window end (ISO-8601, UTC) [default: 7 days before --to]")
@click.option("--to", "end", help="last window end (ISO-8601, UTC) [default: now]")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("report.html"), show_default=True)
@click.option("--png", type=click.Path(path_type=Path, dir_okay=False), help="also a screenshot (needs chromium)")
@click.option("--truth", type=click.Path(path_type=Path, dir_okay=False), help="labelled intervals to shade")
@click.option("--group-by", "group_by", help="group events by this series field [default: grouping.field]")
@click.pass_obj
def report_command(
    obj: CliContext,
    start: str | None,
    end: str | None,
    out: Path,
    png: Path | None,
    truth: Path | None,
    group_by: str | None,
) -> None:
    """Write a self-contained HTML (and PNG) report of surprise, thresholds and anomalies."""
    settings = obj.settings()
    last = parse_at(end, "--to")
    first = parse_at(start, "--from") if start else last - timedelta(days=7)
    if first > last:
        raise ConfigError(f"--from {start} is after --to {end or 'now'}")
    for path, option in ((out, "--out"), *(((png, "--png"),) if png else ())):
        output_path(path, option)
    known = evaluate.read_truth(truth) if truth else []
    data = findings.report_data(settings, es_client.connect(settings.es), first, last, known, group_by)
    report.write_report(data, out, png)
    click.echo(str(out) + (f"\n{png}" if png else ""))
