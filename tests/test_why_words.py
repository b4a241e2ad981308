"""'Why it matched' for BoVW: the visual words a query and a result share (/api/why?kind=words).

Known answers on generated scenes indexed with a real BoVW model: an image and its copy share
every word, unrelated scenes share fewer; the drawn keypoints sit where the extractor put
them; the counts equal the shared nonzero bins of the vectors the index stores.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from benchmarks.scenes import scene_image
from benchmarks.synthetic import write_labelled_folder
from cbir.core.config import Settings
from cbir.stages.index import index_dataset
from features.bovw import BovwExtractor
from features.bovw_defaults import recipe_params
from features.bovw_words import keypoint_words
from features.registry import load_extractor
from features.vocabulary import nearest_words
from indexing.datasets import FolderDataset
from indexing.stores.urls import open_store
from tests.test_web_page import client_config

SCENES = 8
# Hard assignment, no mirror, no PCA, colour or HOG: the stored vector is then the square root
# of the query keypoints' idf-weighted word counts (unit length), known to the test.
PHOTO = {"vocabulary_size": 256, "descriptors_per_image": 200, "pca_dim": 0, "colour": False,
         "kmeans_init": 1, "knn": 1, "mirror": False}  # fmt: skip


def _png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def _index(root: Path, data: Path, model: BovwExtractor) -> Settings:
    settings = Settings.resolve(env={}, home=root / "home")
    path = model.save(root / "models" / "bovw")
    index_dataset(
        settings, dataset="folder", data=str(data), methods=("bovw",), models={"bovw": path},
        ray=None, batch_size=50, show_progress=False,
    )  # fmt: skip
    return settings


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> tuple[Settings, Path]:
    """Generated scenes indexed with a photo-recipe BoVW field; test/ holds copies of scene 0
    (exact and JPEG q90) and a file that is no image."""
    root = tmp_path_factory.mktemp("words")
    rng = np.random.default_rng(0)
    images = [scene_image(rng, 400) for _ in range(SCENES)]
    data = root / "data"
    for i, image in enumerate(images):
        _png(data / "train" / f"scene{i}" / "s.png", image)
    _png(data / "test" / "scene0" / "same.png", images[0])
    _ok, jpeg = cv2.imencode(".jpg", images[0][:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    (data / "test" / "scene0" / "jpeg.jpg").write_bytes(jpeg.tobytes())
    (data / "test" / "broken").mkdir(parents=True)
    (data / "test" / "broken" / "b.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    model = BovwExtractor(**recipe_params("photo", PHOTO)).fit(images)
    return _index(root, data, model), data


def _client(settings: Settings):
    from app import create_app

    app = create_app({"TESTING": True, "CBIR_SETTINGS": settings, "CBIR_INDEX_RETRY_SECONDS": 0})
    return app.test_client()


def _why(client, query: str, result: str, **extra) -> dict:
    args = "&".join(f"{k}={v}" for k, v in {"kind": "words", "format": "json", **extra}.items())
    response = client.get(f"/api/why?query={query}&result={result}&{args}")
    assert response.status_code == 200, response.text
    return response.json


def _vectors(settings: Settings, data: Path, model, query: str, result: str):
    """The query's vector as `encode` gives it, the result's as the index stores it."""
    dataset = FolderDataset(data)
    store = open_store(settings.store, settings)
    try:
        stored = store.get([result])[result].vectors["bovw"]
    finally:
        store.close()
    return model.encode_one(dataset.image(dataset.record(query))), stored


def _drawn(svg: str) -> dict[int, dict[str, np.ndarray]]:
    """Per word group of the SVG: the (x, y) of its query ("q") and result ("r") circles."""
    out = {}
    for word, body in re.findall(r'<g data-word="(\d+)"[^>]*>(.*?)</g>', svg):
        out[int(word)] = {
            side: np.array(
                re.findall(rf'<circle class="{side}" cx="([\d.]+)" cy="([\d.]+)"', body), float
            ).reshape(-1, 2)
            for side in ("q", "r")
        }
    return out


def test_a_copy_shares_every_word_and_unrelated_scenes_share_fewer(scenes):
    settings, _ = scenes
    client = _client(settings)
    same = _why(client, "test/scene0/same.png", "train/scene0/s.png")
    assert same["shared_words"] == same["query_words"] == same["result_words"] > 20
    assert same["query_weight_share"] == pytest.approx(1.0, abs=1e-4)
    assert same["score"] == pytest.approx(1.0, abs=1e-4)
    assert same["method"] == "bovw" and same["recipe"] == "photo"
    jpeg = _why(client, "test/scene0/jpeg.jpg", "train/scene0/s.png")
    others = [
        _why(client, "test/scene0/jpeg.jpg", f"train/scene{i}/s.png") for i in range(1, SCENES)
    ]
    assert jpeg["shared_words"] > max(o["shared_words"] for o in others)
    assert jpeg["query_weight_share"] > max(o["query_weight_share"] for o in others)
    assert jpeg["score"] > max(o["score"] for o in others)


@pytest.mark.parametrize("result", ["train/scene0/s.png", "train/scene3/s.png"])
def test_counts_equal_the_shared_bins_of_the_stored_vectors(scenes, result):
    settings, data = scenes
    model = load_extractor(data.parent / "models" / "bovw")
    query = "test/scene0/jpeg.jpg"
    body = _why(_client(settings), query, result)
    q, r = _vectors(settings, data, model, query, result)
    shared = (q > 0) & (r > 0)
    assert body["shared_words"] == body["soft_shared_words"] == int(shared.sum())
    assert {w["word"] for w in body["words"]} == set(np.flatnonzero(shared).tolist())
    contributions = [w["contribution"] for w in body["words"]]
    assert contributions == sorted(contributions, reverse=True)  # most contributing first
    assert body["query_words"] == int((q > 0).sum()) and body["result_words"] == int((r > 0).sum())
    # q = sqrt(idf x counts), unit length: the squares are the shares of the tf-idf weight
    assert body["query_weight_share"] == pytest.approx(float((q[shared] ** 2).sum()), abs=1e-4)
    assert body["score"] == body["word_cosine"] == pytest.approx(float(q @ r), abs=1e-4)
    for w in body["words"]:
        assert w["contribution"] == pytest.approx(float(q[w["word"]] * r[w["word"]]), abs=1e-5)


def test_drawn_keypoints_are_where_the_extractor_puts_them(scenes):
    settings, data = scenes
    model = load_extractor(data.parent / "models" / "bovw")
    dataset = FolderDataset(data)
    query, result = "test/scene0/jpeg.jpg", "train/scene0/s.png"
    client = _client(settings)
    svg = client.get(f"/api/why?query={query}&result={result}&kind=words").text
    drawn = _drawn(svg)
    body = _why(client, query, result)
    assert len(drawn) == min(body["shared_words"], 60) > 10
    shapes = [dataset.image(dataset.record(d)).shape for d in (query, result)]
    q_width, r_width = (300 * w / h for h, w, _ in shapes)  # both drawn 300 px high, 20 apart
    r_left = q_width + 20
    expected = {}
    for side, doc_id in (("q", query), ("r", result)):
        described = model.describe([dataset.image(dataset.record(doc_id))]).descriptors[0]
        unit = model.unit_descriptors(described.descriptors)
        expected[side] = (described.positions, nearest_words(unit, model.vocabulary, 1)[0][:, 0])
    for word, circles in drawn.items():
        for side, width, left in (("q", q_width, 0.0), ("r", r_width, r_left)):
            positions, words = expected[side]
            want = positions[words == word] * [width, 300] + [left, 0]
            assert np.abs(circles[side] - want).max() <= 0.0501  # one decimal in the SVG
    # a word that occurs once in each image is joined by a line, the others are not
    singles = [w for w, c in drawn.items() if len(c["q"]) == len(c["r"]) == 1]
    assert svg.count("<line ") == len(singles)


def test_the_function_reuses_the_encoder(scenes):
    _, data = scenes
    model = load_extractor(data.parent / "models" / "bovw")
    dataset = FolderDataset(data)
    image = dataset.image(dataset.record("train/scene2/s.png"))
    words = keypoint_words(model, image)
    np.testing.assert_array_equal(words.vector, model.encode_one(image))
    described = model.describe([image]).descriptors[0]
    np.testing.assert_array_equal(words.positions, described.positions)
    assert len(words.words) == len(described) and len(words.mirrored_words) == 0


def test_words_json_svg_embed_and_errors(scenes, client):
    settings, _ = scenes
    words = _client(settings)
    args = "query=test/scene0/jpeg.jpg&result=train/scene0/s.png&kind=words"
    svg = words.get(f"/api/why?{args}")
    assert svg.mimetype == "image/svg+xml" and "/api/images/train/scene0/s.png" in svg.text
    embedded = words.get(f"/api/why?{args}&embed=1").text
    assert "/api/images/" not in embedded and embedded.count("data:image/jpeg;base64,") == 2
    linked, carried = _drawn(svg.text), _drawn(embedded)
    assert list(carried) == list(linked) and len(linked) > 10
    for word, circles in linked.items():
        for side in ("q", "r"):
            np.testing.assert_array_equal(carried[word][side], circles[side])
    bad = words.get("/api/why?query=test/scene0/jpeg.jpg&result=train/scene0/s.png&kind=colour")
    assert bad.status_code == 400 and "kind must be inliers" in bad.json["error"]
    broken = words.get("/api/why?query=test/broken/b.jpg&result=train/scene0/s.png&kind=words")
    assert broken.status_code == 404 and "test/broken/b.jpg" in broken.json["error"]
    assert "cannot be read" in broken.json["error"]
    unknown = words.get("/api/why?query=nope.png&result=train/scene0/s.png&kind=words")
    assert unknown.status_code == 404
    # the generated web index's `bovw` field is a colour-moments stand-in, no visual words
    none = client.get("/api/why?query=test/red/000.png&result=train/red/000.png&kind=words")
    assert none.status_code == 400 and "no bag-of-visual-words field" in none.json["error"]
    # the page's script is told which methods' hits get the words view
    assert client_config(words.get("/").text)["wordsMethods"] == ["bovw", "bovw+qe"]
    assert client_config(client.get("/").text)["wordsMethods"] == []


def test_cifar_dense_recipe_soft_words_and_mirror(tmp_path):
    """CIFAR's recipe (dense upright grid, soft assignment to 5 words, mirror pooled)."""
    data = write_labelled_folder(tmp_path / "data", train=6, test=2)
    dataset = FolderDataset(data)
    images = [dataset.image(r) for r in dataset.records("train")]
    params = {"vocabulary_size": 32, "pca_dim": 0, "colour": False, "hog": False,
              "pyramid": [[1, 1.0]], "kmeans_init": 1}  # fmt: skip
    model = BovwExtractor(**params).fit(images)
    settings = _index(tmp_path, data, model)
    query, result = "train/red/000.png", "train/red/001.png"
    body = _why(_client(settings), query, result)
    assert body["recipe"] == "cifar" and body["query_keypoints"] == 13 * 13  # 64-px grid, step 4
    q, r = _vectors(settings, data, model, query, result)
    assert body["soft_shared_words"] == int(((q > 0) & (r > 0)).sum())
    assert 0 < body["shared_words"] <= body["soft_shared_words"]
    assert body["word_cosine"] == pytest.approx(float(q @ r), abs=1e-4)
    assert 0 < body["shared_word_cosine"] <= body["word_cosine"] + 1e-4
    grid = (np.arange(8, 57, 4) / 64).round(4)  # dense keypoints: drawn at grid points
    for w in body["words"]:
        for x, y in w["result"]:
            assert x in grid and y in grid
    svg = _client(settings).get(f"/api/why?query={query}&result={result}&kind=words").text
    assert len(_drawn(svg)) == min(body["shared_words"], 60)
