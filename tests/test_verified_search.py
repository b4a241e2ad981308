"""Local features stored with the index (resumable), and `+gv` re-ranking through SearchService."""

from __future__ import annotations

import base64
import itertools
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.copydays import write_copy_folder
from benchmarks.toy_extractors import ColourMomentsExtractor, ThumbnailExtractor
from cbir.core.config import Settings
from cbir.stages.index import index_dataset
from features.imaging import decode_image
from indexing.datasets import FolderDataset
from indexing.local_store import LocalOptions, LocalStore, LocalStoreError
from indexing.methods import MethodName, MethodNameError
from indexing.search import SearchService
from indexing.stores.urls import open_store

OPTIONS = LocalOptions(max_side=320, min_side=160, max_keypoints=150)
ORIGINALS = ("astronaut", "coffee", "rocket")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("copies")
    data = write_copy_folder(
        root / "data", originals=ORIGINALS, transforms=("rot90", "crop"), distractors=12
    )
    dataset = FolderDataset(data)
    images = [dataset.image(r) for r in dataset.records("train")]
    models = {
        "bovw": ColourMomentsExtractor().fit(images).save(root / "models" / "bovw"),
        "cnn": ThumbnailExtractor(4).fit(images).save(root / "models" / "cnn"),
    }
    return data, models


def _index(settings: Settings, folder, **kwargs):
    data, models = folder
    return index_dataset(
        settings, dataset="folder", data=str(data), methods=tuple(models), models=models,
        ray=None, batch_size=5, show_progress=False, local=OPTIONS, **kwargs,
    )  # fmt: skip


def test_method_names_with_verification():
    assert MethodName.parse("cnn+gv") == MethodName("cnn", verified=True)
    assert str(MethodName.parse("fusion+gv")) == "fusion+gv"
    assert MethodName.parse("cnn+qe+gv").unverified == MethodName("cnn", expanded=True)
    with pytest.raises(MethodNameError, match=r"\+qe.*then \+gv"):
        MethodName.parse("cnn+gv+qe")


def test_local_features_survive_a_kill_and_resume(settings, folder, monkeypatch):
    calls = {"n": 0}
    original_add = LocalStore.add

    def killed_on_third_batch(self, doc_ids, features):
        calls["n"] += 1
        if calls["n"] == 3:  # after the store commit of batch 3, before its shard is written
            raise KeyboardInterrupt
        return original_add(self, doc_ids, features)

    monkeypatch.setattr(LocalStore, "add", killed_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        _index(settings, folder)
    store = LocalStore.open(settings, settings.store)
    assert len(store) == 10  # two whole shards of 5, nothing of the third
    monkeypatch.setattr(LocalStore, "add", original_add)
    report = _index(settings, folder)
    # the vectors of the third batch were committed: only local features are redone for it
    assert report.already_indexed["cnn"] == 15
    assert report.already_indexed["local-features"] == 10
    store = LocalStore.open(settings, settings.store)
    assert len(store) == report.records == 3 + 12
    _data, _ = folder
    ids = sorted(store.ids())
    got = store.get(ids)
    assert set(got) == set(ids)
    assert all(f.descriptors.dtype == np.uint8 and len(f) <= 150 for f in got.values())
    assert all(len(got[d]) > 40 for d in ids if "original" in d)  # flat distractors may have 0
    # a third run has nothing left to do
    assert _index(settings, folder).encoded == 0
    with pytest.raises(LocalStoreError, match="delete that folder"):
        LocalStore.open(settings, settings.store, LocalOptions(max_keypoints=10))


def test_local_features_follow_a_folder_sync(tmp_path, folder):
    data, models = folder
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    settings = Settings.resolve(env={}, home=tmp_path / "home")
    _index(settings, (copy, models))
    before = LocalStore.open(settings, settings.store)
    old = {d.rsplit("/", 2)[-2]: d for d in before.ids() if "original" in d}
    old_features = before.get(old.values())
    train = copy / "train"
    (train / "rocket" / "original.jpg").rename(train / "rocket" / "moved.jpg")
    shutil.copy(train / "astronaut" / "original.jpg", train / "coffee" / "original.jpg")
    shutil.rmtree(train / "distractor-00000")
    report = _index(settings, (copy, models))
    assert report.sync["renamed"] == 1 and report.sync["changed"] == 1
    after = LocalStore.open(settings, settings.store)
    with open_store(settings.store, settings) as store:
        assert after.ids() == store.ids_with("cnn")  # nothing stale, nothing missing
    assert len(after) == 14 and old["rocket"] not in after.ids()
    moved = next(d for d in after.ids() if "moved" in d)
    got = after.get([moved, old["coffee"]])
    np.testing.assert_array_equal(got[moved].points, old_features[old["rocket"]].points)
    # the changed file's features are those of its new content, the astronaut photo's
    np.testing.assert_array_equal(got[old["coffee"]].points, old_features[old["astronaut"]].points)


def test_gv_moves_the_rotated_copy_to_rank_one(settings, folder):
    _index(settings, folder)
    data, _ = folder
    service = SearchService.open(settings)
    try:
        assert "cnn+gv" in service.methods and "fusion+gv" in service.methods
        query = decode_image(data / "test" / "coffee" / "rot90.jpg")
        plain = service.search_image(query, "cnn", 15)
        verified = service.search_image(query, "cnn+gv", 15)
        assert service.score_kind("cnn+gv") == "inliers"
        assert verified.hits[0].label == "coffee"
        assert verified.verifications[verified.hits[0].doc_id].inliers >= 20
        # the same candidates, re-ordered; scores strictly decreasing
        assert {h.doc_id for h in verified.hits} == {h.doc_id for h in plain.hits}
        scores = [h.score for h in verified.hits]
        assert all(a > b for a, b in itertools.pairwise(scores))
        # unverified candidates keep the first ranking among themselves
        first = [h.doc_id for h in plain.hits]
        rest = [h.doc_id for h in verified.hits if h.doc_id not in verified.verifications]
        assert rest == [d for d in first if d in rest]
        by_id = service.search_id(verified.hits[0].doc_id, "bovw+gv", 5)
        assert by_id.hits[0].doc_id != verified.hits[0].doc_id  # left out of its own results
    finally:
        service.close()


def test_timed_query_is_the_service_search_then_its_gv(settings, folder):
    from benchmarks.verify_speed import PHASES, summary, timed_query

    _index(settings, folder)
    data, _ = folder
    service = SearchService.open(settings)
    try:
        query = decode_image(data / "test" / "rocket" / "crop.jpg")
        timed = timed_query(service, query, "cnn")
        top = service.reranking.top
        assert timed.first == service.search_image(query, "cnn", top).hits
        assert timed.verified == service.search_image(query, "cnn+gv", top).hits
        assert set(timed.ms) == set(PHASES) and all(v >= 0 for v in timed.ms.values())
        figures = summary([timed.ms, {p: 2 * v for p, v in timed.ms.items()}])
        assert figures["verify_p50_ms"] == round(1.5 * timed.ms["verify"], 2)
        assert figures["verify_p50_ms"] <= figures["verify_p95_ms"]
    finally:
        service.close()


def _index_without_local(tmp_path: Path, folder) -> Settings:
    settings = Settings.resolve(env={}, home=tmp_path / "home")
    data, models = folder
    index_dataset(
        settings, dataset="folder", data=str(data), methods=("cnn",), models=models,
        ray=None, show_progress=False,
    )  # fmt: skip
    return settings


def test_no_gv_methods_without_local_features(tmp_path, folder):
    settings = _index_without_local(tmp_path, folder)
    service = SearchService.open(settings)
    try:
        assert service.methods == ["cnn", "cnn+qe"]
    finally:
        service.close()


def test_evaluate_reports_gv_methods(settings, folder, tmp_path):
    from cbir.stages.evaluate import evaluate_dataset

    _index(settings, folder)
    data, _ = folder
    summary = evaluate_dataset(
        settings, dataset="folder", data=str(data), methods=["cnn", "cnn+gv", "fusion+gv"],
        k=15, out_dir=tmp_path / "runs", ray=None, show_progress=False,
    )  # fmt: skip
    assert list(summary.methods) == ["cnn", "cnn+gv", "fusion+gv"]
    assert summary.methods["cnn+gv"].measures["recip_rank"] == 1.0  # every copy's original first
    assert summary.methods["fusion+gv"].measures["recip_rank"] == 1.0
    assert summary.methods["cnn"].measures["recip_rank"] < 1.0  # the thumbnail cnn alone misses


def test_evaluate_gv_without_local_features_says_what_to_run(tmp_path, folder):
    from cbir.core.errors import CbirError
    from cbir.stages.evaluate import evaluate_dataset

    settings = _index_without_local(tmp_path, folder)
    data, _ = folder
    with pytest.raises(CbirError, match="cbir index --local"):
        evaluate_dataset(
            settings, dataset="folder", data=str(data), methods=["cnn+gv"], ray=None,
            show_progress=False,
        )  # fmt: skip


def test_api_search_with_gv_returns_the_verification(settings, folder):
    from app import create_app

    _index(settings, folder)
    app = create_app({"TESTING": True, "CBIR_SETTINGS": settings, "CBIR_INDEX_RETRY_SECONDS": 0})
    client = app.test_client()
    assert "cnn+gv" in client.get("/api/stats").json["searchable"]
    assert "CNN + geometric verification" in client.get("/").text  # the page's method menu
    body = client.post(
        "/api/search", json={"id": "test/rocket/crop.jpg", "method": "cnn+gv", "k": 5}
    ).json
    assert body["score_kind"] == "inliers", body
    top = body["results"][0]
    assert top["label"] == "rocket" and top["verification"]["inliers"] >= 10
    assert top["verification"]["scale"] == pytest.approx(1.0, abs=0.05)
    assert body["results"][-1]["verification"] is None  # an unrelated distractor


def test_why_it_matched_svg_and_json(settings, folder):
    from app import create_app

    _index(settings, folder)
    app = create_app({"TESTING": True, "CBIR_SETTINGS": settings, "CBIR_INDEX_RETRY_SECONDS": 0})
    client = app.test_client()
    args = "query=test/coffee/rot90.jpg&result=train/coffee/original.jpg"
    body = client.get(f"/api/why?{args}&format=json").json
    assert body["inliers"] >= 20 and abs(abs(body["angle"]) - 90) < 1.0
    svg = client.get(f"/api/why?{args}")
    assert svg.mimetype == "image/svg+xml"
    assert svg.text.count("<line ") == min(body["inliers"], 200)
    assert "/api/images/train/coffee/original.jpg" in svg.text
    # embedded: the two images travel inside the SVG (an <img> loads nothing an SVG links)
    embedded = client.get(f"/api/why?{args}&embed=1").text
    assert "/api/images/" not in embedded
    hrefs = re.findall(r'href="data:image/jpeg;base64,([^"]+)"', embedded)
    assert len(hrefs) == 2 and embedded.count("<line ") == svg.text.count("<line ")
    shapes = [decode_image(base64.b64decode(h)).shape[:2] for h in hrefs]
    assert max(shapes[1]) == 512  # the result's 512-px thumbnail (the photos are larger)
    assert client.get(f"/api/why?{args}&embed=yes").status_code == 400
    missing = client.get("/api/why?query=test/coffee/rot90.jpg")
    assert missing.status_code == 400


def test_sidecar_never_records_credentials(tmp_path):
    settings = Settings.resolve(env={}, home=tmp_path)
    url = "http://elastic:secret@es.example:9200/photos"
    store = LocalStore.open(settings, url, OPTIONS)
    assert store.store_url == "http://es.example:9200/photos"
    assert store.directory == LocalStore.open(settings, store.store_url).directory


def test_search_options_in_the_url_share_the_sidecar(settings, folder):
    from indexing.local_store import sidecar_dir

    _index(settings, folder)
    with_graph = f"{settings.store}?index=hnsw&ef_search=64"
    assert sidecar_dir(settings, with_graph) == sidecar_dir(settings, settings.store)
    service = SearchService.open(settings, with_graph)
    try:
        assert service.local is not None and "cnn+gv" in service.methods
        data, _ = folder
        verified = service.search_image(
            decode_image(data / "test" / "coffee" / "rot90.jpg"), "cnn+gv", 15
        )
        assert verified.hits[0].label == "coffee"
    finally:
        service.close()
    es = "http://es.example:9200/photos"
    assert sidecar_dir(settings, f"{es}?index_options=int8_hnsw") == sidecar_dir(settings, es)


def test_a_sidecar_made_under_the_full_url_is_still_found(tmp_path):
    import hashlib

    settings = Settings.resolve(env={}, home=tmp_path)
    url = "local:/data/index?index=hnsw"
    legacy = tmp_path / "local" / hashlib.sha1(url.encode()).hexdigest()[:16]
    from indexing.local_store import sidecar_dir

    assert sidecar_dir(settings, url) != legacy  # nothing there: the new key
    LocalStore(legacy, url, OPTIONS)._write_options()
    assert sidecar_dir(settings, url) == legacy
    assert LocalStore.open(settings, url).options == OPTIONS
