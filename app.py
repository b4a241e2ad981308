"""Flask application factory: the search page, error pages and `serve` (thin: parse, call, render).

`create_app(config)` builds the app; `serve(app, ...)` runs it under waitress (what
`cbir serve` calls). The SearchService (store, models, dataset) is opened once per process,
on first use, through a ServiceHolder that retries while there is no index yet. The JSON API
blueprint lives in cbir/web/api.py, the helpers both blueprints share in cbir/web/context.py.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Request,
    current_app,
    jsonify,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import HTTPException, NotFound

from cbir.core.config import Settings
from cbir.core.errors import CbirError, ConfigError, DatasetError
from cbir.web.api import api
from cbir.web.context import default_method, holder, settings
from evaluation.latest_summary import headline, latest_summary
from features.base import ModelError
from indexing.gallery import SampleIds
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


# ---- the JSON API: cbir/web/api.py ---------------------------------------------------------

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
