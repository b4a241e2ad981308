"""Flask application factory: the search page and the JSON API (thin: parse, call, render)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, jsonify

from cbir import __version__


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; `config` overrides settings (tests pass a temporary CBIR_HOME)."""
    app = Flask(__name__)
    if config:
        app.config.update(config)

    @app.get("/api/health")
    def health():
        return jsonify(status="ok", version=__version__)

    return app
