"""Built-in alerts: one Slack and one email message per metric with new anomaly events; a failing channel never
stops the other."""

from __future__ import annotations

import http.client
import json
import smtplib
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from atlas.clock import format_instant
from atlas.records import Anomaly, AnomalyEvent, event_peaks
from atlas.settings import AlertSettings

_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Notification:
    """One message: the new events of one metric, with the numbers of each event's peak point."""

    metric: str
    event_ids: tuple[str, ...]
    subject: str
    text: str


@dataclass(frozen=True)
class Delivery:
    """What happened to one notification on one channel; `reason` never holds a URL or a password."""

    channel: str
    metric: str
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


def build_notifications(events: Sequence[AnomalyEvent], anomalies: Sequence[Anomaly], job: str) -> list[Notification]:
    """One notification per metric, listing its events in time order with each event's peak point."""
    peaks = event_peaks(anomalies)
    by_metric: dict[str, list[AnomalyEvent]] = {}
    for e in sorted(events, key=lambda e: (e.metric, e.start, e.percentile)):
        by_metric.setdefault(e.metric, []).append(e)
    notes = []
    for metric, group in by_metric.items():
        worst = max((e.severity for e in group), key=("low", "medium", "high").index)
        lines = [f"atlas job {job}: metric {metric} is disrupted ({worst})"]
        for e in group:
            lines.append(
                f"- p{e.percentile:g} from {format_instant(e.start)} to {format_instant(e.end)}"
                f" ({e.points} point{'s' if e.points != 1 else ''}), severity {e.severity}"
            )
            peak = peaks.get(e.event_id)
            if peak is not None:
                sigmas = "inf" if peak.sigmas_above_mean is None else f"{peak.sigmas_above_mean:.1f}"
                lines.append(
                    f"  peak {peak.value:.4g} at {format_instant(peak.window_end)}: threshold {peak.threshold:.4g},"
                    f" mean {peak.mean:.4g}, {sigmas} sigmas above the mean"
                )
                if peak.top_series:
                    tops = ", ".join(f"{s.series} ({s.surprise:.4g})" for s in peak.top_series)
                    lines.append(f"  most surprising series: {tops}")
        subject = f"[atlas] {metric}: {len(group)} anomaly event{'s' if len(group) != 1 else ''} ({worst})"
        notes.append(Notification(metric, tuple(e.event_id for e in group), subject, "\n".join(lines) + "\n"))
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
    try:
        send(note)
    except _DeliveryFailed as exc:
        return Delivery(channel, note.metric, False, str(exc))
    return Delivery(channel, note.metric, True)


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
