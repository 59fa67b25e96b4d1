"""Bulk indexing: documents serialized once, sent in requests cut by size on a few streams side by side."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from elasticsearch import helpers
from elasticsearch.serializer import JSONSerializer

from atlas.es_client import EsClient, refresh
from atlas.es_errors import translated_errors


@dataclass(frozen=True)
class BulkResult:
    indexed: int
    seconds: float

    @property
    def docs_per_second(self) -> float:
        return self.indexed / self.seconds if self.seconds > 0 else float(self.indexed)


BULK_BYTES = 5 * 1024 * 1024  # of one bulk request at most (Elastic advises a few MB to a few tens of MB)
FIRST_BULK_BYTES = 256 * 1024  # of each stream's first request: about 2,000 imported samples


def bulk_index(
    client: EsClient,
    index: str,
    docs: Iterable[Mapping[str, Any]],
    *,
    progress: Callable[[int], None] | None = None,
    chunk_bytes: int = BULK_BYTES,
    threads: int = 2,
    route: Callable[[Mapping[str, Any]], int] | None = None,
) -> BulkResult:
    """Index documents (each may carry its own `_id`, its body under `_source`, a mapping or its JSON text, or
    beside the `_id`) into `index`, then refresh it; raise on any rejection. `threads` bulk streams side by side,
    each sending its requests one at a time: `route(doc)` picks a document's stream, so that the documents of one
    stream are indexed in their input order; without it the requests take turns. Each document is serialized once
    (here, or by its maker as JSON text), and the answers carry only the errors (the client's bulk helper parses a
    result per document), which keeps the work per document small.

    Requests are cut by size, not by count: each stream's first one holds about FIRST_BULK_BYTES of lines, and each
    next one twice the previous, up to `chunk_bytes` (a mapping error or an unreachable node shows within the first
    few thousand documents, and the progress bar moves from the start; then few large requests, which is what
    Elasticsearch indexes fastest). `progress` is called with the number of documents acknowledged since its previous
    call.
    """
    what = f"bulk indexing into {index}"
    head = f'{{"index":{{"_index":{json.dumps(index)}' + (',"_type":"_doc"' if client.version[0] == 6 else "")
    # dates, decimals, numpy numbers: as the client writes them
    encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=JSONSerializer().default).encode

    def line(doc: Mapping[str, Any]) -> str:
        source = doc["_source"] if "_source" in doc else {k: v for k, v in doc.items() if k != "_id"}
        doc_id = f',"_id":{json.dumps(doc["_id"])}' if "_id" in doc else ""
        return f"{head}{doc_id}}}}}\n{source if isinstance(source, str) else encode(source)}\n"

    def send(chunk: list[str]) -> int:
        with translated_errors(client, what):
            answer = client.raw.bulk(body="".join(chunk).encode("utf-8"), filter_path="errors,items.*.error")
            if answer.get("errors"):
                errors = list(answer.get("items", []))
                raise helpers.BulkIndexError(f"{len(errors)} document(s) failed to index.", errors)
        return len(chunk)

    streams = [ThreadPoolExecutor(max_workers=1) for _ in range(threads)]
    chunks: list[list[str]] = [[] for _ in streams]
    sizes = [0 for _ in streams]  # characters of each stream's pending lines (bytes, for ASCII)
    limits = [min(FIRST_BULK_BYTES, chunk_bytes) for _ in streams]
    in_flight: list[deque[Future[int]]] = [deque() for _ in streams]
    indexed = turn = 0

    def collect(k: int, keep: int) -> None:
        nonlocal indexed
        while len(in_flight[k]) > keep:
            count = in_flight[k].popleft().result()
            indexed += count
            if progress is not None:
                progress(count)

    def submit(k: int) -> None:
        collect(k, 1)  # at most two requests of a stream queued or in flight
        in_flight[k].append(streams[k].submit(send, chunks[k]))
        chunks[k], sizes[k], limits[k] = [], 0, min(2 * limits[k], chunk_bytes)

    started = time.monotonic()
    try:
        for doc in docs:
            k = route(doc) if route is not None else turn
            text = line(doc)
            chunks[k].append(text)
            sizes[k] += len(text)
            if sizes[k] >= limits[k]:
                submit(k)
                turn = (turn + 1) % threads
        for k, chunk in enumerate(chunks):
            if chunk:
                submit(k)
        for k in range(threads):
            collect(k, 0)
    finally:
        for stream in streams:
            stream.shutdown(wait=True, cancel_futures=True)
    refresh(client, index)
    return BulkResult(indexed=indexed, seconds=time.monotonic() - started)
