"""Built-in Slack and email alerts, sent to real local servers started by the tests."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from atlas.outputs.notify import build_notifications, select_unsent, send_notifications
from atlas.records import Anomaly, AnomalyEvent, SeriesSurprise
from atlas.settings import AlertSettings, load_settings
from tests.local_servers import http_server, json_bodies, smtp_server

T = datetime(2024, 1, 7, 2, tzinfo=UTC)
GOLDEN = Path(__file__).parent.parent / "golden" / "notification.txt"
WEBHOOK_PATH = "/services/T000/B000/secret-token"


def event(metric: str, percentile: float, start: datetime, points: int, severity: str = "high") -> AnomalyEvent:
    end = start + timedelta(hours=points - 1)
    return AnomalyEvent(metric, percentile, start, end, points, 150.0, severity, f"{metric}|p{percentile:g}|{start}")  # type: ignore[arg-type]


def peak(e: AnomalyEvent) -> Anomaly:
    tops = (SeriesSurprise("query_3", 160.5), SeriesSurprise("query_11", 151.25))
    return Anomaly(e.metric, e.percentile, e.start, 150.0, 10.0, 2.0, 16.0, 70.0, e.severity, e.event_id, tops)


EVENTS = [event("metric_4", 90.0, T, 2), event("metric_4", 99.0, T, 1, "medium"), event("metric_3", 90.0, T, 1)]
ANOMALIES = [peak(e) for e in EVENTS]


def alerts(**values: object) -> AlertSettings:
    return load_settings(None, {f"alerts.{k}": v for k, v in values.items()}).alerts


def test_one_notification_per_metric_with_the_golden_text() -> None:
    notes = build_notifications(EVENTS, ANOMALIES, "default")
    assert [(n.metric, len(n.event_ids)) for n in notes] == [("metric_3", 1), ("metric_4", 2)]
    assert notes[1].subject == "[atlas] metric_4: 2 anomaly events (high)"
    assert notes[1].text == GOLDEN.read_text()


@dataclass(frozen=True)
class Throttle:
    sent_at: datetime | None  # when the event was last sent; None: never
    now: datetime
    resent: bool


REALERT = timedelta(hours=24)
THROTTLE_CASES = {
    "never sent": Throttle(None, T, True),
    "sent 3h ago": Throttle(T, T + timedelta(hours=3), False),
    "sent 23h59m ago": Throttle(T, T + timedelta(hours=23, minutes=59), False),
    "sent exactly realert ago": Throttle(T, T + timedelta(hours=24), True),
    "sent 30h ago": Throttle(T - timedelta(hours=30), T, True),
}


@pytest.mark.parametrize("case", THROTTLE_CASES.values(), ids=THROTTLE_CASES.keys())
def test_select_unsent_throttles_by_event_id(case: Throttle) -> None:
    sent = {} if case.sent_at is None else {EVENTS[0].event_id: case.sent_at}
    fresh = select_unsent(EVENTS[:1], sent, case.now, REALERT)
    assert [e.event_id for e in fresh] == ([EVENTS[0].event_id] if case.resent else [])


def test_a_growing_event_keeps_its_id_and_is_not_resent() -> None:
    grown = event("metric_4", 90.0, T, 5)  # the event of EVENTS[0], three hours later: same start, same id
    sent = {EVENTS[0].event_id: T + timedelta(hours=1), "metric_9|p90|gone": T - timedelta(hours=2)}
    fresh = select_unsent([grown, EVENTS[2]], sent, T + timedelta(hours=4), REALERT)
    assert [e.event_id for e in fresh] == [EVENTS[2].event_id]


STALENESS_CASES = {
    "last point now": (timedelta(hours=0), True),
    "last point 23h ago": (timedelta(hours=23), True),
    "last point exactly realert ago": (timedelta(hours=24), False),
    "last point 60h ago (caught up after downtime)": (timedelta(hours=60), False),
}


@pytest.mark.parametrize(("age", "sent"), STALENESS_CASES.values(), ids=STALENESS_CASES.keys())
def test_events_older_than_realert_are_never_sent(age: timedelta, sent: bool) -> None:
    never_sent = EVENTS[0]  # its last point is T + 1h
    fresh = select_unsent([never_sent], {}, never_sent.end + age, REALERT)
    assert [e.event_id for e in fresh] == ([never_sent.event_id] if sent else [])


def test_slack_and_email_receive_the_exact_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    notes = build_notifications(EVENTS[:2], ANOMALIES[:2], "default")
    with http_server() as (url, slack), smtp_server() as (port, mail):
        monkeypatch.setenv("ATLAS_SLACK_WEBHOOK_URL", url + WEBHOOK_PATH)
        settings = alerts(smtp_host="127.0.0.1", smtp_port=port, smtp_tls=False, email_to=["sre@example.com"])
        deliveries = send_notifications(notes, settings)
    assert [(d.channel, d.sent) for d in deliveries] == [("slack", True), ("email", True)]
    assert slack.requests[0]["path"] == WEBHOOK_PATH
    assert json_bodies(slack) == [{"text": f"*{notes[0].subject}*\n{GOLDEN.read_text()}"}]
    (message,) = mail.messages
    assert (message["From"], message["To"], message["Subject"]) == (
        "atlas@localhost",
        "sre@example.com",
        "[atlas] metric_4: 2 anomaly events (high)",
    )
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert body.replace("\r\n", "\n") == GOLDEN.read_text()  # SMTP carries CRLF line ends


def test_a_failing_channel_does_not_stop_the_other_and_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    notes = build_notifications(EVENTS[:1], ANOMALIES[:1], "default")
    dead_port = closed_port()
    with http_server(status=500) as (url, slack), smtp_server() as (port, mail):
        monkeypatch.setenv("ATLAS_SLACK_WEBHOOK_URL", url + WEBHOOK_PATH)
        monkeypatch.setenv("ATLAS_SMTP_PASSWORD", "hunter2")
        ok_mail = alerts(smtp_host="127.0.0.1", smtp_port=port, smtp_tls=False, email_to=["a@example.com"])
        first = send_notifications(notes, ok_mail)
        dead_mail = alerts(smtp_host="127.0.0.1", smtp_port=dead_port, smtp_tls=False, email_to=["a@example.com"])
        second = send_notifications(notes, dead_mail)
    assert [(d.channel, d.sent, d.reason) for d in first] == [
        ("slack", False, "Slack webhook answered HTTP 500"),
        ("email", True, ""),
    ]
    assert len(mail.messages) == 1 and len(slack.requests) == 2
    assert [(d.channel, d.sent) for d in second] == [("slack", False), ("email", False)]
    assert second[1].reason.startswith(f"SMTP server 127.0.0.1:{dead_port} failed")
    for d in first + second:
        assert "secret-token" not in d.reason and "hunter2" not in d.reason


def closed_port() -> int:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port: int = closed.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("webhook", "reason"),
    [
        (f"http://127.0.0.1:{closed_port()}{WEBHOOK_PATH}", "Slack webhook failed: ConnectionRefusedError"),
        (f"file:///tmp{WEBHOOK_PATH}", "Slack webhook is not an http(s) URL"),
        (f"http://[127.0.0.1{WEBHOOK_PATH}", "Slack webhook failed: ValueError"),
    ],
    ids=["refused", "not-http", "malformed"],
)
def test_slack_failures_name_the_webhook_not_its_url(
    monkeypatch: pytest.MonkeyPatch, webhook: str, reason: str
) -> None:
    monkeypatch.setenv("ATLAS_SLACK_WEBHOOK_URL", webhook)
    deliveries = send_notifications(build_notifications(EVENTS[:1], ANOMALIES[:1], "default"), alerts())
    assert [(d.channel, d.metric, d.sent, d.reason) for d in deliveries] == [("slack", "metric_4", False, reason)]


def test_unconfigured_channels_are_skipped() -> None:
    assert send_notifications(build_notifications(EVENTS, ANOMALIES, "default"), alerts()) == []
