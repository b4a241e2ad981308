"""The JSON API blueprint (`/api`): health, stats, search, why, images, sample (thin: parse, call, render)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from werkzeug.exceptions import BadRequest, NotFound
from werkzeug.utils import secure_filename

from cbir import __version__
from cbir.web.context import default_method, holder, open_service, settings
from evaluation.latest_summary import latest_summary
from evaluation.query_quality import query_quality
from features.imaging import ImageDecodeError, decode_image
from indexing.gallery import describe, image_bytes
from indexing.search import IndexMissingError, SearchService
from indexing.thumbnails import ThumbnailCache

api = Blueprint("api", __name__, url_prefix="/api")


@api.get("/health")
def health() -> Response:
    service = holder().peek()
    body: dict[str, Any] = {"status": "ok", "version": __version__}
    if service is not None:
        body["index"] = "ready"
    else:
        error = holder().error
        body["index"] = "missing" if isinstance(error, IndexMissingError) else "unavailable"
        body["message"] = str(error)
    return jsonify(body)


@api.get("/stats")
def stats() -> Response:
    service = open_service()
    return jsonify({**service.stats(), "evaluation": latest_summary(settings().runs_dir)})


@api.post("/search")
def search() -> Response:
    service = open_service()
    fields, upload = search_fields()
    method = parse_method(fields.get("method"), service)
    k = parse_k(fields.get("k"))
    doc_id = fields.get("id")
    if doc_id is not None and not isinstance(doc_id, str):
        raise BadRequest('`id` must be a string, e.g. "test/cat/0042"')
    if (upload is None) == (not doc_id):
        raise BadRequest(
            "send one query: an image file in the multipart field `image`, "
            "or the `id` of a known image (JSON or form field)"
        )
    if upload is not None:
        name = f"upload {secure_filename(upload.filename or '') or 'image'}"
        image = decode_image(upload.read(), name=name, max_pixels=settings().max_pixels)
        result = service.search_image(image, method, k)
    else:
        result = service.search_id(doc_id, method, k)
    return jsonify(result_json(service, result))


def search_fields() -> tuple[Mapping[str, Any], Any]:
    """The request's fields and uploaded file: a JSON object, or a multipart/urlencoded form."""
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadRequest(
                'the JSON body must be an object, e.g. {"id": "test/cat/0042", "method": "cnn", "k": 10}'
            )
        return body, None
    return request.form, request.files.get("image")


def parse_method(value: object, service: SearchService) -> str:
    if value in (None, ""):
        return default_method(service.methods)
    if value not in service.methods:
        raise BadRequest(f"unknown method {value!r}; this index has: {', '.join(service.methods)}")
    return value


def parse_k(value: object) -> int:
    """k from a form string or a JSON number: an integer from 1 to the largest page choice."""
    largest = max(current_app.config["CBIR_K_CHOICES"])
    if value in (None, ""):
        return int(current_app.config["CBIR_DEFAULT_K"])
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise BadRequest(f"k must be an integer from 1 to {largest}, got {value!r}")
    try:
        k = int(value)
    except ValueError:
        raise BadRequest(f"k must be an integer from 1 to {largest}, got {value!r}") from None
    if not 1 <= k <= largest:
        raise BadRequest(f"k must be from 1 to {largest}, got {k}")
    return k


def result_json(service: SearchService, result) -> dict[str, Any]:
    query = result.query
    quality = query_quality(result, service.label_counts)
    return {
        "method": result.method,
        "k": result.k,
        "took_ms": round(result.took_ms, 3),
        "score_kind": service.score_kind(result.method),
        "query": {
            "id": query.doc_id,
            "label": query.label,
            "indexed": query.indexed,
            "image_url": image_url(query.doc_id) if query.doc_id else None,
            "thumbnail_url": thumbnail_url(query.doc_id) if query.doc_id else None,
            **(image_facts(service, query.doc_id) if query.doc_id else {}),
        },
        "quality": None if quality is None else {**quality, "k": result.k},
        "results": [
            {
                "rank": rank,
                "id": hit.doc_id,
                "score": hit.score,
                "label": hit.label,
                "same_label": None if query.label is None else hit.label == query.label,
                "image_url": image_url(hit.doc_id),
                "thumbnail_url": thumbnail_url(hit.doc_id),
                **image_facts(service, hit.doc_id),
                "verification": (
                    result.verifications[hit.doc_id].to_json()
                    if result.verifications and hit.doc_id in result.verifications
                    else None
                ),
            }
            for rank, hit in enumerate(result.hits, start=1)
        ],
    }


@api.get("/why")
def why() -> Response:
    """Why `result` matched `query` (doc ids): SVG, or JSON with ?format=json, of `kind=inliers`
    (default: the verified inlier lines) or `kind=words` (the shared visual words' keypoints).

    The SVG links the two images by URL; with `?embed=1` it carries them (512-px JPEG
    thumbnails as data: URLs), so it also shows in an <img> (which loads nothing an SVG links)."""
    from indexing.match_figure import WORDS_DRAWN, match_svg, words_svg
    from indexing.why_words import UnreadableImageError, explain_words

    query_id, result_id = request.args.get("query"), request.args.get("result")
    if not query_id or not result_id:
        raise BadRequest("give the doc ids of both images: /api/why?query=ID&result=ID")
    kind, embed = request.args.get("kind", "inliers"), request.args.get("embed", "0")
    if kind not in ("inliers", "words"):
        raise BadRequest(f"kind must be inliers (verified matches) or words, got {kind!r}")
    if embed not in ("0", "1"):
        raise BadRequest(f"embed must be 0 or 1, got {embed!r}")
    service = open_service()
    as_json = request.args.get("format") == "json"
    href = (lambda d: embedded_image(service, d)) if embed == "1" else image_url
    if kind == "words":
        try:
            words = explain_words(service, query_id, result_id)
        except UnreadableImageError as exc:
            raise NotFound(str(exc)) from None
        if as_json:
            drawn = min(len(words.match.words), WORDS_DRAWN)
            return jsonify(
                {"query": query_id, "result": result_id, "kind": kind, **words.to_json()}
                | {"drawn_words": drawn}
            )
        hrefs = href(query_id), href(result_id)
        svg = words_svg(words.match, words.query_shape, words.result_shape, *hrefs)
        return Response(svg, mimetype="image/svg+xml")
    check, view, stored = service.explain(query_id, result_id)
    if as_json:
        return jsonify({"query": query_id, "result": result_id, "kind": kind, **check.to_json()})
    svg = match_svg(check, view, stored, href(query_id), href(result_id))
    return Response(svg, mimetype="image/svg+xml")


def embedded_image(service: SearchService, doc_id: str) -> str:
    """A data: URL of the 512-px JPEG thumbnail of `doc_id`."""
    try:
        body, mimetype = image_bytes(thumbnails(), service, doc_id, "512", png_side=512)
    except ImageDecodeError as exc:
        raise NotFound(f"the image of {doc_id!r} cannot be read ({exc.reason})") from None
    return f"data:{mimetype};base64,{base64.b64encode(body).decode('ascii')}"


def image_url(doc_id: str) -> str:
    return url_for("api.image", doc_id=doc_id)


def thumbnail_url(doc_id: str) -> str:
    return url_for("api.image", doc_id=doc_id, size=current_app.config["CBIR_GRID_SIZE"])


def thumbnails() -> ThumbnailCache:
    return current_app.extensions["cbir_thumbnails"]


def image_facts(service: SearchService, doc_id: str) -> dict[str, Any]:
    return describe(thumbnails(), service, doc_id)


@api.get("/images/<path:doc_id>")
def image(doc_id: str) -> Response:
    """A known image by doc id (never a path we join): `?size=N` a cached JPEG thumbnail whose
    long side is at most N (one of SIZES), `?size=original` the file as it is, no size the
    image as PNG at most CBIR_THUMBNAIL_SIDE wide or high."""
    service = open_service()
    try:
        body, mimetype = image_bytes(
            thumbnails(),
            service,
            doc_id,
            request.args.get("size"),
            png_side=current_app.config["CBIR_THUMBNAIL_SIDE"],
        )
    except ImageDecodeError as exc:
        raise NotFound(f"the image of {doc_id!r} cannot be read ({exc.reason})") from None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    response = Response(body, mimetype=mimetype)
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.add_etag()
    return response.make_conditional(request)


@api.get("/sample")
def sample() -> Response:
    """`n` (default CBIR_SAMPLE_SIZE, at most 100) random indexed images; `seed` repeats a draw."""
    service = open_service()
    n = request.args.get("n", str(current_app.config["CBIR_SAMPLE_SIZE"]))
    if not n.isdigit() or not 1 <= int(n) <= 100:
        raise BadRequest(f"n must be an integer from 1 to 100, got {n!r}")
    ids = current_app.extensions["cbir_sample_ids"]
    ids.max_age = float(current_app.config["CBIR_SAMPLE_IDS_SECONDS"])
    drawn = ids.draw(service, int(n), request.args.get("seed"))
    images = [
        {
            "id": doc_id,
            "label": label,
            "image_url": image_url(doc_id),
            "thumbnail_url": thumbnail_url(doc_id),
            **image_facts(service, doc_id),
        }
        for doc_id, label in drawn
    ]
    return jsonify({"documents": len(ids.ids), "images": images})
