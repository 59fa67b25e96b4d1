"""Alerting after a run: notify the run's events and those an earlier run could not deliver, and record what was
sent in the job's state."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from atlas import results, state
from atlas.es_client import EsClient
from atlas.events import anomaly_events
from atlas.findings import group_as_configured
from atlas.outputs import notify
from atlas.records import Anomaly, AnomalyEvent
from atlas.settings import Settings


def alert(
    settings: Settings,
    client: EsClient,
    events: Sequence[AnomalyEvent],
    anomalies: Sequence[Anomaly],
    lease: state.Lease,
    now: datetime,
) -> tuple[list[notify.Delivery], state.Lease]:
    """Send the run's `events` (their points among `anomalies`), and those an earlier run could not deliver, unless
    sent within `alerts.realert` (or older than it); record those that reached at least one channel, and keep the
    others pending for the next run."""
    realert = settings.alerts.realert
    pending = state.pending_events(lease)
    known = {e.event_id for e in events}
    retried = results.read_event_anomalies(client, settings, [e for e in pending if e not in known])
    candidates = [*events, *anomaly_events(retried, settings.surprise.step)]
    fresh = notify.select_unsent(candidates, state.sent_events(lease), now, realert)
    groups = group_as_configured(settings, candidates, [*anomalies, *retried])
    notes = notify.build_notifications(groups, settings.results.job, {e.event_id for e in fresh})
    deliveries = notify.send_notifications(notes, settings.alerts)
    delivered = {d.group for d in deliveries if d.sent}
    attempted = {d.group for d in deliveries}  # none when no channel is configured: nothing is pending then
    sent_ids = list(dict.fromkeys(e for n in notes if n.group in delivered for e in n.event_ids))
    failed = (e for n in notes if n.group in attempted - delivered for e in n.event_ids if e not in sent_ids)
    failed_ids = list(dict.fromkeys(failed))
    if sent_ids or failed_ids or pending:
        lease = state.record_sent(client, settings, lease, sent_ids, now, keep=realert, pending=failed_ids)
    return deliveries, lease
