"""Explicit mappings and index templates for the indices atlas writes: results, job state and source data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from elasticsearch_dsl import Date, Double, Integer, Keyword, Mapping, Object

from atlas import es_client
from atlas.errors import ConfigError
from atlas.es_client import EsClient
from atlas.settings import ResultsSettings, Settings, SourceSettings


@dataclass(frozen=True)
class ResultIndices:
    surprise: str
    anomalies: str
    state: str
    truth: str


def result_indices(results: ResultsSettings) -> ResultIndices:
    """The names of the three result indices for this configuration."""
    return ResultIndices(
        surprise=f"{results.prefix}-surprise",
        anomalies=f"{results.prefix}-anomalies",
        state=f"{results.prefix}-state",
        truth=f"{results.prefix}-truth",
    )


def percentile_field(percentile: float) -> str:
    """The surprise-document field holding one percentile: 90 -> `p90`, 99.9 -> `p99_9`."""
    text = f"{percentile:g}".replace(".", "_")
    return f"p{text}"


def _top_series() -> Object:
    return Object(properties={"series": Keyword(), "surprise": Double()})


def _strict(fields: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    mapping = Mapping()
    mapping.meta("dynamic", "strict")
    for name, field in fields:
        mapping.field(name, field)
    return dict(mapping.to_dict())


def surprise_mapping(percentiles: Iterable[float]) -> dict[str, Any]:
    """One document per (job, metric, window end): the percentiles of window surprise across series."""
    fields: list[tuple[str, Any]] = [
        ("job", Keyword()),
        ("metric", Keyword()),
        ("window_start", Date()),
        ("window_end", Date()),
        ("mode", Keyword()),
        ("normalization", Keyword()),
        ("series_count", Integer()),
        ("top_series", _top_series()),
    ]
    fields += [(percentile_field(p), Double()) for p in percentiles]
    return _strict(fields)


def anomaly_mapping() -> dict[str, Any]:
    """One document per anomalous point of one percentile series."""
    return _strict(
        [
            ("job", Keyword()),
            ("metric", Keyword()),
            ("percentile", Double()),
            ("window_end", Date()),
            ("event_id", Keyword()),
            ("value", Double()),
            ("mean", Double()),
            ("std", Double()),
            ("threshold", Double()),
            ("sigmas_above_mean", Double()),
            ("severity", Keyword()),
            ("score", Integer()),
            ("top_series", _top_series()),
        ]
    )


def state_mapping() -> dict[str, Any]:
    """One document per job: the last window done, the run lease, the notifications sent and those still to send."""
    return _strict(
        [
            ("job", Keyword()),
            ("last_window_end", Date()),
            ("lease_owner", Keyword()),
            ("lease_until", Date()),
            ("notified_events", Keyword()),
            ("pending_events", Keyword()),
            ("updated_at", Date()),
        ]
    )


def truth_mapping() -> dict[str, Any]:
    """One document per labelled step and metric, for the Kibana chart of known disruptions."""
    return _strict([("job", Keyword()), ("time", Date()), ("metric", Keyword()), ("disrupted", Integer())])


def source_mapping(source: SourceSettings, extra_keywords: Iterable[str] = ()) -> dict[str, Any]:
    """Mapping for a source index atlas writes itself (simulate, ingest): keywords, a date, doubles."""
    fields: list[tuple[str, Any]] = [(source.time_field, Date())]
    keywords = [*source.series_fields, *extra_keywords]
    if not source.value_fields:
        keywords.append(source.metric_field)
        fields.append((source.value_field, Double()))
    fields += [(name, Double()) for name in source.value_fields.values()]
    fields += [(name, Keyword()) for name in dict.fromkeys(keywords)]
    return _strict(fields)


def _index_body(results: ResultsSettings, mappings: dict[str, Any]) -> dict[str, Any]:
    return {
        "settings": {"number_of_shards": results.shards, "number_of_replicas": results.replicas},
        "mappings": mappings,
    }


def _wanted_mappings(settings: Settings) -> dict[str, dict[str, Any]]:
    names = result_indices(settings.results)
    return {
        names.surprise: surprise_mapping(settings.surprise.percentiles),
        names.anomalies: anomaly_mapping(),
        names.state: state_mapping(),
    }


def mapping_conflicts(found: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> list[str]:
    """Fields whose mapped type differs from atlas's (`field: found X, atlas maps Y`); absent fields are not
    conflicts (a put mapping adds them), fields atlas does not map are ignored."""
    conflicts = []
    found_props = found.get("properties", {})
    for name, spec in wanted.get("properties", {}).items():
        have = found_props.get(name)
        if have is None:
            continue
        if "properties" in spec:
            if "type" in have and have["type"] != "object":
                conflicts.append(f"{prefix}{name}: found {have['type']}, atlas maps an object")
            else:
                conflicts += mapping_conflicts(have, spec, f"{prefix}{name}.")
        elif have.get("type", "object") != spec.get("type"):
            conflicts.append(f"{prefix}{name}: found {have.get('type', 'object')}, atlas maps {spec.get('type')}")
    return conflicts


def _existing_mappings(client: EsClient, wanted: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The mappings of those of the wanted indices that exist."""
    return {index: es_client.get_mapping(client, index) for index in wanted if es_client.index_exists(client, index)}


def _missing_fields(found: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    present = found.get("properties", {})
    return [name for name in wanted.get("properties", {}) if name not in present]


def _refuse_conflicts(index: str, found: dict[str, Any], wanted: dict[str, Any]) -> None:
    conflicts = mapping_conflicts(found, wanted)
    if conflicts:
        raise ConfigError(
            f"result index {index} maps {conflicts[0]}"
            + (f" (and {len(conflicts) - 1} more field(s))" if len(conflicts) > 1 else "")
            + "; a field's type cannot change: delete the index (`atlas backfill` recomputes its results) or set"
            " another results.prefix, then run `atlas setup`"
        )


def setup_indices(client: EsClient, settings: Settings) -> dict[str, str]:
    """Put the result index templates and create or update the indices; idempotent.

    Returns each index name with what happened to it: `created` or `updated` (mapping re-applied). An index whose
    fields have other types than atlas's (made by hand, or by Elasticsearch's dynamic mapping) is refused, naming
    the field and the fix, before anything is changed.
    """
    wanted = _wanted_mappings(settings)
    existing = _existing_mappings(client, wanted)
    for index, found in existing.items():
        _refuse_conflicts(index, found, wanted[index])
    outcome: dict[str, str] = {}
    for index, mappings in wanted.items():
        body = _index_body(settings.results, mappings)
        es_client.put_index_template(client, index, [index], body)
        if index not in existing and es_client.create_index(client, index, body):
            outcome[index] = "created"
        else:
            es_client.put_mapping(client, index, mappings)
            outcome[index] = "updated"
    return outcome


def require_result_indices(client: EsClient, settings: Settings) -> None:
    """Refuse to write results into indices `atlas setup` has not made as atlas maps them (missing, a missing
    field, another type, or not strict), so that Elasticsearch never creates them with dynamic mappings."""
    all_wanted = _wanted_mappings(settings)
    existing = _existing_mappings(client, all_wanted)
    for index, wanted in all_wanted.items():
        if index not in existing:
            raise ConfigError(f"result index {index} does not exist: run `atlas setup` first")
        found = existing[index]
        _refuse_conflicts(index, found, wanted)
        missing = _missing_fields(found, wanted)
        if missing or found.get("dynamic") != "strict":
            what = f"lacks the field {missing[0]}" if missing else "does not have atlas's strict mapping"
            raise ConfigError(f"result index {index} {what}: run `atlas setup` first")


def ensure_source_index(client: EsClient, index: str, source: SourceSettings, extra_keywords: Iterable[str]) -> bool:
    """Create the source index with an explicit mapping unless it exists; True when created. An existing index
    (or every index an alias names) is checked before any document is written: a field atlas writes that it maps
    with another type (a value as `long`, which drops decimals; a metric as a number) is a ConfigError naming the
    index and field, and fields it lacks are added with atlas's types."""
    wanted = source_mapping(source, extra_keywords)
    if not es_client.index_exists(client, index):
        return es_client.create_index(client, index, {"mappings": wanted})
    missing: dict[str, Any] = {}
    for concrete, mapping in sorted(es_client.get_mappings(client, index).items()):
        for name, field in _leaf_fields(wanted["properties"]):
            found = _mapped_type(mapping, name)
            if found is None:
                missing[name] = field
            elif found not in _ACCEPTED[field["type"]]:
                expected = " or ".join(_ACCEPTED[field["type"]])
                raise ConfigError(
                    f"index {concrete} maps {name} as {found}, not {expected}: atlas would write wrong or truncated"
                    f" values; import into a new index (--index) or reindex {concrete} with {name} as {field['type']}"
                )
    if missing:
        es_client.put_mapping(client, index, {"properties": missing})
    return False


_ACCEPTED = {  # by the type atlas maps a field with: the types an existing index may have for it instead
    "date": ("date", "date_nanos"),
    "double": ("double", "float", "half_float", "scaled_float"),
    "keyword": ("keyword", "constant_keyword"),
}


def _leaf_fields(properties: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, dict[str, Any]]]:
    for name, field in properties.items():
        if "properties" in field:
            yield from _leaf_fields(field["properties"], f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field


def _mapped_type(mapping: dict[str, Any], name: str) -> str | None:
    """The type an index maps a dotted field name with (`object` for an object), None when it does not map it."""
    if "properties" not in mapping and len(mapping) == 1:  # a 6.x mapping under its one type name
        mapping = next(iter(mapping.values()))
    node: dict[str, Any] = mapping
    parts = name.split(".")
    for i, part in enumerate(parts):
        child = (node.get("properties") or {}).get(part)
        if child is None:
            return None
        if i == len(parts) - 1:
            return str(child.get("type", "object"))
        node = child
    return None
