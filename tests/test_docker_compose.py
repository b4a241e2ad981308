"""docker-compose.yml starts the single-node Elasticsearch the README describes (no docker here: we read it)."""

from __future__ import annotations

import re

import elasticsearch
import yaml

from tests.conftest import REPO


def test_compose_file_runs_one_memory_limited_elasticsearch_on_a_named_volume():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    (name,) = compose["services"]
    service = compose["services"][name]
    image, tag = service["image"].rsplit(":", 1)
    assert image == "docker.elastic.co/elasticsearch/elasticsearch"
    assert re.fullmatch(r"(8|9)\.\d+\.\d+", tag)
    # the server's minor matches the client's (Elastic's compatibility promise)
    client = elasticsearch.__versionstr__.split(".")[:2]
    assert tag.split(".")[:2] == client, f"image {tag} vs client {elasticsearch.__versionstr__}"
    environment = dict(item.split("=", 1) for item in service["environment"])
    assert environment["discovery.type"] == "single-node"
    assert environment["xpack.security.enabled"] == "false"
    assert environment["xpack.license.self_generated.type"] == "basic"
    # heap for 50,000 x 2,304 dims (vectors themselves live off-heap, inside mem_limit)
    assert environment["ES_JAVA_OPTS"] == "-Xms2g -Xmx2g"
    vectors_gb = 50_000 * 2_304 * 4 / 2**30
    assert re.fullmatch(r"\d+g", service["mem_limit"])
    assert int(service["mem_limit"][:-1]) >= 2 + 2 * vectors_gb + 1
    assert service["ports"] == ["127.0.0.1:9200:9200"]
    volume, target = service["volumes"][0].split(":")
    assert volume in compose["volumes"] and target == "/usr/share/elasticsearch/data"
    assert "9200" in " ".join(service["healthcheck"]["test"])


def test_docs_describe_the_compose_files_security_settings():
    doc = (REPO / "docs" / "elasticsearch.md").read_text()
    for setting in ("xpack.security.enabled=false", "127.0.0.1", "ES_JAVA_OPTS"):
        assert setting in doc


def test_store_docs_say_how_to_start_use_and_stop_it():
    readme = (REPO / "docs" / "stores.md").read_text()
    for command in (
        "docker compose up -d",
        "CBIR_STORE=http://localhost:9200 cbir index",
        "docker compose down",
    ):
        assert command in readme
