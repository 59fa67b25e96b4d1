"""What makes an import fast on the real node, without changing what it writes: an index the import creates is not
refreshed while it is filled and gets its refresh_interval back at the end (also on Ctrl-C), an index that was there
keeps its settings, and bulk requests start small and grow to a few MB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from atlas import es_bulk, es_client
from atlas.ingest import csv_file, load
from atlas.settings import load_settings

pytestmark = pytest.mark.integration

HEADER = "timestamp,metric,series,value\n"
SETTING = "index.refresh_interval"


def refresh_interval(es: Elasticsearch, index: str) -> Any:
    return es.indices.get_settings(index=index, flat_settings=True)[index]["settings"].get(SETTING)


def write_rows(path: Path, rows: int) -> Path:
    path.write_text(HEADER + "".join(f"{1704067200 + 60 * (i // 10)},cpu,h{i % 10},{i}\n" for i in range(rows)))
    return path


def import_file(es_url: str, index: str, path: Path, seen: list[Any], es: Elasticsearch) -> load.ImportReport:
    """Import `path`, noting the index's refresh_interval at each bulk answer."""
    settings = load_settings(None, {"es.urls": [es_url]})
    client = es_client.connect(settings.es)
    with csv_file.check_csv_files([path]) as checked:
        return load.import_samples(
            client, settings.source, index, checked, progress=lambda _: seen.append(refresh_interval(es, index))
        )


def test_an_index_the_import_creates_is_not_refreshed_while_filled_and_gets_its_interval_back(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    seen: list[Any] = []
    report = import_file(es_url, index_name, write_rows(tmp_path / "a.csv", 5000), seen, es)
    assert seen and set(seen) == {"-1"}
    assert refresh_interval(es, index_name) is None  # the default again, as the index was created
    assert (report.rows, report.gained, report.load.index_documents) == (5000, 5000, 5000)


def test_a_refresh_interval_from_an_index_template_is_given_back(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    es.indices.put_template(name=index_name, body={"index_patterns": [f"{index_name}*"], "settings": {SETTING: "7s"}})
    seen: list[Any] = []
    import_file(es_url, index_name, write_rows(tmp_path / "a.csv", 100), seen, es)
    assert set(seen) == {"-1"}
    assert refresh_interval(es, index_name) == "7s"


def test_an_interrupted_import_gives_the_interval_back(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    settings = load_settings(None, {"es.urls": [es_url]})
    client = es_client.connect(settings.es)

    def interrupt(_: int) -> None:
        raise KeyboardInterrupt

    path = write_rows(tmp_path / "a.csv", 20_000)
    with csv_file.check_csv_files([path]) as checked, pytest.raises(KeyboardInterrupt):
        load.import_samples(client, settings.source, index_name, checked, progress=interrupt)
    assert refresh_interval(es, index_name) is None


def test_an_index_that_was_there_keeps_its_refresh_interval(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    es.indices.create(index=index_name, body={"settings": {SETTING: "5s"}})
    seen: list[Any] = []
    import_file(es_url, index_name, write_rows(tmp_path / "a.csv", 5000), seen, es)
    assert seen and set(seen) == {"5s"}
    assert refresh_interval(es, index_name) == "5s"


def test_bulk_requests_start_small_and_grow_to_the_size_limit(es: Elasticsearch, es_url: str, index_name: str) -> None:
    client = es_client.connect(load_settings(None, {"es.urls": [es_url]}).es)
    body = '{"value":1.0}'
    line_chars = len(f'{{"index":{{"_index":"{index_name}"}}}}\n{body}\n')
    docs = [{"_source": body} for _ in range(60_000)]
    counts: list[int] = []
    limit = 1024 * 1024
    result = es_bulk.bulk_index(client, index_name, docs, progress=counts.append, threads=1, chunk_bytes=limit)
    assert result.indexed == sum(counts) == len(docs)
    sizes = [n * line_chars for n in counts]
    assert es_bulk.FIRST_BULK_BYTES <= sizes[0] < es_bulk.FIRST_BULK_BYTES + line_chars
    assert sizes[1] >= 2 * es_bulk.FIRST_BULK_BYTES  # twice the first, and so on
    assert all(limit <= size < limit + line_chars for size in sizes[2:-1])  # 256 KB, 512 KB, then the limit
    assert es.count(index=index_name)["count"] == len(docs)
