"""What atlas makes of a server's version: OpenSearch numbers are never read as Elasticsearch 1.x or 2.x; every
distribution `atlas es start` offers has its Maven profile in pom.xml."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from atlas.distributions import DISTRIBUTIONS, distribution
from atlas.es_server import Server, moving_fn_takes_shift, parse_server


@dataclass(frozen=True)
class Case:
    text: str
    server: Server | None
    api_version: tuple[int, int] | None = None
    one_step: bool = True  # moving_fn takes shift: the surprise in one pipeline step


CASES = {
    "elasticsearch 7.10.2": Case("7.10.2", Server("elasticsearch", "7.10.2"), (7, 10)),
    "elasticsearch 6.8": Case("6.8", Server("elasticsearch", "6.8"), (6, 8), one_step=False),
    "elasticsearch snapshot": Case("8.0.0-SNAPSHOT", Server("elasticsearch", "8.0.0-SNAPSHOT"), (8, 0)),
    "opensearch 2.19.6": Case("opensearch-2.19.6", Server("opensearch", "2.19.6"), (7, 10)),
    "opensearch 1.3": Case("opensearch-1.3", Server("opensearch", "1.3"), (7, 10)),
    "opensearch 3.0.0": Case("opensearch-3.0.0", Server("opensearch", "3.0.0"), (7, 10)),
    "a word": Case("seven", None),
    "opensearch without a number": Case("opensearch-", None),
    "a bare major": Case("7", None),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_parse_server_and_its_api_version(case: Case) -> None:
    server = parse_server(case.text)
    assert server == case.server
    if server is not None:
        assert server.api_version == case.api_version
        assert moving_fn_takes_shift(server.api_version) is case.one_step


def test_titles_name_the_product() -> None:
    assert Server("opensearch", "2.19.6").title == "OpenSearch 2.19.6"
    assert Server("elasticsearch", "7.10.2").title == "Elasticsearch 7.10.2"


def test_every_distribution_has_its_maven_profile() -> None:
    pom = ET.parse(Path(__file__).resolve().parents[2] / "pom.xml")
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    profiles = {p.text for p in pom.getroot().findall("m:profiles/m:profile/m:id", ns)}
    assert profiles == {d.profile for d in DISTRIBUTIONS.values()}


def test_the_opensearch_distribution_is_named_as_its_zip_unpacks() -> None:
    dist = distribution("opensearch-2.19.6")
    assert (dist.number, dist.major, dist.home_name, dist.env_prefix) == (
        "2.19.6",
        2,
        "opensearch-2.19.6",
        "OPENSEARCH",
    )
    assert dist.default_port == 9240 and distribution("7.10.2").default_port == 9250  # side by side
    assert (distribution("7.10.2").home_name, distribution("7.10.2").profile) == ("elasticsearch-7.10.2", "es-7.10.2")
