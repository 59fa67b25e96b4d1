"""The only door to Elasticsearch: client factory, requests used by atlas, transport errors mapped to AtlasError."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import elasticsearch
from elasticsearch import Elasticsearch, helpers

from atlas.errors import EsQueryRejected, EsUnavailable
from atlas.settings import EsSettings

EsClient = Elasticsearch


@dataclass(frozen=True)
class BulkResult:
    indexed: int
    seconds: float

    @property
    def docs_per_second(self) -> float:
        return self.indexed / self.seconds if self.seconds > 0 else float(self.indexed)


def describe_target(es: EsSettings) -> str:
    """Where the client connects, for messages: URLs without credentials, or the cloud id's name."""
    if es.cloud_id:
        return f"Elastic Cloud deployment {es.cloud_id.split(':', 1)[0]}"
    return ", ".join(_strip_credentials(url) for url in es.urls)


def _strip_credentials(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rsplit("@", 1)[-1] if sep else url


def connect(es: EsSettings) -> EsClient:
    """A client for the configured cluster; no request is sent yet."""
    options: dict[str, Any] = {
        "request_timeout": es.request_timeout.total_seconds(),
        "max_retries": es.max_retries,
        "retry_on_timeout": True,
        "verify_certs": es.verify_certs,
    }
    if es.ca_certs:
        options["ca_certs"] = es.ca_certs
    if es.api_key:
        options["api_key"] = es.api_key
    elif es.username:
        options["basic_auth"] = (es.username, es.password or "")
    if es.cloud_id:
        return Elasticsearch(cloud_id=es.cloud_id, **options)
    return Elasticsearch(list(es.urls), **options)


def _node_urls(client: EsClient) -> str:
    return ", ".join(_strip_credentials(str(node.base_url)) for node in client.transport.node_pool.all())


@contextmanager
def translated_errors(client: EsClient, what: str) -> Iterator[None]:
    """Turn the client's exceptions raised inside the block into AtlasErrors that say `what` failed, and where."""
    try:
        yield
    except helpers.BulkIndexError as exc:
        first: dict[str, Any] = exc.errors[0] if exc.errors else {}
        detail: Any = next(iter(first.values()), {}) if first else {}
        error = detail.get("error", {}) if isinstance(detail, dict) else {}
        reason = error.get("reason", error) if isinstance(error, dict) else error
        raise EsQueryRejected(f"{what}: {len(exc.errors)} document(s) rejected, first: {reason}") from exc
    except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as exc:
        raise EsUnavailable(f"{what}: cannot reach Elasticsearch at {_node_urls(client)}") from exc
    except elasticsearch.ApiError as exc:
        raise EsQueryRejected(f"{what}: Elasticsearch answered {exc.meta.status}: {_reason(exc.body)}") from exc


def _reason(body: Any) -> str:
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
    return str(body)


def wait_for_cluster(client: EsClient, target: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """Wait until cluster health is at least yellow; return the health body."""
    with translated_errors(client, f"cluster health of {target}"):
        health = client.cluster.health(wait_for_status="yellow", timeout=f"{int(timeout_s)}s")
    return dict(health.body)


def index_exists(client: EsClient, index: str) -> bool:
    """Whether an index (or alias) with this exact name exists."""
    with translated_errors(client, f"checking index {index}"):
        return bool(client.indices.exists(index=index))


def create_index(client: EsClient, index: str, body: Mapping[str, Any]) -> bool:
    """Create `index` with settings/mappings from `body`; False when it already existed."""
    with translated_errors(client, f"creating index {index}"):
        response = client.options(ignore_status=400).indices.create(index=index, body=dict(body))
    error = response.body.get("error") if isinstance(response.body, Mapping) else None
    if error is None:
        return True
    if error.get("type") == "resource_already_exists_exception":
        return False
    raise EsQueryRejected(f"creating index {index}: {_reason(response.body)}")


def put_index_template(client: EsClient, name: str, body: Mapping[str, Any]) -> None:
    """Create or replace a composable index template."""
    with translated_errors(client, f"index template {name}"):
        client.indices.put_index_template(name=name, body=dict(body))


def put_mapping(client: EsClient, index: str, mappings: Mapping[str, Any]) -> None:
    """Add fields to an existing index's mapping (a changed field type is rejected by Elasticsearch)."""
    with translated_errors(client, f"updating the mapping of {index}"):
        client.indices.put_mapping(index=index, body=dict(mappings))


def get_mapping(client: EsClient, index: str) -> dict[str, Any]:
    """The mappings of one index."""
    with translated_errors(client, f"mapping of {index}"):
        return dict(client.indices.get_mapping(index=index).body[index]["mappings"])


def search(client: EsClient, index: str, body: Mapping[str, Any], filter_path: str | None = None) -> dict[str, Any]:
    """Run one search request; the body is a dict, never a string."""
    with translated_errors(client, f"search on {index}"):
        return dict(client.search(index=index, body=dict(body), filter_path=filter_path).body)


def refresh(client: EsClient, index: str) -> None:
    """Make everything indexed so far searchable."""
    with translated_errors(client, f"refreshing {index}"):
        client.indices.refresh(index=index)


def bulk_index(
    client: EsClient,
    index: str,
    docs: Iterable[Mapping[str, Any]],
    *,
    progress: Callable[[int], None] | None = None,
    chunk_size: int = 2000,
    threads: int = 2,
) -> BulkResult:
    """Index documents (each may carry its own `_id`) into `index`, then refresh it; raise on any rejection.

    `progress` is called with the number of documents acknowledged since its previous call.
    """
    actions = ({"_index": index, **doc} for doc in docs)
    indexed = pending = 0
    started = time.monotonic()
    with translated_errors(client, f"bulk indexing into {index}"):
        for ok, item in helpers.parallel_bulk(
            client, actions, thread_count=threads, chunk_size=chunk_size, raise_on_error=True
        ):
            if not ok:  # raise_on_error makes this unreachable unless the client changes its contract
                raise EsQueryRejected(f"bulk indexing into {index}: {item}")
            indexed += 1
            pending += 1
            if progress is not None and pending >= chunk_size:
                progress(pending)
                pending = 0
        client.indices.refresh(index=index)
    if progress is not None and pending:
        progress(pending)
    return BulkResult(indexed=indexed, seconds=time.monotonic() - started)


@dataclass(frozen=True)
class StoredDocument:
    """A document's source with the sequence number and primary term that guard a conditional rewrite."""

    source: dict[str, Any]
    seq_no: int
    primary_term: int


def get_document(client: EsClient, index: str, doc_id: str) -> StoredDocument | None:
    """One document by id, or None when it (or its index) does not exist."""
    with translated_errors(client, f"reading {doc_id} from {index}"):
        response = client.options(ignore_status=404).get(index=index, id=doc_id)
    body = response.body
    if not body.get("found"):
        return None
    return StoredDocument(dict(body["_source"]), int(body["_seq_no"]), int(body["_primary_term"]))


def put_document(
    client: EsClient, index: str, doc_id: str, source: Mapping[str, Any], expected: StoredDocument | None
) -> StoredDocument | None:
    """Write a document only if it is unchanged since `expected` was read (absent when None); GET sees it at once.

    Returns the written document, or None when someone else wrote it first (a version conflict).
    """
    guard: dict[str, Any] = (
        {"op_type": "create"}
        if expected is None
        else {"if_seq_no": expected.seq_no, "if_primary_term": expected.primary_term}
    )
    with translated_errors(client, f"writing {doc_id} to {index}"):
        response = client.options(ignore_status=409).index(index=index, id=doc_id, document=dict(source), **guard)
    body = response.body
    if body.get("status") == 409 or "error" in body:
        return None
    return StoredDocument(dict(source), int(body["_seq_no"]), int(body["_primary_term"]))


def delete_index(client: EsClient, index: str) -> bool:
    """Delete one concrete index; False when it did not exist."""
    with translated_errors(client, f"deleting index {index}"):
        response = client.options(ignore_status=404).indices.delete(index=index)
    return response.meta.status != 404


def put_watch(client: EsClient, watch_id: str, watch: Mapping[str, Any]) -> None:
    """Create or replace a Watcher watch (PUT _watcher/watch/<id>)."""
    with translated_errors(client, f"installing watch {watch_id}"):
        client.watcher.put_watch(id=watch_id, body=dict(watch))
