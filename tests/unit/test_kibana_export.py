"""The Kibana saved-objects NDJSON: structure, references, expressions; and the import call to a local server."""

from __future__ import annotations

import json

import pytest

from atlas.errors import OutputError
from atlas.outputs.kibana import export_saved_objects, import_saved_objects
from atlas.outputs.timelion import build_expression
from atlas.settings import load_settings
from tests.local_servers import http_server

SETTINGS = load_settings(None, {"surprise.percentiles": [90, 99]})
METRICS = ["metric_0", "metric_1"]


def objects(with_truth: bool) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in export_saved_objects(SETTINGS, METRICS, with_truth).splitlines()]


def test_one_timelion_visualization_per_metric_and_a_dashboard_holding_them() -> None:
    found = objects(with_truth=False)
    ids = [o["id"] for o in found]
    assert ids == ["atlas-default-metric_0", "atlas-default-metric_1", "atlas-default"]
    assert len(set(ids)) == len(ids)
    for o, metric in zip(found[:2], METRICS, strict=True):
        state = json.loads(o["attributes"]["visState"])
        assert (o["type"], state["type"], state["params"]["interval"]) == ("visualization", "timelion", "1h")
        expected = ", ".join(build_expression(SETTINGS, metric, p) for p in (90.0, 99.0))
        assert state["params"]["expression"] == expected
    dashboard = found[-1]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    refs = {r["name"]: r["id"] for r in dashboard["references"]}
    assert [refs[p["panelRefName"]] for p in panels] == ids[:2]
    assert all(r["type"] == "visualization" and r["id"] in ids for r in dashboard["references"])


def test_ground_truth_chart_only_when_truth_is_indexed() -> None:
    with_truth = objects(with_truth=True)
    assert [o["id"] for o in with_truth][-2:] == ["atlas-default-truth", "atlas-default"]
    truth = json.loads(with_truth[-2]["attributes"]["visState"])["params"]["expression"]
    assert truth.startswith(".es(index='atlas-truth', timefield='time', metric='max:disrupted'")
    assert len(json.loads(with_truth[-1]["attributes"]["panelsJSON"])) == 3


def test_import_posts_multipart_ndjson_with_the_xsrf_headers() -> None:
    ndjson = export_saved_objects(SETTINGS, METRICS, with_truth=False)
    with http_server(reply=b'{"success": true, "successCount": 3}') as (url, seen):
        answer = import_saved_objects(ndjson, url.replace("http://", "http://admin:s3cret@"), "ops")
    assert answer == {"success": True, "successCount": 3}
    (request,) = seen.requests
    assert request["path"] == "/s/ops/api/saved_objects/_import?overwrite=true"
    headers = {name.lower(): value for name, value in request["headers"].items()}  # HTTP names are case-blind
    assert headers["kbn-xsrf"] == headers["osd-xsrf"] == "atlas"  # Kibana's and OpenSearch Dashboards' header
    assert headers["authorization"] == "Basic YWRtaW46czNjcmV0"  # admin:s3cret, from the URL
    assert headers["content-type"].startswith("multipart/form-data; boundary=")
    body = request["body"].decode()
    assert 'name="file"; filename="atlas.ndjson"' in body and ndjson in body


def test_import_failure_is_one_line_without_credentials() -> None:
    with http_server(status=500) as (url, _), pytest.raises(OutputError) as raised:
        import_saved_objects("{}\n", url.replace("http://", "http://admin:s3cret@"), "default")
    assert "HTTP 500" in str(raised.value) and "s3cret" not in str(raised.value)
