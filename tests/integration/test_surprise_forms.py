"""Wide-form data (a value field per metric) and several series fields give the same surprise as long form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from elasticsearch import Elasticsearch, helpers

from atlas import es_client
from atlas.settings import load_settings
from atlas.surprise import compute_window_surprise
from tests.parity import with_top_series

pytestmark = pytest.mark.integration

START = datetime(2024, 5, 1, tzinfo=UTC)
END = START + timedelta(hours=60)


def samples() -> list[tuple[datetime, str, str, float, float]]:
    """(time, host, disk, cpu, mem): 4 hosts x 2 disks, hourly for 60 hours, a cpu spike on host h2."""
    rng = np.random.default_rng(3)
    rows = []
    for hour in range(60):
        for h in range(4):
            for disk in ("sda", "sdb"):
                cpu = 20 + h + rng.normal(0, 1) + (40 if (h, hour) == (2, 55) else 0)
                rows.append((START + timedelta(hours=hour, minutes=7), f"h{h}", disk, cpu, 50 + rng.normal(0, 3)))
    return rows


def test_wide_form_and_two_series_fields_match_long_form(es: Elasticsearch, es_url: str, index_name: str) -> None:
    rows = samples()
    wide, long = f"{index_name}-wide", f"{index_name}-long"
    keyword, number = {"type": "keyword"}, {"type": "double"}
    fields_by_index = {
        wide: {"system.cpu.pct": number, "system.mem.pct": number},
        long: {"metric": keyword, "value": number},
    }
    for index, fields in fields_by_index.items():
        properties = {"@timestamp": {"type": "date"}, "host": keyword, "disk": keyword, **fields}
        es.indices.create(index=index, body={"mappings": {"properties": properties}})
    helpers.bulk(
        es,
        (
            {
                "_index": wide,
                "@timestamp": t.isoformat(),
                "host": h,
                "disk": d,
                "system.cpu.pct": cpu,
                "system.mem.pct": mem,
            }
            for t, h, d, cpu, mem in rows
        ),
        refresh=True,
    )
    helpers.bulk(
        es,
        (
            {"_index": long, "@timestamp": t.isoformat(), "host": h, "disk": d, "metric": m, "value": v}
            for t, h, d, cpu, mem in rows
            for m, v in (("cpu", cpu), ("mem", mem))
        ),
        refresh=True,
    )
    common = {
        "es.urls": [es_url],
        "source.series_fields": ["host", "disk"],
        "surprise.percentiles": [50, 90],
        "surprise.mode": "max",  # the spike at hour 55 lies inside the window, not in its last bucket
    }
    wide_settings = load_settings(
        None, common | {"source.index": wide, "source.value_fields": {"cpu": "system.cpu.pct", "mem": "system.mem.pct"}}
    )
    long_settings = load_settings(None, common | {"source.index": long})
    client = es_client.connect(wide_settings.es)
    got_wide = compute_window_surprise(client, wide_settings, ["cpu", "mem"], END)
    got_long = compute_window_surprise(client, long_settings, ["cpu", "mem"], END)
    assert got_wide == got_long
    cpu = with_top_series(client, wide_settings, got_wide[0])
    assert (cpu.metric, cpu.series_count) == ("cpu", 8)  # 4 hosts x 2 disks, keyed "host|disk"
    assert {s.series for s in cpu.top_series[:2]} == {"h2|sda", "h2|sdb"}
