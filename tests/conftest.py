"""Shared fixtures: the real embedded Elasticsearch and per-test index names."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from atlas import es_client

ES_URL = os.environ.get("ATLAS_TEST_ES_URL", "http://127.0.0.1:9250")


@pytest.fixture(scope="session")
def es_url() -> str:
    return ES_URL


@pytest.fixture(scope="session")
def es(es_url: str) -> Iterator[Elasticsearch]:
    client = Elasticsearch(es_url, timeout=60)
    try:
        client.cluster.health(wait_for_status="yellow", timeout="60s")
    except Exception as exc:  # CI must fail, never skip, when Elasticsearch is missing
        pytest.fail(f"the embedded Elasticsearch at {es_url} is not reachable: {exc}")
    yield client
    client.close()


@pytest.fixture
def index_name(es: Elasticsearch, es_url: str) -> Iterator[str]:
    """A unique `atlas-test-<uuid>` prefix; every index starting with it is deleted afterwards."""
    name = f"atlas-test-{uuid.uuid4().hex[:12]}"
    yield name
    # Resolve names first: clusters may forbid wildcard deletes (action.destructive_requires_name).
    for index in es.indices.get(index=f"{name}*", expand_wildcards="all"):
        es.indices.delete(index=index)
    es_client.delete_index_templates(es_client.EsClient(es, es_url), name)
