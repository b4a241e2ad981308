"""Real photo folders (issue #16): odd file names, big phone JPEGs, HEIC/AVIF, nothing lost."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.synthetic import bomb_png, encode, rgb_array
from benchmarks.toy_extractors import ColourMomentsExtractor
from cbir.core.config import Settings
from cbir.stages.dataset import summarize_dataset
from cbir.stages.index import index_dataset
from evaluation.trec_io import read_run
from evaluation.trec_write import write_run
from features.imaging import IMAGE_SUFFIXES, ImageDecodeError, decode_image
from indexing.datasets import FolderDataset
from indexing.docids import folder_doc_id, folder_relpath
from tests.conftest import REPO

# File names as bytes: not UTF-8 (a Latin-1 e-acute), whitespace of every kind, the URL and
# TREC troublemakers, a right-to-left mark, and a 244-byte name.
ODD_NAMES = [
    b"caf\xe9.png",
    b"new\nline.png",
    b"tab\there.png",
    b"100% #1 sunset.png",
    "\u200fright-to-left.png".encode(),
    b"n" * 240 + b".png",
]


def write_odd_folder(root: Path) -> dict[bytes, np.ndarray]:
    """One PNG per odd name under root/photos/, and one under a folder that is not UTF-8."""
    pixels = {}
    for i, name in enumerate([*ODD_NAMES, b"\xe9t\xe9/beach.png"]):
        path = os.path.join(os.fsencode(root), b"photos" if i < len(ODD_NAMES) else b"", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pixels[name] = rgb_array(i)
        with open(path, "wb") as f:
            f.write(encode(Image.fromarray(pixels[name])))
    return pixels


@pytest.fixture
def odd_index(tmp_path):
    """The odd-name folder indexed with a small test model; returns (settings, pixels by id)."""
    root = tmp_path / "data"
    pixels = write_odd_folder(root)
    ds = FolderDataset(root)
    model = ColourMomentsExtractor().fit([ds.image(r) for r in ds.records()])
    settings = Settings.resolve(env={}, home=tmp_path / "home")
    report = index_dataset(
        settings,
        dataset="folder",
        data=str(root),
        methods=("bovw",),
        models={"bovw": model.save(tmp_path / "model")},
        ray=None,
        show_progress=False,
    )
    assert report.skipped == [] and report.documents == len(pixels)
    by_id = {}
    for name, array in pixels.items():
        relpath = os.fsdecode(name if name.startswith(b"\xe9t") else b"photos/" + name)
        by_id[folder_doc_id(relpath)] = array
    return settings, by_id


def test_doc_ids_escape_every_byte_reversibly_and_stay_the_same():
    latin1 = os.fsdecode(b"caf\xe9.png")
    assert folder_doc_id(latin1) == "caf%E9.png"
    assert folder_doc_id("photos/new\nline.png") == "photos/new%0Aline.png"
    assert folder_doc_id("100% #1.png") == "100%25%20%231.png"
    for name in ODD_NAMES:
        relpath = os.fsdecode(b"photos/" + name)
        doc_id = folder_doc_id(relpath)
        assert doc_id.isprintable() and not any(c.isspace() for c in doc_id)
        assert folder_relpath(doc_id) == relpath
    assert folder_doc_id(os.fsdecode(b"a%E9")) != folder_doc_id(latin1[:-4])


def test_odd_names_are_indexed_searchable_and_served_back(odd_index):
    from app import create_app

    settings, pixels = odd_index
    app = create_app({"TESTING": True, "CBIR_SETTINGS": settings, "CBIR_INDEX_RETRY_SECONDS": 0})
    client = app.test_client()
    for doc_id, array in pixels.items():
        found = client.post("/api/search", json={"id": doc_id, "k": 10})
        assert found.status_code == 200, (doc_id, found.get_json())
        body = found.get_json()
        assert body["query"]["id"] == doc_id and body["query"]["indexed"]
        assert {hit["id"] for hit in body["results"]} == set(pixels) - {doc_id}
        served = client.get(body["query"]["image_url"])
        assert served.status_code == 200 and served.mimetype == "image/png"
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(served.data))), array)
    assert "caf%E9.png" in {Path(d).name for d in pixels}


def test_odd_doc_ids_make_one_trec_line_per_hit(odd_index, tmp_path):
    _, pixels = odd_index
    run = {"q1": {doc_id: 1.0 / (rank + 1) for rank, doc_id in enumerate(sorted(pixels))}}
    path = tmp_path / "odd.run"
    assert write_run(path, run, tag="t") == len(pixels)
    assert len(path.read_bytes().splitlines()) == len(pixels)
    assert set(read_run(path).ranked("q1")[0]) == set(pixels)


def smooth_jpeg(width: int, height: int) -> bytes:
    """A smooth gradient JPEG of width x height, cheap to write at any size."""
    gray = Image.linear_gradient("L").resize((width, height), Image.Resampling.NEAREST)
    return encode(Image.merge("RGB", (gray, gray, gray)), "JPEG", quality=50)


@pytest.fixture(scope="module")
def big_jpegs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("big")
    sizes = {"48mpx.jpg": (8000, 6000), "120mpx.jpg": (12648, 9486)}
    for name, (w, h) in sizes.items():
        (folder / name).write_bytes(smooth_jpeg(w, h))
    return {name: folder / name for name in sizes}


def test_big_phone_jpegs_decode_reduced_under_the_default_limit(big_jpegs):
    for path in big_jpegs.values():
        declared = Image.open(path).size
        image = decode_image(path)  # default limits, default working size (1,024 short side)
        h, w = image.shape[:2]
        assert 1024 <= min(h, w) < 2048 and abs(w / h - declared[0] / declared[1]) < 0.01
        assert min(decode_image(path, min_side=32).shape[:2]) < 64
        assert min(decode_image(path, min_side=224).shape[:2]) >= 224
    full = decode_image(big_jpegs["48mpx.jpg"], min_side=None)
    assert full.shape == (6000, 8000, 3)


def test_the_bomb_limit_counts_decoded_pixels_not_declared_ones(big_jpegs):
    # The same 48 Mpx, declared by a PNG, must be decoded whole: refused under a 40 Mpx limit.
    assert decode_image(big_jpegs["48mpx.jpg"], max_pixels=40_000_000).shape[2] == 3
    with pytest.raises(ImageDecodeError, match="to decode exceeds the limit of 40,000,000"):
        decode_image(bomb_png(8000, 6000), max_pixels=40_000_000)
    with pytest.raises(ImageDecodeError, match="exceeds the limit"):
        decode_image(big_jpegs["48mpx.jpg"], max_pixels=40_000_000, min_side=None)
    with pytest.raises(ImageDecodeError, match="hard ceiling of 100,000,000"):
        decode_image(big_jpegs["120mpx.jpg"], max_declared_pixels=100_000_000)


def test_pillows_bomb_warning_never_reaches_the_console():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for size in ((12_000, 12_000), (40_000, 40_000), (50_000, 50_000)):
            with pytest.raises(ImageDecodeError, match="decompression bomb"):
                decode_image(bomb_png(*size))
    assert [str(w.message) for w in caught] == []


def test_decoding_a_120_mpx_jpeg_peaks_under_150_mb(big_jpegs):
    """Peak memory of the child process (its own VmHWM, as the CIFAR memory test reads it)."""
    script = (
        "import sys\n"
        "from features.imaging import decode_image\n"
        "image = decode_image(sys.argv[1])\n"
        "hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM:')]\n"
        "print(image.shape[0], image.shape[1], int(hwm[0].split()[1]) // 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(big_jpegs["120mpx.jpg"])],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout.split()
    height, width, peak_mb = map(int, out)
    assert (height, width) == (1186, 1581)  # decoded at 1/8 scale, never at 120 Mpx
    assert peak_mb < 150, f"peak RSS {peak_mb} MB"


def oriented(fmt: str) -> bytes:
    """A 64x48 image, red top-left corner, whose EXIF says: turn 90 degrees clockwise to show."""
    array = np.zeros((48, 64, 3), np.uint8)
    array[:8, :8] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(Image.fromarray(array), fmt, exif=exif.tobytes(), quality=90)


@pytest.mark.parametrize(("fmt", "suffix"), [("HEIF", ".heic"), ("AVIF", ".avif")])
def test_heic_and_avif_decode_upright(fmt, suffix):
    import pillow_heif  # noqa: F401  (HEIC is written through the plugin)

    from features.imaging import _register_heif_opener

    _register_heif_opener()
    image = decode_image(oriented(fmt), name=f"x{suffix}")
    assert image.shape == (64, 48, 3)  # turned as the EXIF orientation says
    red = image[..., 0].astype(int) - image[..., 1]
    assert red[:8, -8:].mean() > 150 and red[-8:, :8].mean() < 50  # corner now top-right
    assert suffix in IMAGE_SUFFIXES and suffix.upper() not in IMAGE_SUFFIXES


def test_a_folder_of_every_kind_indexes_and_loses_nothing(tmp_path, settings, big_jpegs):
    root = tmp_path / "photos"
    (root / "phone").mkdir(parents=True)
    (root / "phone" / "IMG_0001.HEIC").write_bytes(oriented("HEIF"))
    (root / "phone" / "IMG_0002.avif").write_bytes(oriented("AVIF"))
    for name, path in big_jpegs.items():
        os.link(path, root / "phone" / name)
    (root / "phone" / os.fsdecode(b"caf\xe9.png")).write_bytes(encode(Image.new("RGB", (9, 9))))
    (root / "phone" / "notes.txt").write_text("not a photo")
    (root / "phone" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    (root / ".DS_Store").write_bytes(b"\0")
    (root / "phone" / "bomb.png").write_bytes(bomb_png())
    seen = sum(len(files) for _, _, files in os.walk(root))

    result = summarize_dataset(settings, "folder", str(root))
    reasons = {s.path: s.reason for s in result.dataset.skipped.items}
    assert result.summary.total == 5  # HEIC, AVIF, both big JPEGs, the Latin-1 name
    assert set(reasons) == {"phone/notes.txt", "phone/broken.jpg", ".DS_Store", "phone/bomb.png"}
    assert result.summary.total + result.summary.skipped == seen == 9
    assert "  files seen: 9 = 5 images + 4 skipped" in result.summary.lines()
    assert json.loads(result.report_path.read_text())["count"] == 4

    ds = FolderDataset(root)
    model = ColourMomentsExtractor().fit([ds.image(r) for r in ds.records()[:2]])
    report = index_dataset(
        settings,
        dataset="folder",
        data=str(root),
        models={"bovw": model.save(tmp_path / "model")},
        ray=None,
        show_progress=False,
    )
    assert report.documents == 5 and len(report.skipped) == 4


def test_images_outside_train_and_test_are_reported(tmp_path):
    root = tmp_path / "d"
    for part in ("train/cats", "test/cats", "extras"):
        (root / part).mkdir(parents=True)
        (root / part / "a.png").write_bytes(encode(Image.new("RGB", (4, 4))))
    ds = FolderDataset(root)
    assert len(ds.records()) == 2
    assert [(s.path, "outside train/" in s.reason) for s in ds.skipped.items] == [
        ("extras/a.png", True)
    ]


@pytest.mark.parametrize(("fmt", "filename"), [("HEIF", "IMG_0001.HEIC"), ("AVIF", "x.avif")])
def test_heic_and_avif_uploads_search(client, fmt, filename):
    data = {"image": (io.BytesIO(oriented(fmt)), filename), "method": "bovw", "k": "5"}
    response = client.post("/api/search", data=data, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    assert len(response.get_json()["results"]) == 5


def test_defaults_by_size_keep_the_cifar_recipe_and_shrink_for_small_folders():
    from features.bovw_config import BovwConfig
    from features.bovw_defaults import sized_defaults

    for n in (10_000, 50_000, 500_000):  # CIFAR-10's 50,000 train images get its recipe
        sized = sized_defaults(n)
        assert BovwConfig(**sized.params) == BovwConfig() and sized.images == 10_000
    small = sized_defaults(60)
    assert small.chosen == {
        "images": 60,
        "vocabulary_size": 64,
        "vocabulary_images": 60,
        "pca_dim": 0,
    }
    assert BovwConfig(**small.params).dim <= 4096
    mid = sized_defaults(1_156)  # the folder of the issue: no PCA, raw vectors fit 4,096
    assert mid.chosen["pca_dim"] == 0 and BovwConfig(**mid.params).raw_dim <= 4096
    given = sized_defaults(60, {"vocabulary_size": 32, "pca_dim": 16}, images=40)
    assert given.params["vocabulary_size"] == 32 and given.params["pca_dim"] == 16
    assert given.images == 40 and set(given.chosen) == {"vocabulary_images"}


@pytest.mark.slow
def test_train_bovw_on_60_images_with_defaults(cli, tmp_path, home):
    from benchmarks.synthetic import write_labelled_folder

    root = write_labelled_folder(tmp_path / "data", train=20, test=1)  # 3 labels x 20 train
    code, out, err = cli("train", "bovw", "--dataset", "folder", "--data", root)
    assert code == 0, err
    assert "defaults for 60 train images: --images 60, --vocabulary-size 64" in out
    training = json.loads((home / "models" / "bovw" / "training.json").read_text())
    assert training["defaults_by_size"]["pca_dim"] == 0
    manifest = json.loads((home / "models" / "bovw" / "extractor.json").read_text())
    assert manifest["params"]["vocabulary_size"] == 64 and manifest["params"]["pca_dim"] == 0
    assert "train bovw: 60 images in" in out
