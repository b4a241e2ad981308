"""Flask application factory: the search page and the JSON API (thin: parse, call, render).

`create_app(config)` builds the app; `serve(app, ...)` runs it under waitress (what
`cbir serve` calls). The SearchService (store, models, dataset) is opened once per process,
on first use, through a ServiceHolder that retries while there is no index yet.
"""

from __future__ import annotations

import base64
import io
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    current_app,
    jsonify,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import BadRequest, HTTPException, NotFound, ServiceUnavailable
from werkzeug.utils import secure_filename

from cbir import __version__
from cbir.core.config import Settings
from cbir.core.errors import CbirError, ConfigError, DatasetError
from evaluation.latest_summary import headline, latest_summary
from evaluation.query_quality import query_quality
from features.base import ModelError
from features.imaging import ImageDecodeError, decode_image
from indexing.gallery import SampleIds, describe, image_bytes
from indexing.methods import FUSION
from indexing.search import IndexMissingError, SearchService, UnknownDocumentError
from indexing.service_holder import ServiceHolder
from indexing.stores.base import StoreError
from indexing.thumbnails import ThumbnailCache
from indexing.why_words import words_field, words_methods

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "CBIR_MAX_UPLOAD_MB": 10,  # also the environment variable of that name
    "CBIR_K_CHOICES": (10, 25, 50, 100),  # what the page offers; the API takes 1..max
    "CBIR_DEFAULT_K": 10,
    "CBIR_INDEX_RETRY_SECONDS": 1.0,  # how often a missing or changed index is looked for again
    "CBIR_THUMBNAIL_SIDE": 512,  # images are served at most this many pixels wide or high
    "CBIR_GRID_SIZE": 256,  # the thumbnail size the page's grids ask for (?size=)
    "CBIR_SAMPLE_SIZE": 24,  # images on the start page
    "CBIR_SAMPLE_IDS_SECONDS": 60.0,  # how long the list of indexed ids is reused for samples
}
METHOD_NAMES = {
    "bovw": "BoVW",
    "cnn": "CNN",
    FUSION: "Fusion",
    "bovw+qe": "BoVW + query expansion",
    "cnn+qe": "CNN + query expansion",
    "bovw+gv": "BoVW + geometric verification",
    "cnn+gv": "CNN + geometric verification",
    f"{FUSION}+gv": "Fusion + geometric verification",
    "bovw+qe+gv": "BoVW + query expansion + geometric verification",
    "cnn+qe+gv": "CNN + query expansion + geometric verification",
}
SCORE_NAMES = {
    "cosine": "cosine",
    "rrf": "RRF score",
    "weighted": "fused score",
    "inliers": "inliers",
}
MEGABYTE = 1024 * 1024


class InMemoryUploadRequest(Request):
    """Keeps uploaded files in memory (bounded by MAX_CONTENT_LENGTH), never in a file on disk."""

    def _get_file_stream(
        self, total_content_length, content_type, filename=None, content_length=None
    ):
        return io.BytesIO()


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; `config` overrides Flask and CBIR_* settings.

    `CBIR_SETTINGS` (a cbir.core.config.Settings) says where the index is; without it the
    settings come from the environment, with `CBIR_HOME` / `CBIR_STORE` / `CBIR_CIFAR10` /
    `CBIR_MAX_PIXELS` in `config` on top. See DEFAULTS for the other keys.
    """
    app = Flask(__name__)
    app.request_class = InMemoryUploadRequest
    app.config.update(DEFAULTS)
    app.config["CBIR_MAX_UPLOAD_MB"] = (
        os.environ.get("CBIR_MAX_UPLOAD_MB") or DEFAULTS["CBIR_MAX_UPLOAD_MB"]
    )
    app.config.update(config or {})
    settings = app.config.get("CBIR_SETTINGS") or Settings.resolve(
        home=app.config.get("CBIR_HOME"),
        store=app.config.get("CBIR_STORE"),
        cifar10=app.config.get("CBIR_CIFAR10"),
        max_pixels=app.config.get("CBIR_MAX_PIXELS"),
    )
    app.config["CBIR_SETTINGS"] = settings
    app.config["CBIR_MAX_UPLOAD_MB"] = upload_limit_mb(app.config["CBIR_MAX_UPLOAD_MB"])
    app.config.setdefault("MAX_CONTENT_LENGTH", None)
    if app.config["MAX_CONTENT_LENGTH"] is None:
        app.config["MAX_CONTENT_LENGTH"] = int(app.config["CBIR_MAX_UPLOAD_MB"] * MEGABYTE)
    app.extensions["cbir"] = ServiceHolder(
        lambda: SearchService.open_tuned(settings),
        retry_seconds=float(app.config["CBIR_INDEX_RETRY_SECONDS"]),
    )
    app.extensions["cbir_thumbnails"] = ThumbnailCache(
        settings.cache_dir / "thumbnails", settings.max_pixels
    )
    app.extensions["cbir_sample_ids"] = SampleIds()
    app.register_blueprint(page)
    app.register_blueprint(api)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(CbirError, cbir_error)
    app.register_error_handler(Exception, internal_error)
    return app


def upload_limit_mb(value: object) -> float:
    try:
        limit = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"CBIR_MAX_UPLOAD_MB={value!r} is not a number of megabytes") from None
    if not limit > 0:
        raise ConfigError(f"CBIR_MAX_UPLOAD_MB must be positive, got {value!r}")
    return limit


def holder() -> ServiceHolder:
    return current_app.extensions["cbir"]


def open_service() -> SearchService:
    """The process's SearchService; 503 with the reason (e.g. which command builds the index)."""
    try:
        return holder().get()
    except CbirError as exc:
        raise ServiceUnavailable(str(exc)) from None


def settings() -> Settings:
    return current_app.config["CBIR_SETTINGS"]


# ---- the page ---------------------------------------------------------------------------

page = Blueprint("page", __name__)


@page.get("/")
def index() -> str:
    service = holder().peek()
    stats = service.stats() if service is not None else None
    summary = latest_summary(settings().runs_dir)
    return render_template(
        "index.html",
        stats=stats,
        index_error=None if service is not None else str(holder().error),
        index_missing=isinstance(holder().error, IndexMissingError),
        summary=headline(summary) if summary else None,
        method_names=METHOD_NAMES,
        client=client_config(service),
    )


@page.get("/duplicates")
def duplicates() -> str:
    """The groups of the last `cbir duplicates` report (its default place), keep suggested."""
    from datetime import UTC, datetime

    from cbir.stages.duplicates import default_report, read_report

    path = default_report(settings())
    error, report = None, None
    try:
        report = read_report(path)
    except CbirError as exc:
        error = str(exc)
    shown = 200
    for group in (report or {}).get("groups", [])[:shown]:
        for member in group.get("members", []):
            modified = member.get("modified")
            member["modified_text"] = (
                datetime.fromtimestamp(modified, UTC).strftime("%Y-%m-%d %H:%M UTC")
                if isinstance(modified, (int, float))
                else None
            )
    return render_template(
        "duplicates.html",
        report=report,
        path=path,
        error=error,
        shown=shown,
        grid_size=current_app.config["CBIR_GRID_SIZE"],
        written=(
            datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")
            if report is not None
            else None
        ),
    )


def client_config(service: SearchService | None) -> dict[str, Any]:
    """What the page's script needs to know (rendered into the page as JSON)."""
    methods = service.methods if service is not None else []
    base = service.base_methods if service is not None else []
    preferred = [m for m in ("bovw", "cnn") if m in base]
    pair = preferred if len(preferred) == 2 else base[:2]
    return {
        "ready": service is not None,
        "methods": [{"value": m, "name": METHOD_NAMES.get(m, m)} for m in methods],
        "defaultMethod": default_method(methods),
        "side": pair if len(pair) == 2 else None,
        "kChoices": list(current_app.config["CBIR_K_CHOICES"]),
        "defaultK": current_app.config["CBIR_DEFAULT_K"],
        "maxUploadBytes": current_app.config["MAX_CONTENT_LENGTH"],
        "maxUploadMb": current_app.config["CBIR_MAX_UPLOAD_MB"],
        "scoreNames": SCORE_NAMES,
        "searchUrl": url_for("api.search"),
        "sampleUrl": url_for("api.sample"),
        "whyUrl": url_for("api.why"),
        # the methods whose hits "why it matched" explains with shared visual words
        "wordsMethods": words_methods(methods, words_field(service.models) if service else None),
        "sampleSize": current_app.config["CBIR_SAMPLE_SIZE"],
    }


def default_method(methods: list[str]) -> str | None:
    for choice in ("cnn", FUSION):
        if choice in methods:
            return choice
    return methods[0] if methods else None


# ---- the JSON API -----------------------------------------------------------------------

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


# ---- errors: JSON under /api/, a page elsewhere; never a traceback ------------------------


def wants_json() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def error_response(status: int, message: str, title: str) -> tuple[Any, int]:
    if wants_json():
        return jsonify(error=message, status=status), status
    return render_template("error.html", status=status, title=title, message=message), status


def http_error(exc: HTTPException) -> tuple[Any, int]:
    status = exc.code or 500
    if status == 413:
        limit = current_app.config["CBIR_MAX_UPLOAD_MB"]
        message = f"the upload is larger than the limit of {limit:g} MB (CBIR_MAX_UPLOAD_MB)"
    elif status == 404 and exc.description == NotFound.description:
        message = "nothing here: no such page or API route"
    elif status == 405:
        allowed = ", ".join(sorted(m for m in (exc.valid_methods or []) if m != "OPTIONS"))
        message = f"{request.method} is not allowed here" + (f"; use {allowed}" if allowed else "")
    else:
        message = exc.description or exc.name
    return error_response(status, message, exc.name)


def cbir_error(exc: CbirError) -> tuple[Any, int]:
    if isinstance(exc, UnknownDocumentError):
        return error_response(404, str(exc), "Not found")
    if isinstance(exc, (IndexMissingError, StoreError, ModelError, DatasetError)):
        return error_response(503, str(exc), "Index not available")
    return error_response(400, str(exc), "Bad request")


def internal_error(exc: Exception) -> tuple[Any, int]:
    log.exception("internal error on %s %s", request.method, request.path)
    return error_response(
        500, "internal error: the server could not answer; its log has the details", "Server error"
    )


# ---- running it -------------------------------------------------------------------------


def serve(
    app: Flask,
    host: str = "127.0.0.1",
    port: int = 5000,
    threads: int = 8,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve `app` under waitress until interrupted; `announce` gets the URL once listening.

    Port 0 picks a free port. Request bodies up to twice the upload limit are buffered in
    memory (larger ones are refused by waitress before they are read), so uploads never
    touch the disk: the memory bound is that size times the open connections.
    """
    from waitress import create_server

    body_limit = 2 * int(app.config["MAX_CONTENT_LENGTH"])
    try:
        server = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="cbir",
            max_request_body_size=body_limit,
            inbuf_overflow=body_limit,
        )
    except OSError as exc:
        raise CbirError(
            f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port or --host"
        ) from None
    shown = f"[{host}]" if ":" in host else host
    announce(f"http://{shown}:{server.effective_port}/")
    server.run()
