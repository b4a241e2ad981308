"""`cbir duplicates` on a generated folder with planted exact and near copies."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil

import cv2
import numpy as np
import pytest

from benchmarks.copydays import photo, shapes_image, transformed
from benchmarks.toy_extractors import ThumbnailExtractor
from cbir.stages.duplicates import find_duplicates
from cbir.stages.index import index_dataset
from features.imaging import decode_image
from indexing.local_store import LocalOptions

OPTIONS = LocalOptions(max_side=320, min_side=160, max_keypoints=150)


def _save(path, image, quality=95):
    cv2.imwrite(str(path), image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])


@pytest.fixture
def planted(tmp_path, settings):
    data = tmp_path / "photos"
    data.mkdir()
    for name in ("astronaut", "coffee", "rocket", "camera", "chelsea"):
        _save(data / f"{name}.jpg", photo(name))
    rng = np.random.default_rng(3)
    for i in range(6):
        _save(data / f"shapes-{i}.jpg", shapes_image(rng, 200))
    shutil.copyfile(data / "astronaut.jpg", data / "astronaut copy.jpg")  # exact
    os.utime(data / "astronaut.jpg", (1_000_000_000, 1_000_000_000))  # the older one
    coffee = photo("coffee")
    _save(data / "coffee-small.jpg", cv2.resize(coffee, (300, 200), interpolation=cv2.INTER_AREA))
    _save(data / "coffee-q20.jpg", transformed(coffee, "jpeg", rng), quality=20)
    images = [decode_image(p) for p in sorted(data.iterdir())]
    model = ThumbnailExtractor(4).fit(images).save(tmp_path / "models" / "cnn")
    index_dataset(
        settings, dataset="folder", data=str(data), methods=("cnn",), models={"cnn": model},
        ray=None, show_progress=False, local=OPTIONS,
    )  # fmt: skip
    return data


def _groups(report):
    return {frozenset(m.doc_id for m in g.members): g for g in report.groups}


def test_planted_exact_and_near_groups_with_keepers(settings, planted):
    report = find_duplicates(settings, threshold=0.5, show_progress=False)
    groups = _groups(report)
    exact = groups[frozenset({"astronaut.jpg", "astronaut%20copy.jpg"})]
    assert exact.kind == "exact" and exact.keep == "astronaut.jpg"  # same size: the oldest
    near = groups[frozenset({"coffee.jpg", "coffee-small.jpg", "coffee-q20.jpg"})]
    assert near.kind == "near" and near.keep == "coffee.jpg"  # the largest
    assert all(p.inliers >= 20 for p in near.pairs if p.kind == "near")
    assert len(report.groups) == 2  # low threshold: many candidates, verification rejects them
    assert report.verified and report.candidate_pairs > 3


def test_cli_writes_json_and_csv(cli, planted, tmp_path):
    out = tmp_path / "dups"
    code, stdout, stderr = cli("duplicates", "--threshold", "0.5", "--out", out)
    assert code == 0, stderr
    data = json.loads(out.with_suffix(".json").read_text())
    assert sorted(g["kind"] for g in data["groups"]) == ["exact", "near"]
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert len(rows) == 5 and sum(r["keep"] == "True" for r in rows) == 2
    assert "2 groups" in stdout and "keep coffee.jpg" in stdout


def test_unknown_method_says_what_to_do(settings, planted):
    from cbir.core.errors import CbirError

    with pytest.raises(CbirError, match="cbir index --method bovw"):
        find_duplicates(settings, method="bovw", show_progress=False)


def test_the_page_shows_the_groups_with_the_keep_suggestion(settings, planted):
    from app import create_app
    from cbir.stages.duplicates import default_report

    app = create_app({"TESTING": True, "CBIR_SETTINGS": settings, "CBIR_INDEX_RETRY_SECONDS": 0})
    client = app.test_client()
    missing = client.get("/duplicates")
    assert missing.status_code == 200 and "No duplicates report yet" in missing.text
    report = find_duplicates(settings, threshold=0.5, show_progress=False)
    path = default_report(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    report.write_json(path)
    html = client.get("/duplicates").text
    sections = re.findall(r'<section class="dup-group".*?</section>', html, re.S)
    assert len(sections) == len(report.groups) >= 2
    for group, section in zip(report.groups, sections, strict=True):
        kept = re.findall(r'<li class="hit keep">\s*<a href="[^"]*" data-id="([^"]+)"', section)
        assert kept == [group.keep]  # exactly one keep mark, on the suggested member
        ids = re.findall(r'data-id="([^"]+)"', section)
        assert sorted(ids) == sorted(m.doc_id for m in group.members)
        assert section.count("copy</span>") == len(group.members) - 1
    near = next(g for g in report.groups if g.kind == "near")
    pair = next(p for p in near.pairs if p.inliers)
    why = re.search(rf'href="(/api/why\?query={re.escape(pair.a)}&amp;result=[^"]+)"', html)
    svg = client.get(why.group(1).replace("&amp;", "&"))
    assert svg.mimetype == "image/svg+xml" and f"{pair.inliers} inliers" in svg.text
    thumb = re.search(r'<img class="thumb" src="([^"]+)"', sections[0]).group(1)
    assert client.get(thumb).mimetype == "image/jpeg"
    path.write_text("{not json")
    broken = client.get("/duplicates")
    assert broken.status_code == 200 and "run `cbir duplicates` again" in broken.text


def test_a_mirrored_copy_is_confirmed_by_the_mirrored_view(tmp_path, settings):
    from cbir.stages.duplicates import DUPLICATE_MIN_INLIERS
    from features.verify import VerifyParams, verify
    from indexing.local_store import LocalStore

    data = tmp_path / "photos"
    data.mkdir()
    rocket = photo("rocket")
    _save(data / "rocket.jpg", rocket)
    _save(data / "rocket-mirror.jpg", np.ascontiguousarray(rocket[:, ::-1]))
    rng = np.random.default_rng(5)
    for i in range(4):
        _save(data / f"shapes-{i}.jpg", shapes_image(rng, 200))
    images = [decode_image(p) for p in sorted(data.iterdir())]
    model = ThumbnailExtractor(4).fit(images).save(tmp_path / "models" / "cnn")
    index_dataset(
        settings, dataset="folder", data=str(data), methods=("cnn",), models={"cnn": model},
        ray=None, show_progress=False, local=OPTIONS,
    )  # fmt: skip
    stored = LocalStore.open(settings, settings.store).get(["rocket.jpg", "rocket-mirror.jpg"])
    as_given = verify(stored["rocket-mirror.jpg"], stored["rocket.jpg"], VerifyParams())
    assert as_given.inliers <= DUPLICATE_MIN_INLIERS  # stored SIFT alone: a chance fit at best
    report = find_duplicates(settings, threshold=0.0, show_progress=False)
    (group,) = report.groups
    assert {m.doc_id for m in group.members} == {"rocket.jpg", "rocket-mirror.jpg"}
    assert group.pairs[0].inliers >= 20 > 3 * as_given.inliers, group.pairs[0]


def test_close_pairs_keep_each_images_nearest_above_the_threshold():
    from cbir.core.errors import CbirError
    from cbir.stages.duplicates import close_pairs

    angles = np.radians([0.0, 10.0, 25.0, 90.0])  # cosines: a-b .985, b-c .966, a-c .906
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    vectors = np.vstack([vectors, np.zeros((1, 2), np.float32)])  # a zero vector pairs never
    ids = ["a", "b", "c", "d", "z"]
    every = close_pairs(ids, vectors, 0.9)
    assert [(x, y) for x, y, _ in every] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert every[0][2] == pytest.approx(np.cos(np.radians(10)), abs=1e-6)
    # one nearest each: a -> b, b -> a, c -> b (d's nearest, c at .423, is under 0.9)
    assert [(x, y) for x, y, _ in close_pairs(ids, vectors, 0.9, 1)] == [("a", "b"), ("b", "c")]
    assert [(x, y) for x, y, _ in close_pairs(ids, vectors, 0.4, 1)] == [
        ("a", "b"), ("b", "c"), ("c", "d")]  # fmt: skip
    assert close_pairs(ids, vectors, 0.9, 10) == every
    with pytest.raises(CbirError, match="--neighbours"):
        find_duplicates(None, neighbours=0)
