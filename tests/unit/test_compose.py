"""docker-compose.yml cannot run here (no Docker): check its structure instead."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from atlas.cli import cli

COMPOSE_VERSION = "8.19.9"  # the current server users run with Kibana; the embedded node is 7.10.2
COMPOSE = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())


def env(service: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in COMPOSE["services"][service]["environment"])


def test_services_and_versions() -> None:
    services = COMPOSE["services"]
    assert sorted(services) == ["atlas", "elasticsearch", "kibana"]
    assert services["elasticsearch"]["image"] == f"elasticsearch:{COMPOSE_VERSION}"
    assert services["kibana"]["image"] == f"kibana:{COMPOSE_VERSION}"
    assert "9200:9200" in services["elasticsearch"]["ports"] and "5601:5601" in services["kibana"]["ports"]


def test_elasticsearch_runs_watcher_on_a_trial_licence_without_security() -> None:
    settings = env("elasticsearch")
    assert settings["xpack.license.self_generated.type"] == "trial"
    assert settings["xpack.security.enabled"] == "false"
    assert settings["discovery.type"] == "single-node"


def test_healthchecks_and_start_order() -> None:
    services = COMPOSE["services"]
    for name in ("elasticsearch", "kibana"):
        assert services[name]["healthcheck"]["test"][0] == "CMD-SHELL"
    assert "_cluster/health" in services["elasticsearch"]["healthcheck"]["test"][1]
    assert "/api/status" in services["kibana"]["healthcheck"]["test"][1]
    for name in ("kibana", "atlas"):
        assert services[name]["depends_on"]["elasticsearch"]["condition"] == "service_healthy"
    assert env("kibana")["ELASTICSEARCH_HOSTS"] == "http://elasticsearch:9200"


def test_the_atlas_service_runs_real_atlas_commands_against_the_compose_cluster() -> None:
    atlas = COMPOSE["services"]["atlas"]
    assert env("atlas")["ATLAS_ES_URL"] == "http://elasticsearch:9200"
    commands = re.findall(r"(?<![/\w])atlas (\w+)", atlas["command"][-1])
    assert commands == ["setup", "run"]
    assert all(name in cli.commands for name in commands)
