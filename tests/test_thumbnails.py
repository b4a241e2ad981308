"""Thumbnails: made once per image and size, cached by content hash, oriented, bounded; originals on request."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import indexing.thumbnails
from cbir.core.config import Settings


@pytest.fixture
def photos(tmp_path, monkeypatch):
    """A folder indexed with a toy model, holding a 600x300 JPEG whose EXIF says 'rotate 90'."""
    from tests.sync_folder import fit_model, sync, write_folder

    folder = write_folder(tmp_path / "photos", 6)
    pixels = np.zeros((300, 600, 3), np.uint8)
    pixels[:, :300] = (255, 0, 0)  # left half red, right half blue (as stored)
    pixels[:, 300:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    (folder / "dogs" / "rotated.jpg").write_bytes(_jpeg(pixels, exif))
    settings = Settings.resolve(env={}, home=tmp_path / "home")
    sync(settings, folder, fit_model(folder, tmp_path / "model"))
    return settings, folder


def _jpeg(pixels, exif) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95, exif=exif)
    return buffer.getvalue()


@pytest.fixture
def photo_client(photos):
    from app import create_app

    settings, _ = photos
    app = create_app({"TESTING": True, "CBIR_SETTINGS": settings, "CBIR_INDEX_RETRY_SECONDS": 0})
    return app.test_client()


def test_a_thumbnail_is_made_once_and_then_served_from_the_disk_cache(
    photo_client, photos, monkeypatch
):
    settings, _ = photos
    decodes = []
    real = indexing.thumbnails.decode_image
    monkeypatch.setattr(
        indexing.thumbnails, "decode_image", lambda *a, **k: decodes.append(1) or real(*a, **k)
    )
    first = photo_client.get("/api/images/dogs/rotated.jpg?size=128")
    assert first.status_code == 200 and first.mimetype == "image/jpeg"
    cached = list((settings.cache_dir / "thumbnails" / "128").rglob("*.jpg"))
    assert len(cached) == 1 and len(decodes) == 1
    mtime = cached[0].stat().st_mtime_ns
    second = photo_client.get("/api/images/dogs/rotated.jpg?size=128")
    assert second.data == first.data and len(decodes) == 1
    assert cached[0].stat().st_mtime_ns == mtime
    photo_client.get("/api/images/dogs/rotated.jpg?size=256")  # another size: another file
    assert len(decodes) == 2


def test_the_thumbnail_is_bounded_and_upright(photo_client):
    response = photo_client.get("/api/images/dogs/rotated.jpg?size=256")
    image = Image.open(io.BytesIO(response.data))
    assert image.size == (128, 256)  # 600x300 stored, 300x600 displayed, long side 256
    pixels = np.asarray(image.convert("RGB")).astype(int)
    top, bottom = pixels[20, 64], pixels[-20, 64]
    assert top[0] > 200 and top[2] < 60  # rotated clockwise: the red left half is on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_the_key_is_the_content_so_an_edited_photo_gets_a_new_thumbnail(photo_client, photos):
    settings, folder = photos
    before = photo_client.get("/api/images/dogs/00000.png?size=128").data
    (folder / "dogs" / "00000.png").write_bytes(
        _jpeg(np.full((40, 40, 3), 250, np.uint8), Image.Exif())
    )
    after = photo_client.get("/api/images/dogs/00000.png?size=128").data
    assert after != before
    assert len(list((settings.cache_dir / "thumbnails" / "128").rglob("*.jpg"))) == 2


def test_the_original_is_served_on_request(photo_client, photos):
    _, folder = photos
    response = photo_client.get("/api/images/dogs/rotated.jpg?size=original")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert response.data == (folder / "dogs" / "rotated.jpg").read_bytes()


def test_a_size_outside_the_list_is_refused_with_the_choices(photo_client):
    response = photo_client.get("/api/images/dogs/rotated.jpg?size=4000")
    assert response.status_code == 400
    assert "128, 256, 512, 1024 or 'original'" in response.json["error"]


def test_results_and_samples_carry_thumbnails_and_file_facts(photo_client):
    body = photo_client.get("/api/sample?n=50&seed=1").json
    assert body["documents"] == 7 and len(body["images"]) == 7
    rotated = next(i for i in body["images"] if i["id"] == "dogs/rotated.jpg")
    assert rotated["thumbnail_url"] == "/api/images/dogs/rotated.jpg?size=256"
    assert (rotated["name"], rotated["folder"]) == ("rotated.jpg", "dogs")
    assert (rotated["width"], rotated["height"]) == (300, 600) and rotated["bytes"] > 0
    again = photo_client.get("/api/sample?n=50&seed=1").json
    assert [i["id"] for i in again["images"]] == [i["id"] for i in body["images"]]
    hits = photo_client.post("/api/search", json={"id": "dogs/rotated.jpg", "k": 3}).json
    assert all(h["thumbnail_url"].endswith("?size=256") and h["name"] for h in hits["results"])
    assert photo_client.get("/api/sample?n=0").status_code == 400


def test_files_synced_after_the_server_opened_are_served(photo_client, photos):
    from tests.sync_folder import fit_model, picture, sync

    settings, folder = photos
    assert photo_client.get("/api/sample?n=1").status_code == 200  # the service is open
    (folder / "cats" / "new.png").write_bytes(picture(777))
    sync(settings, folder, fit_model(folder, folder.parent / "model"))
    response = photo_client.get("/api/images/cats/new.png?size=128")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert photo_client.get("/api/images/cats/../../secret?size=128").status_code == 404
