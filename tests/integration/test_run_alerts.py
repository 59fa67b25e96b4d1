"""`atlas run` alerts on the real node: one Slack message and one email per metric with a new event, sent to local
servers, recorded in the state; not re-sent; a failing channel is reported and the other still delivers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from elasticsearch import Elasticsearch

from atlas import es_client, job
from atlas.indices import setup_indices
from atlas.ingest import load
from atlas.scoring import anomaly_score
from atlas.settings import Settings, load_settings
from tests.local_servers import http_server, json_bodies, smtp_server

pytestmark = pytest.mark.integration

START = datetime(2024, 4, 1, tzinfo=UTC)
SPIKE = 100
SUBJECT = "[atlas] cpu: 1 metric disrupted (medium)"  # one grouped event: one metric, score 75 or more


def documents() -> Iterator[dict[str, object]]:
    rng = np.random.default_rng(5)
    for h in range(SPIKE + 3):
        for metric in ("cpu", "mem"):
            for q in range(10):
                value = 10 + q + rng.normal(0, 0.5) + (50 if (metric, h) == ("cpu", SPIKE) else 0)
                yield {
                    "@timestamp": (START + timedelta(hours=h, minutes=5)).isoformat(),
                    "metric": metric,
                    "query": f"q{q}",
                    "node": "n0",
                    "value": value,
                }


def settings_for(es_url: str, index_name: str, smtp_port: int) -> Settings:
    overrides = {
        "es.urls": [es_url],
        "source.index": f"{index_name}-source",
        "results.prefix": index_name,
        "surprise.mode": "last",
        "alerts.email_to": ["sre@example.com"],
        "alerts.smtp_host": "127.0.0.1",
        "alerts.smtp_port": smtp_port,
        "alerts.smtp_tls": False,
    }
    return load_settings(None, overrides)


@pytest.mark.parametrize("slack_status", [200, 500], ids=["both channels", "slack failing"])
def test_run_sends_each_new_event_once(
    es: Elasticsearch, es_url: str, index_name: str, monkeypatch: pytest.MonkeyPatch, slack_status: int
) -> None:
    with http_server(status=slack_status) as (slack_url, slack), smtp_server() as (port, mail):
        monkeypatch.setenv("ATLAS_SLACK_WEBHOOK_URL", slack_url + "/services/secret-token")
        settings = settings_for(es_url, index_name, port)
        client = es_client.connect(settings.es)
        load.load_documents(client, settings.source, settings.source.index, documents(), extra_keywords=["node"])
        setup_indices(client, settings)
        job.backfill(settings, client, START + timedelta(hours=60), START + timedelta(hours=SPIKE))
        assert (len(slack.requests), len(mail.messages)) == (0, 0)  # a backfill never alerts
        first = job.run_once(settings, client, START + timedelta(hours=SPIKE + 1, minutes=30))
        assert [e.metric for e in first.events] == ["cpu"]
        assert [(d.channel, d.sent) for d in first.deliveries] == [("slack", slack_status == 200), ("email", True)]
        assert len(slack.requests) == 1 and len(mail.messages) == 1
        assert mail.messages[0]["Subject"] == SUBJECT
        if slack_status == 200:
            assert json_bodies(slack)[0]["text"].startswith(f"*{SUBJECT}*\natlas job default: cpu disrupted from")
        else:
            assert first.deliveries[0].reason == "Slack webhook answered HTTP 500"
        state = es.get(index=f"{index_name}-state", id="default")["_source"]
        assert [entry.split("|", 1)[1] for entry in state["notified_events"]] == [first.events[0].event_id]
        second = job.run_once(settings, client, START + timedelta(hours=SPIKE + 2, minutes=30))
        assert second.windows and len(slack.requests) == 1 and len(mail.messages) == 1  # nothing new to send
        stored = es.search(index=f"{index_name}-anomalies", body={"size": 100})["hits"]["hits"]
        assert stored and all(
            h["_source"]["score"] == anomaly_score(h["_source"]["value"], h["_source"]["mean"], h["_source"]["std"])
            for h in stored
        )


def test_an_event_no_channel_took_is_sent_by_the_next_run(
    es: Elasticsearch, es_url: str, index_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = {"es.urls": [es_url], "source.index": f"{index_name}-source", "results.prefix": index_name}
    settings = load_settings(None, {**overrides, "surprise.mode": "last"})  # Slack only: no email configured
    client = es_client.connect(settings.es)
    load.load_documents(client, settings.source, settings.source.index, documents(), extra_keywords=["node"])
    setup_indices(client, settings)
    job.backfill(settings, client, START + timedelta(hours=60), START + timedelta(hours=SPIKE))
    with http_server(status=503) as (down_url, down):
        monkeypatch.setenv("ATLAS_SLACK_WEBHOOK_URL", down_url + "/services/secret-token")
        settings = load_settings(None, {**overrides, "surprise.mode": "last"})  # the webhook is read at load
        first = job.run_once(settings, client, START + timedelta(hours=SPIKE + 1, minutes=30))
    assert [(d.channel, d.sent) for d in first.deliveries] == [("slack", False)] and len(down.requests) == 1
    state = es.get(index=f"{index_name}-state", id="default")["_source"]
    assert state["pending_events"] == [first.events[0].event_id] and not state.get("notified_events")
    assert state.get("lease_owner") is None  # the failed delivery gave the lease back

    with http_server() as (up_url, up):
        monkeypatch.setenv("ATLAS_SLACK_WEBHOOK_URL", up_url + "/services/secret-token")
        settings = load_settings(None, {**overrides, "surprise.mode": "last"})
        second = job.run_once(settings, client, START + timedelta(hours=SPIKE + 2, minutes=30))
        third = job.run_once(settings, client, START + timedelta(hours=SPIKE + 2, minutes=40))
    assert second.events == () or all(e.event_id != first.events[0].event_id for e in second.events)
    assert [(d.channel, d.sent) for d in second.deliveries] == [("slack", True)] and third.deliveries == ()
    assert len(up.requests) == 1 and json_bodies(up)[0]["text"].startswith(f"*{SUBJECT}*")
    state = es.get(index=f"{index_name}-state", id="default")["_source"]
    assert state["pending_events"] == [] and [e.split("|", 1)[1] for e in state["notified_events"]] == [
        first.events[0].event_id
    ]
