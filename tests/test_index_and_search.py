"""`cbir index` and single queries on a generated labelled folder, with a tiny test extractor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.synthetic import class_images, encode, write_labelled_folder
from benchmarks.toy_extractors import ColourMomentsExtractor
from cbir.stages.index import index_dataset
from evaluation.query_quality import query_quality
from indexing.datasets import FolderDataset
from indexing.search import FUSION, IndexMissingError, SearchService, UnknownDocumentError
from indexing.stores.base import ModelMismatchError
from indexing.stores.urls import open_store


@pytest.fixture
def folder(tmp_path):
    root = write_labelled_folder(tmp_path / "data")
    (root / "train" / "red" / "broken.png").write_bytes(b"\x89PNG broken")
    return root


@pytest.fixture
def models(tmp_path, folder):
    train = [np.asarray(img) for img in _train_images(folder)]
    colour = ColourMomentsExtractor(1.0).fit(train).save(tmp_path / "m-colour")
    scaled = ColourMomentsExtractor(2.0).fit(train).save(tmp_path / "m-scaled")
    return {"colour": colour, "scaled": scaled}


def _train_images(folder):
    ds = FolderDataset(folder)
    return [ds.image(r) for r in ds.records("train") if not r.path.endswith("broken.png")]


def run_index(settings, folder, models, methods=("colour",), **kwargs):
    return index_dataset(
        settings,
        dataset="folder",
        data=str(folder),
        methods=methods,
        models={m: models[m] for m in methods},
        ray=kwargs.pop("ray", None),
        batch_size=kwargs.pop("batch_size", 8),
        show_progress=False,
        **kwargs,
    )


def test_index_writes_one_document_per_train_image_and_reports(settings, folder, models):
    report = run_index(settings, folder, models)
    assert report.records == 37 and report.encoded == 36 and report.documents == 36
    assert report.skipped == [
        {"path": "train/red/broken.png", "reason": report.skipped[0]["reason"]}
    ]
    saved = json.loads(Path(report.report_path).read_text())
    assert saved["documents"] == 36 and saved["models"]["colour"]["dim"] == 6
    with open_store(settings.store, settings) as store:
        meta = store.meta
        assert meta["dataset"]["name"] == "folder"
        assert meta["label_counts"] == {"red": 12, "green": 12, "blue": 12}
        assert store.ids_with("colour") == {
            f"train/{c}/{i:03d}.png" for c in ("red", "green", "blue") for i in range(12)
        }


def test_rerun_resumes_and_a_new_method_adds_a_field(settings, folder, models):
    run_index(settings, folder, models)
    again = run_index(settings, folder, models)
    assert again.encoded == 0 and again.documents == 36 and again.already_indexed == {"colour": 36}
    both = run_index(settings, folder, models, methods=("colour", "scaled"))
    assert both.encoded == 36 and both.already_indexed == {"colour": 36, "scaled": 0}
    with open_store(settings.store, settings) as store:
        assert set(store.fields) == {"colour", "scaled"} and store.count() == 36


def test_interrupted_index_finishes_with_exactly_one_document_per_image(
    settings, folder, models, monkeypatch
):
    from indexing.stores.embedded import EmbeddedStore

    original = EmbeddedStore.upsert
    calls = {"n": 0}

    def upsert_then_interrupt(self, documents):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, documents)

    monkeypatch.setattr(EmbeddedStore, "upsert", upsert_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_index(settings, folder, models)
    monkeypatch.setattr(EmbeddedStore, "upsert", original)
    with open_store(settings.store, settings) as store:
        assert store.count() == 16  # two committed batches of 8
    report = run_index(settings, folder, models)
    assert report.encoded == 20 and report.documents == 36


def test_a_different_model_for_an_existing_field_is_refused(settings, folder, models):
    run_index(settings, folder, models)
    with pytest.raises(ModelMismatchError, match="fingerprint"):
        run_index(settings, folder, {"colour": models["scaled"]})


def test_search_service_by_image_by_id_and_fusion(settings, folder, models):
    run_index(settings, folder, models, methods=("colour", "scaled"))
    service = SearchService.open(settings)
    try:
        assert service.methods == ["colour", "scaled", FUSION, "colour+qe", "scaled+qe"]
        green = class_images(1, 1, seed=4242)[0]
        result = service.search_image(green, "colour", 5)
        assert [h.label for h in result.hits] == ["green"] * 5
        assert result.hits[0].score >= result.hits[-1].score
        assert result.query.doc_id is None and query_quality(result, service.label_counts) is None
        # A test image (not indexed) by id: labelled, so P@k and AP are known.
        by_test = service.search_id("test/blue/000.png", "colour", 4)
        quality = query_quality(by_test, service.label_counts)
        assert quality["precision"] == 1.0 and quality["ap"] == 1.0 and quality["relevant"] == 12
        # An indexed image by id: its stored vector, itself left out of the results.
        by_train = service.search_id("train/red/003.png", "colour", 11)
        assert "train/red/003.png" not in [h.doc_id for h in by_train.hits]
        assert query_quality(by_train, service.label_counts)["relevant"] == 11
        fused = service.search_id("train/red/003.png", FUSION, 5)
        assert len(fused.hits) == 5 and all(h.label == "red" for h in fused.hits)
        png = service.image_png("test/blue/000.png")
        assert png.startswith(b"\x89PNG")
        with pytest.raises(UnknownDocumentError):
            service.search_id("../../etc/passwd", "colour", 3)
    finally:
        service.close()


def test_search_without_an_index_says_which_command_builds_it(settings):
    with pytest.raises(IndexMissingError, match="cbir index"):
        SearchService.open(settings)


def test_cli_index_then_search(cli, folder, models, tmp_path):
    code, out, _ = cli(
        "index",
        "--dataset",
        "folder",
        "--data",
        folder,
        "--method",
        "colour",
        "--model",
        f"colour={models['colour']}",
        "--no-ray",
        "--batch-size",
        "10",
    )
    assert code == 0, out
    assert "36 documents" in out and "skipped 1 files" in out
    assert out.strip().splitlines()[-1].startswith("index: 36 images in ")
    query = tmp_path / "q.png"
    from PIL import Image

    query.write_bytes(encode(Image.fromarray(class_images(2, 1, seed=77)[0])))
    code, out, _ = cli("search", query, "--method", "colour", "-k", "3")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["rank", "cosine", "label"]
    assert all(" blue " in line for line in lines[1:4])
    code, _, err = cli("search", query, "--method", "nope")
    assert code == 2 and "unknown method 'nope'" in err


@pytest.mark.slow
def test_index_on_ray_gives_the_same_vectors(settings, folder, models, tmp_path):
    from indexing.encoding import RayOptions

    run_index(settings, folder, models)
    other = settings.__class__.resolve(env={}, home=tmp_path / "other")
    run_index(other, folder, models, ray=RayOptions(workers=2))
    with open_store(settings.store, settings) as a, open_store(other.store, other) as b:
        ids = sorted(a.ids_with("colour"))
        assert ids == sorted(b.ids_with("colour"))
        docs_a, docs_b = a.get(ids), b.get(ids)
        for doc_id in ids:
            np.testing.assert_array_equal(
                docs_a[doc_id].vectors["colour"], docs_b[doc_id].vectors["colour"]
            )
