"""Built-in alerts: one Slack and one email message per grouped event with new anomaly events; a failing channel
never stops the other."""

from __future__ import annotations

import http.client
import json
import smtplib
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from atlas.clock import format_instant
from atlas.deadline import call_within
from atlas.grouping import turned_notes
from atlas.influencers import format_influencers
from atlas.records import Anomaly, AnomalyEvent, GroupedEvent
from atlas.scoring import format_number
from atlas.settings import AlertSettings

_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Notification:
    """One message: one grouped event (`group` is its id), with the ids of the metric events it carries that had
    not been sent."""

    group: str
    event_ids: tuple[str, ...]
    subject: str
    text: str


@dataclass(frozen=True)
class Delivery:
    """What happened to one notification on one channel; `reason` never holds a URL or a password."""

    channel: str
    group: str
    sent: bool
    reason: str = ""


SendReport = list[Delivery]  # one Delivery per notification and configured channel, in notification order


def select_unsent(
    events: Sequence[AnomalyEvent], sent: Mapping[str, datetime], now: datetime, realert: timedelta
) -> list[AnomalyEvent]:
    """The events to alert on at `now` (UTC): those not sent within `realert`, and still recent, their last point
    less than `realert` ago, so a run catching up after downtime never sends a flood of stale events. A growing
    event keeps its id, so it is not re-sent."""
    recent = [e for e in events if now - e.end < realert]
    return [e for e in recent if e.event_id not in sent or now - sent[e.event_id] >= realert]


def point_phrase(anomaly: Anomaly) -> str:
    """`p99 surprise 41.2, typical 6.3, threshold 12.9, score 87 at 2024-01-07T02:00:00Z`: one point's numbers,
    spelled exactly as the watch's text (watches/alert_text.txt.j2) spells them."""
    return (
        f"p{anomaly.percentile:g} surprise {format_number(anomaly.value)}, typical {format_number(anomaly.mean)},"
        f" threshold {format_number(anomaly.threshold)}, score {anomaly.score} at {format_instant(anomaly.window_end)}"
    )


def build_notifications(
    groups: Sequence[GroupedEvent], job: str, fresh: Collection[str] | None = None
) -> list[Notification]:
    """One notification per grouped event holding a fresh event (any event when `fresh` is None), in time order:
    its metrics in the order they turned, each with its peak point's numbers and its influencers."""
    notes = []
    for group in groups:
        new = [m.event.event_id for m in group.members if fresh is None or m.event.event_id in fresh]
        if not new:
            continue
        metrics = len(group.metrics)
        what = f"{metrics} metric{'s' if metrics != 1 else ''}"
        lines = [
            f"atlas job {job}: {group.label} disrupted from {format_instant(group.start)} to"
            f" {format_instant(group.end)}; criticality {group.criticality}, {what}, in the order they turned:"
        ]
        for member, order in zip(group.members, turned_notes(group), strict=True):
            e = member.event
            lines.append(
                f"- {e.metric} p{e.percentile:g} ({order}) from {format_instant(e.start)} to {format_instant(e.end)}"
                f" ({e.points} point{'s' if e.points != 1 else ''}), severity {e.severity}"
            )
            lines.append(f"  peak {point_phrase(member.peak)}")
            if member.influencers:
                lines.append(f"  influencers: {format_influencers(member.influencers)}")
        subject = f"[atlas] {group.label}: {what} disrupted ({group.criticality})"
        notes.append(Notification(group.group_id, tuple(new), subject, "\n".join(lines) + "\n"))
    return notes


def send_notifications(notifications: Sequence[Notification], alerts: AlertSettings) -> SendReport:
    """Send each notification to every configured channel (Slack webhook, SMTP email); report each attempt."""
    deliveries: SendReport = []
    for note in notifications:
        if alerts.slack_webhook:
            deliveries.append(_deliver("slack", note, lambda n: _post_slack(n, alerts.slack_webhook or "")))
        if alerts.smtp_host and alerts.email_to:
            deliveries.append(_deliver("email", note, lambda n: _send_email(n, alerts)))
    return deliveries


def _deliver(channel: str, note: Notification, send: Callable[[Notification], None]) -> Delivery:
    try:  # the socket timeout bounds each read; a peer trickling bytes is cut off here, after twice that
        call_within(2 * _TIMEOUT_S, lambda: send(note))
    except _DeliveryFailed as exc:
        return Delivery(channel, note.group, False, str(exc))
    except TimeoutError:
        peer = "Slack webhook" if channel == "slack" else "SMTP server"
        return Delivery(channel, note.group, False, f"{peer} gave no whole answer within {2 * _TIMEOUT_S:g} s")
    return Delivery(channel, note.group, True)


class _DeliveryFailed(Exception):
    pass


def _post_slack(note: Notification, webhook: str) -> None:
    if not webhook.startswith(("http://", "https://")):  # urllib would also open file:// and ftp:// URLs
        raise _DeliveryFailed("Slack webhook is not an http(s) URL")
    body = json.dumps({"text": f"*{note.subject}*\n{note.text}"}).encode()
    try:
        request = urllib.request.Request(
            webhook, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            response.read()
    except urllib.error.HTTPError as exc:  # its text would hold the webhook URL: keep only the status
        raise _DeliveryFailed(f"Slack webhook answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:  # texts may quote the URL
        reason = getattr(exc, "reason", exc)  # URLError wraps the OSError that names the failure
        name = type(reason if isinstance(reason, BaseException) else exc).__name__
        raise _DeliveryFailed(f"Slack webhook failed: {name}") from None


def _send_email(note: Notification, alerts: AlertSettings) -> None:
    message = EmailMessage()
    message["From"] = alerts.email_from
    message["To"] = ", ".join(alerts.email_to)
    message["Subject"] = note.subject
    message.set_content(note.text)
    server = f"SMTP server {alerts.smtp_host}:{alerts.smtp_port}"
    try:
        with smtplib.SMTP(alerts.smtp_host or "", alerts.smtp_port, timeout=_TIMEOUT_S) as smtp:
            if alerts.smtp_tls:
                smtp.starttls()
            if alerts.smtp_username:
                smtp.login(alerts.smtp_username, alerts.smtp_password or "")
            smtp.send_message(message)
    except smtplib.SMTPAuthenticationError:
        raise _DeliveryFailed(f"{server} refused the login of {alerts.smtp_username}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise _DeliveryFailed(f"{server} failed: {type(exc).__name__}") from None
