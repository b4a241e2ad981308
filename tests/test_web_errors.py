"""Bad input and safety of the web layer: every error is a message, never a traceback."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app import create_app
from benchmarks.synthetic import bomb_png, encode, truncated_jpeg
from cbir.core.config import Settings
from indexing.search import SearchService
from tests.test_web_api import green_png, upload


def test_the_upload_limit_defaults_to_10_mb_and_answers_413_with_a_message(client, app):
    assert app.config["MAX_CONTENT_LENGTH"] == 10 * 1024 * 1024
    response = upload(client, b"\0" * (10 * 1024 * 1024 + 1), name="big.png")
    assert response.status_code == 413
    assert (
        response.json["error"]
        == "the upload is larger than the limit of 10 MB (CBIR_MAX_UPLOAD_MB)"
    )


def test_the_upload_limit_is_configurable(web_index, home, monkeypatch):
    monkeypatch.setenv("CBIR_MAX_UPLOAD_MB", "0.5")
    settings = Settings.resolve(env={}, home=home, store=web_index.store)
    app = create_app({"TESTING": True, "CBIR_SETTINGS": settings})
    assert app.config["MAX_CONTENT_LENGTH"] == 512 * 1024
    response = upload(app.test_client(), b"\0" * 600_000)
    assert response.status_code == 413 and "0.5 MB" in response.json["error"]
    with pytest.raises(Exception, match="CBIR_MAX_UPLOAD_MB"):
        create_app({"CBIR_SETTINGS": settings, "CBIR_MAX_UPLOAD_MB": "lots"})


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"just some text, not a picture", "not an image (format not recognised)"),
        (truncated_jpeg(), "corrupt or truncated image"),
        (bomb_png(), "decompression bomb refused"),
        (b"", "empty file (0 bytes)"),
    ],
    ids=["not-an-image", "corrupt", "bomb", "empty"],
)
def test_bad_uploads_are_400_naming_the_problem(client, data, problem):
    response = upload(client, data, name="query.png")
    assert response.status_code == 400
    assert response.json["error"].startswith("upload query.png: ")
    assert problem in response.json["error"]


def test_the_uploaded_file_name_is_never_used_as_a_path(client):
    response = upload(client, b"GIF89a broken", name="../../etc/passwd")
    assert response.status_code == 400
    assert response.json["error"].startswith("upload etc_passwd: ")


def test_uploads_are_decoded_in_memory_never_spooled_to_disk(client, monkeypatch):
    import tempfile

    import werkzeug.formparser

    def refuse(*args, **kwargs):
        raise AssertionError("an upload went to a temporary file")

    for module, name in [
        (werkzeug.formparser, "SpooledTemporaryFile"),
        (werkzeug.formparser, "TemporaryFile"),
        (tempfile, "SpooledTemporaryFile"),
        (tempfile, "TemporaryFile"),
        (tempfile, "NamedTemporaryFile"),
        (tempfile, "mkstemp"),
    ]:
        monkeypatch.setattr(module, name, refuse, raising=False)
    noise = np.random.default_rng(3).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    big = encode(Image.fromarray(noise))
    assert len(big) > 1024 * 1024  # well past werkzeug's 500 kB spooling threshold
    response = upload(client, big, method="bovw", k=10)
    assert response.status_code == 200 and len(response.json["results"]) == 10


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"method": "sift"},
            "unknown method 'sift'; this index has: bovw, cnn, fusion, bovw+qe, cnn+qe",
        ),
        ({"k": "0"}, "k must be from 1 to 100, got 0"),
        ({"k": "101"}, "k must be from 1 to 100, got 101"),
        ({"k": "ten"}, "k must be an integer from 1 to 100, got 'ten'"),
    ],
)
def test_unknown_method_or_k_out_of_range_is_400(client, fields, message):
    response = upload(client, green_png(), **fields)
    assert response.status_code == 400 and response.json["error"] == message
    by_id = client.post("/api/search", json={"id": "test/red/000.png", **fields})
    assert by_id.status_code == 400 and by_id.json["error"] == message


@pytest.mark.parametrize("k", [True, 2.5, [10], None])
def test_k_must_be_a_json_integer(client, k):
    body = {"id": "test/red/000.png", "k": k}
    response = client.post("/api/search", json=body)
    if k is None:  # null means the default
        assert response.status_code == 200 and response.json["k"] == 10
    else:
        assert response.status_code == 400 and "k must be an integer" in response.json["error"]


def test_unknown_ids_are_404(client):
    response = client.post("/api/search", json={"id": "train/purple/000.png"})
    assert response.status_code == 404
    assert (
        response.json["error"]
        == "no image with id 'train/purple/000.png' in this index or its dataset"
    )
    assert client.get("/api/images/train/purple/000.png").status_code == 404


@pytest.mark.parametrize(
    "doc_id",
    [
        "../../etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "etc/passwd",
        "pyproject.toml",
        "data/train/red/000.png",
    ],
)
def test_images_are_looked_up_by_id_never_by_path(client, doc_id):
    response = client.get(f"/api/images/{doc_id}")
    assert response.status_code == 404 and response.is_json
    assert b"root:" not in response.data


def test_an_absolute_path_is_not_an_id(client, web_index):
    real_file = web_index.home.parent / "data" / "train" / "red" / "000.png"
    assert real_file.is_file()
    response = client.get(f"/api/images/{str(real_file).lstrip('/')}")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"json": ["test/red/000.png"]}, "the JSON body must be an object"),
        (
            {"data": "{not json", "content_type": "application/json"},
            "the JSON body must be an object",
        ),
        ({"json": {"id": 42}}, "`id` must be a string"),
        ({"json": {}}, "send one query"),
        ({"data": {"method": "cnn"}}, "send one query"),
    ],
)
def test_malformed_search_requests_are_400(client, kwargs, fragment):
    response = client.post("/api/search", **kwargs)
    assert response.status_code == 400 and fragment in response.json["error"]


def test_an_image_and_an_id_together_are_400(client):
    response = client.post(
        "/api/search",
        data={"image": (io.BytesIO(green_png()), "q.png"), "id": "test/red/000.png"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400 and "send one query" in response.json["error"]


def test_wrong_http_method_and_unknown_api_route_answer_json(client):
    response = client.get("/api/search")
    assert (
        response.status_code == 405
        and response.json["error"] == "GET is not allowed here; use POST"
    )
    missing = client.get("/api/nothing-here")
    assert (
        missing.status_code == 404
        and missing.json["error"] == "nothing here: no such page or API route"
    )


def test_unknown_pages_get_a_friendly_html_page(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert b"no such page" in response.data and b"Back to the search page" in response.data


def test_internal_errors_reach_clients_without_a_traceback(client, monkeypatch, caplog):
    def broken(self, *args, **kwargs):
        raise RuntimeError("secret detail: /srv/private/key")

    monkeypatch.setattr(SearchService, "search_id", broken)
    monkeypatch.setattr(SearchService, "stats", broken)
    response = client.post("/api/search", json={"id": "test/red/000.png"})
    assert response.status_code == 500
    assert response.json == {
        "error": "internal error: the server could not answer; its log has the details",
        "status": 500,
    }
    page = client.get("/")
    assert page.status_code == 500 and page.mimetype == "text/html"
    for body in (response.data, page.data):
        assert b"Traceback" not in body and b"secret" not in body and b"RuntimeError" not in body
    assert "secret detail" in caplog.text  # the details go to the server's log


def test_without_an_index_the_api_says_which_command_builds_it(home):
    app = create_app({"TESTING": True, "CBIR_SETTINGS": Settings.resolve(env={}, home=home)})
    client = app.test_client()
    health = client.get("/api/health").json
    assert health["index"] == "missing" and "cbir index" in health["message"]
    for response in (
        client.post("/api/search", json={"id": "test/red/000.png"}),
        upload(client, green_png()),
        client.get("/api/stats"),
        client.get("/api/images/train/red/000.png"),
    ):
        assert (
            response.status_code == 503 and "build one with `cbir index`" in response.json["error"]
        )
