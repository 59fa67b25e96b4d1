"""Job state in Elasticsearch: the last window done, and a lease so that two runs of one job never work at once."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from atlas import es_client
from atlas.clock import format_instant, parse_instant
from atlas.errors import AtlasError, EsQueryRejected
from atlas.es_client import EsClient, StoredDocument
from atlas.indices import result_indices
from atlas.settings import Settings

LEASE_TTL = timedelta(minutes=30)


class LeaseHeld(EsQueryRejected):
    """Another run of the same job holds the lease."""


@dataclass(frozen=True)
class Lease:
    """This process's hold on a job; `stored` is the state document as this process last wrote it."""

    job: str
    owner: str
    stored: StoredDocument

    @property
    def last_window_end(self) -> datetime | None:
        """The end of the last window the job has completed (UTC), None before its first."""
        raw = self.stored.source.get("last_window_end")
        return parse_instant(raw) if raw else None


def current_owner() -> str:
    """This process, as a lease names it: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def read_last_window_end(client: EsClient, settings: Settings) -> datetime | None:
    """The end of the last window the job has completed (UTC), without taking the lease."""
    stored = es_client.get_document(client, result_indices(settings.results).state, settings.results.job)
    raw = stored.source.get("last_window_end") if stored else None
    return parse_instant(raw) if raw else None


def acquire_lease(client: EsClient, settings: Settings, now: datetime, owner: str) -> Lease:
    """Take the job's lease, unless a live run holds it (LeaseHeld); a dead run's or expired lease is taken over."""
    index, job = result_indices(settings.results).state, settings.results.job
    stored = es_client.get_document(client, index, job)
    if stored is not None and not _is_free(stored, now):
        holder = stored.source.get("lease_owner")
        until = stored.source.get("lease_until")
        raise LeaseHeld(f"job {job} is being run by {holder} (lease until {until}); try again later")
    source = dict(stored.source) if stored else {"job": job}
    source.update(lease_owner=owner, lease_until=format_instant(now + LEASE_TTL), updated_at=format_instant(now))
    written = es_client.put_document(client, index, job, source, stored)
    if written is None:
        raise LeaseHeld(f"job {job} was taken by another run at the same moment; try again later")
    return Lease(job, owner, written)


def record_progress(
    client: EsClient, settings: Settings, lease: Lease, last_window_end: datetime | None, now: datetime
) -> Lease:
    """Store the last window done (never moving it backwards; None keeps it) and extend the lease."""
    candidates = [t for t in (lease.last_window_end, last_window_end) if t is not None]
    return _rewrite(
        client,
        settings,
        lease,
        last_window_end=format_instant(max(candidates)) if candidates else None,
        lease_until=format_instant(now + LEASE_TTL),
        updated_at=format_instant(now),
    )


def sent_events(lease: Lease) -> dict[str, datetime]:
    """When each recently notified event was sent (UTC), from the state document."""
    sent: dict[str, datetime] = {}
    for entry in lease.stored.source.get("notified_events") or []:
        when, _, event_id = str(entry).partition("|")
        sent[event_id] = parse_instant(when)
    return sent


def pending_events(lease: Lease) -> list[str]:
    """The events whose notification reached no channel in an earlier run: the next run tries them again."""
    return [str(e) for e in lease.stored.source.get("pending_events") or []]


def record_sent(
    client: EsClient,
    settings: Settings,
    lease: Lease,
    event_ids: list[str],
    now: datetime,
    keep: timedelta,
    pending: Sequence[str] = (),
) -> Lease:
    """Add events sent at `now` to the state document, forgetting sends older than `keep`; `pending` replaces the
    events still to send."""
    sent = {e: t for e, t in sent_events(lease).items() if now - t < keep}
    sent.update(dict.fromkeys(event_ids, now))
    entries = [f"{format_instant(t)}|{e}" for e, t in sorted(sent.items(), key=lambda kv: (kv[1], kv[0]))]
    return _rewrite(client, settings, lease, notified_events=entries, pending_events=sorted(set(pending)))


def release_lease(client: EsClient, settings: Settings, lease: Lease, now: datetime) -> None:
    """Give the lease back so that the next run need not wait for it to expire."""
    _rewrite(client, settings, lease, lease_owner=None, lease_until=None, updated_at=format_instant(now))


def release_after_failure(client: EsClient, settings: Settings, owner: str, now: datetime) -> None:
    """Give back the lease of a run that failed, if it still holds it, so the next run need not wait for it.

    Best effort: when Elasticsearch itself is the failure this cannot reach it either, and the lease then expires
    (or is taken over once this process has ended)."""
    index, job = result_indices(settings.results).state, settings.results.job
    try:
        stored = es_client.get_document(client, index, job)
        if stored is not None and stored.source.get("lease_owner") == owner:
            release_lease(client, settings, Lease(job, owner, stored), now)
    except AtlasError:
        pass  # the run's own error is the one to report


def _rewrite(client: EsClient, settings: Settings, lease: Lease, **changes: str | list[str] | None) -> Lease:
    index = result_indices(settings.results).state
    source = {**lease.stored.source, **changes}
    written = es_client.put_document(client, index, lease.job, source, lease.stored)
    if written is None:
        raise LeaseHeld(f"job {lease.job}: another run took the lease of {lease.owner}; this run stops")
    return replace(lease, stored=written)


def _is_free(stored: StoredDocument, now: datetime) -> bool:
    owner, until = stored.source.get("lease_owner"), stored.source.get("lease_until")
    if not owner or not until or parse_instant(until) <= now:
        return True
    host, _, rest = str(owner).partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not _is_alive(int(pid))


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
