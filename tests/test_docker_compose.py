"""docker-compose.yml starts the single-node Elasticsearch the README describes (no docker here: we read it)."""

from __future__ import annotations

import re

import yaml

from tests.conftest import REPO


def test_compose_file_runs_one_memory_limited_elasticsearch_on_a_named_volume():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    (name,) = compose["services"]
    service = compose["services"][name]
    image, tag = service["image"].rsplit(":", 1)
    assert image == "docker.elastic.co/elasticsearch/elasticsearch"
    assert re.fullmatch(r"(8|9)\.\d+\.\d+", tag)
    environment = dict(item.split("=", 1) for item in service["environment"])
    assert environment["discovery.type"] == "single-node"
    assert environment["xpack.security.enabled"] == "false"
    assert environment["ES_JAVA_OPTS"] == "-Xms1g -Xmx1g"
    assert re.fullmatch(r"\d+[mg]", service["mem_limit"])
    assert service["ports"] == ["127.0.0.1:9200:9200"]
    volume, target = service["volumes"][0].split(":")
    assert volume in compose["volumes"] and target == "/usr/share/elasticsearch/data"
    assert "9200" in " ".join(service["healthcheck"]["test"])


def test_readme_says_how_to_start_use_and_stop_it():
    readme = (REPO / "README.md").read_text()
    for command in (
        "docker compose up -d",
        "CBIR_STORE=http://localhost:9200 cbir index",
        "docker compose down",
    ):
        assert command in readme
