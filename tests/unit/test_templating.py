"""Templates: declared variables match what they use, every template renders to JSON, errors are strict."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from atlas.errors import TemplateError
from atlas.queries import build_any_document_request, build_metric_names_request, build_source_summary
from atlas.settings import load_settings
from atlas.templating import declared_variables, environment, render_json, template_dirs, to_json, undeclared_variables

TEMPLATES = sorted(environment().list_templates(extensions=["j2"]))


def test_templates_exist() -> None:
    assert "source_summary.json.j2" in TEMPLATES


@pytest.mark.parametrize("name", TEMPLATES)
def test_declared_variables_are_exactly_the_used_ones(name: str) -> None:
    assert declared_variables(name) == undeclared_variables(name)


def test_source_summary_renders_the_configured_fields() -> None:
    body = build_source_summary(load_settings(None).source)
    assert body["query"] == {"match_all": {}}
    assert body["aggs"]["groups"]["terms"]["field"] == "metric"
    assert body["aggs"]["groups"]["aggs"]["series"]["cardinality"]["field"] == "query"


def test_the_source_checks_stop_at_the_first_document_and_the_metric_names_read_the_range() -> None:
    """A job every 5 minutes does not read the whole index to check its source: each field check stops at the
    first document with it, and the metric names are those of the range the windows read when one is given."""
    source = load_settings(None, {"source.filter": {"term": {"env": "prod"}}}).source
    prod = {"bool": {"filter": [{"term": {"env": "prod"}}]}}
    assert build_any_document_request(source, None) == {
        "size": 0,
        "track_total_hits": True,
        "terminate_after": 1,
        "query": prod,
    }
    assert build_any_document_request(source, "value")["query"] == {
        "bool": {"filter": [prod, {"exists": {"field": "value"}}]}
    }
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
    span = {"range": {"@timestamp": {"gte": "2024-01-01T00:00:00Z", "lt": "2024-01-02T00:00:00Z"}}}
    assert build_metric_names_request(source, (start, end))["query"] == {"bool": {"filter": [prod, span]}}
    whole = build_metric_names_request(source, None)
    assert whole["query"] == prod
    assert whole["aggs"]["groups"]["terms"]["field"] == "metric" and "track_total_hits" in whole


def test_missing_variable_names_it() -> None:
    with pytest.raises(TemplateError, match="'src' is undefined"):
        render_json("source_summary.json.j2", max_groups=1)


@pytest.mark.parametrize("value", [math.nan, np.float64(1.5), np.int64(3)], ids=["nan", "numpy-float", "numpy-int"])
def test_json_filter_refuses_nan_and_numpy(value: object) -> None:
    with pytest.raises(TemplateError):
        to_json(value)


def test_invalid_json_is_reported_with_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "queries"
    bad.mkdir()
    (bad / "broken.json.j2").write_text('{# vars: x #}\n{\n  "a": {{ x | json }}\n  "b": 2\n}\n')
    monkeypatch.setattr("atlas.templating.template_dirs", lambda: [bad])
    environment.cache_clear()
    try:
        with pytest.raises(TemplateError) as info:
            render_json("broken.json.j2", x=1)
    finally:
        environment.cache_clear()
    message = str(info.value)
    assert "broken.json.j2" in message and '    4 |   "b": 2' in message and "^" in message


def test_template_dirs_point_at_queries() -> None:
    assert any(d.name == "queries" for d in template_dirs())
