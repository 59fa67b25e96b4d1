"""The door to Elasticsearch: the client and its factory, and every request atlas sends (its connection in
es_transport, its errors in es_errors, what the server's version decides in es_server)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import elasticsearch
from elasticsearch import Elasticsearch

from atlas.errors import ConfigError, EsQueryRejected, EsUnavailable
from atlas.es_errors import reason_of, translated_errors
from atlas.es_server import Server, major_minor
from atlas.es_transport import DeadlineConnection
from atlas.masking import mask
from atlas.settings import EsSettings

# Modules the surprise query needs, by server major version: painless for bucket_script and moving_fn scripts,
# and from 8.0 on the aggregations module, where moving_fn and bucket_sort moved out of the server.
_SCRIPT_MODULES = {6: ("lang-painless",), 7: ("lang-painless",), 8: ("lang-painless", "aggregations")}
_LATEST_SCRIPT_MODULES = ("lang-painless", "aggregations")


class EsClient:
    """A client for one cluster; asks the cluster what it is once, on first need."""

    def __init__(self, raw: Elasticsearch, target: str, timeout_s: float = 60.0, attempts: int = 4) -> None:
        self.raw = raw
        self.target = target
        self.timeout_s = timeout_s  # of one request
        self.attempts = attempts  # tries of a request that times out or finds no connection
        self._server: Server | None = None

    @property
    def server(self) -> Server:
        """The distribution and version the cluster reports in `GET /` (`version.distribution` is `opensearch` on
        OpenSearch, absent on Elasticsearch); a server without the root endpoint (8.x's integ-test-zip lacks the
        rest-root module) is asked for its nodes' version instead, and is Elasticsearch."""
        if self._server is None:
            with translated_errors(self, "asking the cluster for its version"):
                root = self._root_version()
                if root is None:
                    local = self.raw.nodes.info(node_id="_local", filter_path="nodes.*.version")
                    nodes = local.get("nodes") if isinstance(local, Mapping) else None
                    found = [node.get("version") for node in nodes.values()] if isinstance(nodes, Mapping) else []
                    root = {"number": found[0]} if found else {}
            number = str(root.get("number", ""))
            if major_minor(number) is None:
                raise EsUnavailable(f"{self.target} did not answer like Elasticsearch (no version in GET / or _nodes)")
            self._server = Server(str(root.get("distribution") or "elasticsearch"), number)
        return self._server

    def _root_version(self) -> Mapping[str, Any] | None:
        """`version` of GET /, or None when the server has no such endpoint (or answers it without a version)."""
        try:
            answer = self.raw.info(filter_path="version.number,version.distribution")
        except elasticsearch.TransportError as exc:
            if exc.status_code in (400, 404, 405, 410):  # no handler for the path: a ConnectionError's is "N/A"
                return None
            raise
        version = answer.get("version") if isinstance(answer, Mapping) else None
        return version if isinstance(version, Mapping) and version.get("number") else None

    @property
    def version(self) -> tuple[int, int]:
        """(major, minor) of the Elasticsearch API the cluster speaks (Server.api_version): 7.10 on OpenSearch."""
        return self.server.api_version

    def close(self) -> None:
        """Close the pooled connections to the cluster."""
        self.raw.close()


def describe_target(es: EsSettings) -> str:
    """Where the client connects, for messages: URLs with their credentials masked, or the cloud id's name."""
    if es.cloud_id:
        return f"Elastic Cloud deployment {es.cloud_id.split(':', 1)[0]}"
    return ", ".join(mask(url) for url in es.urls)


def connect(es: EsSettings) -> EsClient:
    """A client for the configured cluster; no request is sent yet."""
    options: dict[str, Any] = {
        "timeout": es.request_timeout.total_seconds(),
        "max_retries": es.max_retries,
        "retry_on_timeout": True,
        "connection_class": DeadlineConnection,
        "verify_certs": es.verify_certs,
        "ssl_show_warn": False,  # verify_certs: false is the user's choice; a warning per request would drown output
    }
    if es.ca_certs and es.verify_certs:  # without verification the client never reads it
        options["ca_certs"] = _ca_file(es.ca_certs)
    if es.api_key:
        options["api_key"] = es.api_key
    elif es.username:
        options["http_auth"] = (es.username, es.password or "")
    if not es.verify_certs:
        warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    # Deprecation notes of older servers (6.8's "default number of shards will change") are not the user's to act on.
    warnings.filterwarnings("ignore", category=elasticsearch.exceptions.ElasticsearchWarning)
    hosts: dict[str, Any] = {"cloud_id": es.cloud_id} if es.cloud_id else {"hosts": list(es.urls)}
    raw = Elasticsearch(**hosts, **options)
    return EsClient(raw, describe_target(es), es.request_timeout.total_seconds(), es.max_retries + 1)


def _ca_file(ca_certs: str) -> str:
    """es.ca_certs as a readable file: else the client fails only at the first request, with a bare SSLError that
    blames the handshake (and this client version takes no directory of certificates)."""
    path = Path(ca_certs).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        why = "is a directory" if path.is_dir() else "is not readable" if path.exists() else "does not exist"
        raise ConfigError(
            f"es.ca_certs: {ca_certs} {why}; name the PEM file of the CA that signed the server's certificate"
        )
    return str(path)


def require_script_modules(client: EsClient) -> None:
    """Fail with one line unless every node has the modules the surprise query needs (painless, aggregations; on
    OpenSearch painless only: moving_fn stayed in its server)."""
    needed = _SCRIPT_MODULES.get(client.version[0], _LATEST_SCRIPT_MODULES)
    with translated_errors(client, f"listing the modules of {client.target}"):
        nodes = client.raw.nodes.info(metric="plugins", filter_path="nodes.*.name,nodes.*.modules.name")
    for node in dict(nodes.get("nodes", {})).values():
        present = {module.get("name") for module in node.get("modules", [])}
        missing = [name for name in needed if name not in present]
        if missing:
            raise EsQueryRejected(
                f"the cluster at {client.target} lacks the {client.server.product} module(s) {', '.join(missing)}"
                f" (node {node.get('name')}, version {client.server.number}), which atlas's surprise query needs for"
                " painless scripts and moving_fn; use a distribution that ships them"
            )


def index_exists(client: EsClient, index: str) -> bool:
    """Whether an index (or alias) with this exact name exists."""
    with translated_errors(client, f"checking index {index}"):
        return bool(client.raw.indices.exists(index=index))


def _typeless(client: EsClient) -> dict[str, Any]:
    """6.x takes typeless mappings only when asked to; 7.x and later take nothing else."""
    return {"include_type_name": "false"} if client.version[0] == 6 else {}


def create_index(client: EsClient, index: str, body: Mapping[str, Any]) -> bool:
    """Create `index` with settings/mappings from `body`; False when it already existed."""
    with translated_errors(client, f"creating index {index}"):
        response = client.raw.indices.create(index=index, body=dict(body), ignore=400, params=_typeless(client))
    error = response.get("error") if isinstance(response, Mapping) else None
    if error is None:
        return True
    if isinstance(error, Mapping) and error.get("type") == "resource_already_exists_exception":
        return False
    raise EsQueryRejected(f"creating index {index}: {reason_of(response)}")


def put_index_template(client: EsClient, name: str, patterns: list[str], body: Mapping[str, Any]) -> None:
    """Create or replace an index template (composable from 7.8 on, the legacy kind before) for `patterns`."""
    with translated_errors(client, f"index template {name}"):
        if client.version >= (7, 8):
            template = {"index_patterns": patterns, "priority": 200, "template": dict(body)}
            client.raw.indices.put_index_template(name=name, body={**template, "_meta": {"managed_by": "atlas"}})
        else:
            legacy = {"index_patterns": patterns, "order": 200, **body}
            client.raw.indices.put_template(name=name, body=legacy, params=_typeless(client))


def delete_index_templates(client: EsClient, prefix: str) -> None:
    """Delete every index template whose name starts with prefix (both kinds)."""
    with translated_errors(client, f"deleting index templates {prefix}*"):
        if client.version >= (7, 8):
            found = client.raw.indices.get_index_template(name=f"{prefix}*", ignore=404)
            for template in found.get("index_templates", []):
                client.raw.indices.delete_index_template(name=template["name"])
        legacy = client.raw.indices.get_template(name=f"{prefix}*", ignore=404)
        for name in legacy if "status" not in legacy else []:
            client.raw.indices.delete_template(name=name)


def put_mapping(client: EsClient, index: str, mappings: Mapping[str, Any]) -> None:
    """Add fields to an existing index's mapping (a changed field type is rejected by Elasticsearch)."""
    with translated_errors(client, f"updating the mapping of {index}"):
        client.raw.indices.put_mapping(index=index, body=dict(mappings), params=_typeless(client))


def get_mapping(client: EsClient, index: str) -> dict[str, Any]:
    """The mappings of one index."""
    with translated_errors(client, f"mapping of {index}"):
        return dict(client.raw.indices.get_mapping(index=index, params=_typeless(client))[index]["mappings"])


def get_mappings(client: EsClient, index: str) -> dict[str, dict[str, Any]]:
    """The mappings of each index an index name or alias stands for, by concrete index name."""
    with translated_errors(client, f"mapping of {index}"):
        answer = client.raw.indices.get_mapping(index=index, params=_typeless(client))
    return {name: dict(body.get("mappings") or {}) for name, body in answer.items()}


def search(client: EsClient, index: str, body: Mapping[str, Any], filter_path: str | None = None) -> dict[str, Any]:
    """Run one search request; the body is a dict, never a string. `hits.total` is an object on every version."""
    with translated_errors(client, f"search on {index}"):
        response = dict(client.raw.search(index=index, body=dict(body), filter_path=filter_path))
    hits = response.get("hits")
    if isinstance(hits, dict) and isinstance(hits.get("total"), int):  # 6.x counts hits with a bare number
        hits["total"] = {"value": hits["total"], "relation": "eq"}
    return response


def index_setting(client: EsClient, index: str, name: str) -> str | None:
    """One setting of one concrete index as set on it (flat name, e.g. `index.refresh_interval`), None when unset."""
    with translated_errors(client, f"reading the settings of {index}"):
        answer = client.raw.indices.get_settings(index=index, name=name, flat_settings=True)
    value = answer.get(index, {}).get("settings", {}).get(name)
    return None if value is None else str(value)


def put_index_settings(client: EsClient, index: str, settings: Mapping[str, Any]) -> None:
    """Change dynamic settings of an index (flat names; None resets one to its default)."""
    with translated_errors(client, f"changing the settings of {index}"):
        client.raw.indices.put_settings(index=index, body=dict(settings))


def refresh(client: EsClient, index: str) -> None:
    """Make everything indexed so far searchable."""
    with translated_errors(client, f"refreshing {index}"):
        client.raw.indices.refresh(index=index)


@dataclass(frozen=True)
class StoredDocument:
    """A document's source with the sequence number and primary term that guard a conditional rewrite."""

    source: dict[str, Any]
    seq_no: int
    primary_term: int


def get_document(client: EsClient, index: str, doc_id: str) -> StoredDocument | None:
    """One document by id, or None when it (or its index) does not exist."""
    with translated_errors(client, f"reading {doc_id} from {index}"):
        body = client.raw.get(index=index, id=doc_id, ignore=404)
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
        body = client.raw.index(index=index, id=doc_id, body=dict(source), ignore=409, **guard)
    if body.get("status") == 409 or "error" in body:
        return None
    return StoredDocument(dict(source), int(body["_seq_no"]), int(body["_primary_term"]))


def delete_index(client: EsClient, index: str) -> bool:
    """Delete one concrete index; False when it did not exist."""
    with translated_errors(client, f"deleting index {index}"):
        response = client.raw.indices.delete(index=index, ignore=404)
    return not (isinstance(response, Mapping) and response.get("status") == 404)


def perform_request(
    client: EsClient,
    method: str,
    path: str,
    what: str,
    *,
    body: Mapping[str, Any] | None = None,
    absent: tuple[int, ...] = (),
) -> dict[str, Any] | None:
    """A request to a REST path the client has no method for (Watcher's), its body sent as given (a watch is
    rendered for the cluster's version); None when the answer's status is one of `absent`."""
    with translated_errors(client, what):
        try:
            answer = client.raw.transport.perform_request(method, path, body=None if body is None else dict(body))
        except elasticsearch.TransportError as exc:
            if exc.status_code in absent:
                return None
            raise
    return dict(answer) if isinstance(answer, Mapping) else {}
