"""The Elasticsearch client's exceptions as AtlasErrors: one line that says what failed, where, and what to do."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import elasticsearch
from elasticsearch import helpers

from atlas.errors import EsQueryRejected, EsUnavailable


class Target(Protocol):
    """What an error message says of the cluster asked: where it is, and how long and how often it was asked."""

    target: str
    timeout_s: float
    attempts: int


@contextmanager
def translated_errors(client: Target, what: str) -> Iterator[None]:
    """Turn the client's exceptions raised inside the block into AtlasErrors that say `what` failed, and where."""
    try:
        yield
    except helpers.BulkIndexError as exc:
        first: dict[str, Any] = exc.errors[0] if exc.errors else {}
        detail: Any = next(iter(first.values()), {}) if first else {}
        error = detail.get("error", {}) if isinstance(detail, dict) else {}
        reason = error.get("reason", error) if isinstance(error, dict) else error
        if _is_write_block(str(reason)):
            raise EsQueryRejected(f"{what}: {_WRITE_BLOCK}") from exc
        raise EsQueryRejected(f"{what}: {len(exc.errors)} document(s) rejected, first: {reason}") from exc
    except elasticsearch.SSLError as exc:
        raise EsUnavailable(
            f"{what}: TLS handshake with {client.target} failed ({_ssl_reason(exc)}); "
            "set es.ca_certs to the CA that signed its certificate"
        ) from exc
    except elasticsearch.ConnectionTimeout as exc:
        raise EsUnavailable(
            f"{what}: no answer from {client.target} in {client.timeout_s:g} s, tried {client.attempts} times"
            " (es.request_timeout, es.max_retries)"
        ) from exc
    except elasticsearch.ConnectionError as exc:
        raise EsUnavailable(
            f"{what}: cannot reach Elasticsearch at {client.target} ({_connection_reason(exc)}, tried"
            f" {client.attempts} times){_plain_http_hint(client, exc)}"
        ) from exc
    except elasticsearch.SerializationError as exc:
        raise EsUnavailable(
            f"{what}: {client.target} answered with something that is not JSON: is it Elasticsearch?"
        ) from exc
    except elasticsearch.TransportError as exc:
        status = exc.status_code
        body = exc.info if exc.info is not None else exc.error  # the raw text when the answer was not JSON
        if _is_overloaded(status, body):
            raise EsUnavailable(
                f"{what}: {client.target} is overloaded or not ready (HTTP {status}); try again later"
            ) from exc
        if _is_write_block(reason_of(body)):
            raise EsQueryRejected(f"{what}: {_WRITE_BLOCK}") from exc
        if status == 401:
            raise EsQueryRejected(
                f"{what}: {client.target} refused the credentials (HTTP 401); check es.username and "
                "ATLAS_ES_PASSWORD, or ATLAS_ES_API_KEY"
            ) from exc
        raise EsQueryRejected(f"{what}: Elasticsearch answered {status}: {reason_of(body)}") from exc


# What Elasticsearch does when a node's disk passes the flood-stage watermark: a read-only-allow-delete block on
# every index with a shard there (also settable by hand). Nothing atlas writes gets through until it is lifted.
_WRITE_BLOCK = (
    "the index is read-only (index.blocks.read_only_allow_delete: Elasticsearch sets it when a disk passes the"
    " flood-stage watermark); free disk space (7.4 and later lift the block then; before, PUT <index>/_settings"
    ' {"index.blocks.read_only_allow_delete": null}) and run again: nothing is lost, the next run redoes the work'
)


def _is_overloaded(status: Any, body: Any) -> bool:
    """A 429 or 503 that is not an Elasticsearch error about the request itself (a search that failed on every
    shard is a 503 too): a full queue, a proxy's or a starting node's answer."""
    if status not in (429, 503):
        return False
    error = body.get("error") if isinstance(body, Mapping) else None
    return not isinstance(error, Mapping) or "rejected_execution" in str(error.get("type"))


def _is_write_block(reason: str) -> bool:
    return any(
        mark in reason for mark in ("read-only / allow delete", "read_only_allow_delete", "read-only-allow-delete")
    )


def _connection_reason(exc: elasticsearch.ConnectionError) -> str:
    text = str(exc.info if exc.info is not None else exc)
    for known, said in (("Connection refused", "connection refused"), ("Name or service not known", "unknown host")):
        if known in text:
            return said
    return type(exc.info).__name__ if isinstance(exc.info, BaseException) else "no connection"


def _plain_http_hint(client: Target, exc: elasticsearch.ConnectionError) -> str:
    """A TLS port asked in plain HTTP drops the connection without an answer: say so when the URL is http."""
    dropped = type(exc.info).__name__ == "ProtocolError"  # urllib3's "Connection aborted" (reset, remote closed)
    return "; if it serves HTTPS, its URL must start with https://" if dropped and "http://" in client.target else ""


def _ssl_reason(exc: elasticsearch.SSLError) -> str:
    text = str(exc.info if exc.info is not None else exc)
    for known in ("CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER", "hostname mismatch"):
        if known in text:
            return known.lower().replace("_", " ")
    if "NO_CERTIFICATE_OR_CRL_FOUND" in text:  # the CA file loads only when the first connection is made
        return "es.ca_certs holds no PEM certificate"
    return type(exc.info).__name__ if isinstance(exc.info, BaseException) else "SSL error"


def reason_of(body: Any) -> str:
    """The error an answer's body names (its root cause, and what caused it), or its text."""
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        error = body["error"]
        causes = error.get("root_cause") or []
        cause = causes[0] if causes else error
        caused_by = error.get("caused_by", {})
        text = f"{cause.get('type')}: {cause.get('reason')}"
        if (
            isinstance(caused_by, Mapping)
            and caused_by.get("reason")
            and caused_by.get("reason") != cause.get("reason")
        ):
            text += f" ({caused_by.get('reason')})"
        return text
    text = "" if body is None else str(body).strip()
    if not text:
        return "no body"
    if text.startswith("<"):  # a proxy's or another server's HTML page
        return "an HTML page, not an Elasticsearch answer"
    return text[:300]
