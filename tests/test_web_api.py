"""The JSON API on the generated index (benchmarks/web_index.py): search, images, health, stats."""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image

from benchmarks.synthetic import class_images, encode
from benchmarks.web_index import LABELS, TRAIN_PER_LABEL


def green_png(seed: int = 4242) -> bytes:
    return encode(Image.fromarray(class_images(LABELS.index("green"), 1, seed=seed)[0]))


def upload(client, data: bytes, name: str = "query.png", **fields):
    form = {"image": (io.BytesIO(data), name), **{k: str(v) for k, v in fields.items()}}
    return client.post("/api/search", data=form, content_type="multipart/form-data")


def test_health_says_the_index_is_ready(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json["status"] == "ok" and response.json["index"] == "ready"


def test_stats_describe_the_index_without_paths(client, web_index):
    stats = client.get("/api/stats").json
    assert stats["documents"] == len(LABELS) * TRAIN_PER_LABEL
    assert stats["dataset"] == "folder"
    assert stats["methods"]["bovw"]["model"] == "colour-moments"
    assert stats["methods"]["cnn"]["model"] == "weighted-moments"
    assert stats["methods"]["cnn"]["dim"] == 6
    assert stats["searchable"] == ["bovw", "cnn", "fusion", "bovw+qe", "cnn+qe"]
    assert stats["fusion"] == {"rule": "rrf", "methods": ["bovw", "cnn"]}
    assert stats["labels"] == {label: TRAIN_PER_LABEL for label in LABELS}
    assert stats["evaluation"] is None
    assert str(web_index.home) not in json.dumps(stats)


def test_search_by_upload_returns_the_query_class_best_first(client):
    response = upload(client, green_png(), method="cnn", k=10)
    assert response.status_code == 200
    body = response.json
    assert (body["method"], body["k"], body["score_kind"]) == ("cnn", 10, "cosine")
    assert body["took_ms"] >= 0
    results = body["results"]
    assert [r["rank"] for r in results] == list(range(1, 11))
    assert all(r["label"] == "green" for r in results)
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True) and -1.0 <= scores[-1] <= scores[0] <= 1.0 + 1e-6
    # An upload has no label: no quality figures, no same-class marks.
    assert body["query"] == {
        "id": None,
        "label": None,
        "indexed": False,
        "image_url": None,
        "thumbnail_url": None,
    }
    assert body["quality"] is None and all(r["same_label"] is None for r in results)
    first = results[0]
    assert first["image_url"] == f"/api/images/{first['id']}"
    assert client.get(first["image_url"]).status_code == 200


def test_search_defaults_to_cnn_and_k_10(client):
    body = upload(client, green_png()).json
    assert body["method"] == "cnn" and body["k"] == 10 and len(body["results"]) == 10


def test_search_by_id_of_a_test_image_reports_precision_and_ap(client):
    response = client.post(
        "/api/search", json={"id": "test/blue/002.png", "method": "bovw", "k": 25}
    )
    assert response.status_code == 200
    body = response.json
    assert body["query"]["label"] == "blue" and body["query"]["indexed"] is False
    assert body["query"]["image_url"] == "/api/images/test/blue/002.png"
    labels = [r["label"] for r in body["results"]]
    assert [r["same_label"] for r in body["results"]] == [lab == "blue" for lab in labels]
    # 20 blue images are indexed, so at most 20 of the 25 results can be relevant.
    relevant_at = [rank for rank, lab in enumerate(labels, start=1) if lab == "blue"]
    expected_ap = sum((i + 1) / rank for i, rank in enumerate(relevant_at)) / min(20, 25)
    quality = body["quality"]
    assert quality["relevant"] == 20 and quality["k"] == 25
    assert quality["precision"] == len(relevant_at) / 25
    assert np.isclose(quality["ap"], expected_ap)


def test_search_by_id_of_an_indexed_image_leaves_it_out(client):
    body = client.post("/api/search", json={"id": "train/red/003.png", "k": 10}).json
    assert body["query"]["indexed"] is True
    ids = [r["id"] for r in body["results"]]
    assert "train/red/003.png" not in ids and len(ids) == 10
    assert body["quality"]["relevant"] == TRAIN_PER_LABEL - 1


def test_search_by_id_as_a_form_field(client):
    response = client.post(
        "/api/search", data={"id": "test/green/000.png", "method": "cnn", "k": "10"}
    )
    assert response.status_code == 200 and response.json["query"]["label"] == "green"


def test_fusion_scores_are_labelled_rrf_not_cosine(client):
    body = client.post(
        "/api/search", json={"id": "test/red/001.png", "method": "fusion", "k": 10}
    ).json
    assert body["method"] == "fusion" and body["score_kind"] == "rrf"
    # Reciprocal rank fusion of two lists with k0 = 60: at most 2/61 per document.
    assert all(0 < r["score"] <= 2 / 61 + 1e-12 for r in body["results"])
    assert body["results"][0]["score"] >= body["results"][-1]["score"]


def test_k_larger_than_the_index_returns_every_document(client):
    body = upload(client, green_png(), method="bovw", k=100).json
    assert body["k"] == 100 and len(body["results"]) == len(LABELS) * TRAIN_PER_LABEL


def test_images_are_png_by_id_with_cache_headers(client, web_index):
    response = client.get("/api/images/train/yellow/007.png")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert "max-age" in response.headers["Cache-Control"]
    pixels = np.asarray(Image.open(io.BytesIO(response.data)))
    source = web_index.home.parent / "data" / "train" / "yellow" / "007.png"
    np.testing.assert_array_equal(pixels, np.asarray(Image.open(source).convert("RGB")))
    again = client.get(
        "/api/images/train/yellow/007.png", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert again.status_code == 304 and again.data == b""


def test_test_split_images_are_served_too(client):
    assert client.get("/api/images/test/red/004.png").status_code == 200
