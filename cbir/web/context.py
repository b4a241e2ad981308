"""What both web blueprints share: the process's search service, its settings, the default method."""

from __future__ import annotations

from flask import current_app
from werkzeug.exceptions import ServiceUnavailable

from cbir.core.config import Settings
from cbir.core.errors import CbirError
from indexing.methods import FUSION
from indexing.search import SearchService
from indexing.service_holder import ServiceHolder


def holder() -> ServiceHolder:
    """The app's ServiceHolder (peek at the service without opening it, or read its error)."""
    return current_app.extensions["cbir"]


def open_service() -> SearchService:
    """The process's SearchService; 503 with the reason (e.g. which command builds the index)."""
    try:
        return holder().get()
    except CbirError as exc:
        raise ServiceUnavailable(str(exc)) from None


def settings() -> Settings:
    """The app's Settings (where the index, runs and cache are)."""
    return current_app.config["CBIR_SETTINGS"]


def default_method(methods: list[str]) -> str | None:
    """The method a search uses when none is given: cnn, else fusion, else the first."""
    for choice in ("cnn", FUSION):
        if choice in methods:
            return choice
    return methods[0] if methods else None
