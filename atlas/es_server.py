"""What a cluster is: its distribution and version, and what the version decides (the API it speaks, moving_fn's
`shift`, the date_histogram's interval name)."""

from __future__ import annotations

from dataclasses import dataclass

from atlas.distributions import DEFAULT_VERSION

ApiVersion = tuple[int, int]  # (major, minor) of the Elasticsearch API a server speaks: Server.api_version


@dataclass(frozen=True)
class Server:
    """What a cluster says it is: its distribution (`elasticsearch`, `opensearch`) and version number."""

    distribution: str
    number: str

    @property
    def is_opensearch(self) -> bool:
        return self.distribution == "opensearch"

    @property
    def product(self) -> str:
        return "OpenSearch" if self.is_opensearch else "Elasticsearch"

    @property
    def title(self) -> str:
        """`Elasticsearch 7.10.2`, `OpenSearch 2.19.6`: for messages."""
        return f"{self.product} {self.number}"

    @property
    def api_version(self) -> tuple[int, int]:
        """(major, minor) of the Elasticsearch API the server speaks, which every version check of atlas compares:
        its own for Elasticsearch; 7.10 for every OpenSearch, which was forked from Elasticsearch 7.10.2 and kept
        its API (its own 1.x and 2.x numbers are no Elasticsearch 1.x or 2.x)."""
        if self.is_opensearch:
            return (7, 10)
        version = major_minor(self.number)
        if version is None:  # parse_server and EsClient.server let only versions through
            raise ValueError(f"not a version: {self.number!r}")
        return version


def parse_server(text: str) -> Server | None:
    """A server named as `atlas es start --version` names it: `7.10.2`, `6.8`, `opensearch-2.19.6`; None when the
    text is not one."""
    number = text.strip().removeprefix("opensearch-")
    if major_minor(number) is None:
        return None
    return Server("opensearch" if text.strip().startswith("opensearch-") else "elasticsearch", number)


def major_minor(text: str) -> tuple[int, int] | None:
    """(major, minor) of a version such as `7.10.2`, `6.8` or `8.0.0-SNAPSHOT`; None when the text is not one."""
    parts = text.strip().split(".")
    if len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    return int(parts[0]), int(parts[1])


DEFAULT_API_VERSION = Server("elasticsearch", DEFAULT_VERSION).api_version  # the default embedded node's


def histogram_interval_key(version: ApiVersion) -> str:
    """The date_histogram parameter that takes a fixed interval such as `5m` in this (major, minor) Elasticsearch API
    version: `fixed_interval` from 7.2 on, plain `interval` before."""
    return "fixed_interval" if version >= (7, 2) else "interval"


def moving_fn_takes_shift(version: tuple[int, int]) -> bool:
    """Whether moving_fn takes `shift` in this (major, minor) Elasticsearch API version (Server.api_version): from
    7.4 on, so on every OpenSearch."""
    return version >= (7, 4)
