"""Built-in Slack and email alerts, sent to real local servers started by the tests."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from atlas.errors import ConfigError
from atlas.grouping import group_overlapping_events
from atlas.outputs import notify
from atlas.outputs.notify import build_notifications, point_phrase, select_unsent, send_notifications
from atlas.records import Anomaly, AnomalyEvent, GroupedEvent, SeriesSurprise
from atlas.settings import AlertSettings, GroupingSettings, load_settings
from tests.local_servers import http_server, json_bodies, smtp_server, trickling_server

T = datetime(2024, 1, 7, 2, tzinfo=UTC)
H = timedelta(hours=1)
GOLDEN = Path(__file__).parent.parent / "golden" / "notification.txt"
WEBHOOK_PATH = "/services/T000/B000/secret-token"


def event(metric: str, percentile: float, start: datetime, points: int, severity: str = "high") -> AnomalyEvent:
    end = start + timedelta(hours=points - 1)
    return AnomalyEvent(metric, percentile, start, end, points, 150.0, severity, f"{metric}|p{percentile:g}|{start}")  # type: ignore[arg-type]


def points_of(e: AnomalyEvent, tops: tuple[SeriesSurprise, ...] = ()) -> list[Anomaly]:
    """The event's points: the first at 150 over a typical 10 (std 2, threshold 16), later ones a little lower."""
    tops = tops or (SeriesSurprise("query_3", 160.5), SeriesSurprise("query_11", 151.25))
    return [
        Anomaly(e.metric, e.percentile, e.start + k * H, 150.0 - k, 10.0, 2.0, 16.0, 70.0, e.severity, e.event_id, tops)
        for k in range(e.points)
    ]


EVENTS = [event("metric_4", 90.0, T, 2), event("metric_4", 99.0, T, 1, "medium"), event("metric_3", 90.0, T + H, 1)]
ANOMALIES = [a for e in EVENTS for a in points_of(e)]


def grouped(events: list[AnomalyEvent] = EVENTS, anomalies: list[Anomaly] = ANOMALIES) -> list[GroupedEvent]:
    return group_overlapping_events(events, anomalies, ["query"], GroupingSettings(), H)


def alerts(**values: object) -> AlertSettings:
    return load_settings(None, {f"alerts.{k}": v for k, v in values.items()}).alerts


def test_one_notification_per_grouped_event_with_the_golden_text() -> None:
    notes = build_notifications(grouped(), "default")
    assert [(n.group, len(n.event_ids)) for n in notes] == [("metrics|2024-01-07T02:00:00Z", 3)]
    assert notes[0].subject == "[atlas] metric_4, metric_3: 2 metrics disrupted (high)"
    assert notes[0].text == GOLDEN.read_text()


def test_the_point_phrase_says_surprise_typical_threshold_and_score() -> None:
    a = Anomaly("cpu", 99.0, T, 41.2, 6.3, 2.2, 12.9, 15.86, "high", "e")
    assert point_phrase(a) == "p99 surprise 41.2, typical 6.3, threshold 12.9, score 60 at 2024-01-07T02:00:00Z"


def test_only_groups_with_a_fresh_event_are_sent_and_carry_only_those() -> None:
    later = event("metric_1", 90.0, T + 10 * H, 1)
    events, anomalies = [*EVENTS, later], [*ANOMALIES, *points_of(later)]
    notes = build_notifications(grouped(events, anomalies), "default", {later.event_id, EVENTS[2].event_id})
    assert [n.event_ids for n in notes] == [(EVENTS[2].event_id,), (later.event_id,)]
    assert "metric_4 p90 (first)" in notes[0].text  # the group still lists its already-sent members
    assert build_notifications(grouped(), "default", set()) == []


def test_a_node_field_sends_one_message_per_node() -> None:
    on = {
        "n1": (SeriesSurprise("n1|q1", 90.0), SeriesSurprise("n1|q2", 60.0)),
        "n2": (SeriesSurprise("n2|q1", 80.0),),
    }
    a, b = event("cpu", 90.0, T, 2), event("mem", 90.0, T + H, 1)
    anomalies = [*points_of(a, on["n1"]), *points_of(b, on["n1"] + on["n2"])]
    groups = group_overlapping_events(
        [a, b], anomalies, ["node", "query"], GroupingSettings(field="node", min_share=0.3), H
    )
    notes = build_notifications(groups, "default")
    assert [n.subject for n in notes] == [
        "[atlas] node=n1: 2 metrics disrupted (high)",
        "[atlas] node=n2: 1 metric disrupted (medium)",
    ]
    want = "  influencers: n1|q1 39%, n2|q1 35%, n1|q2 26%; node=n1 65%, node=n2 35%; query=q1 74%, query=q2 26%"
    assert want in notes[0].text


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
    notes = build_notifications(grouped(), "default")
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
        "[atlas] metric_4, metric_3: 2 metrics disrupted (high)",
    )
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert body.replace("\r\n", "\n") == GOLDEN.read_text()  # SMTP carries CRLF line ends


def test_a_failing_channel_does_not_stop_the_other_and_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    notes = build_notifications(grouped(), "default")
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


def test_a_slack_failure_names_the_webhook_not_its_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_SLACK_WEBHOOK_URL", f"http://127.0.0.1:{closed_port()}{WEBHOOK_PATH}")
    deliveries = send_notifications(build_notifications(grouped(), "default"), alerts())
    group = "metrics|2024-01-07T02:00:00Z"
    reason = "Slack webhook failed: ConnectionRefusedError"
    assert [(d.channel, d.group, d.sent, d.reason) for d in deliveries] == [("slack", group, False, reason)]


@pytest.mark.parametrize(
    "webhook",
    [f"file:///tmp{WEBHOOK_PATH}", f"http://[127.0.0.1{WEBHOOK_PATH}", f"http://hooks.example.com{WEBHOOK_PATH}"],
    ids=["not-http", "malformed", "plain-http-to-another-host"],
)
def test_a_webhook_that_could_not_be_sent_to_is_refused_at_load(monkeypatch: pytest.MonkeyPatch, webhook: str) -> None:
    monkeypatch.setenv("ATLAS_SLACK_WEBHOOK_URL", webhook)
    with pytest.raises(
        ConfigError, match=r"^alerts.slack_webhook \(ATLAS_SLACK_WEBHOOK_URL\): must be an https://"
    ) as info:
        alerts()
    assert "secret-token" not in str(info.value)


def test_a_webhook_trickling_bytes_is_cut_off_at_twice_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify, "_TIMEOUT_S", 1.0)
    with trickling_server(interval_s=0.3, lifetime_s=30) as url:
        monkeypatch.setenv("ATLAS_SLACK_WEBHOOK_URL", url + WEBHOOK_PATH)
        started = time.monotonic()
        deliveries = send_notifications(build_notifications(grouped(), "default"), alerts())
        elapsed = time.monotonic() - started
    assert elapsed < 2 + 1.5
    assert [(d.channel, d.sent, d.reason) for d in deliveries] == [
        ("slack", False, "Slack webhook gave no whole answer within 2 s")
    ]


def test_unconfigured_channels_are_skipped() -> None:
    assert send_notifications(build_notifications(grouped(), "default"), alerts()) == []
