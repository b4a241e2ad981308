"""What the start page and result grids show: random samples of the index, facts per image."""

from __future__ import annotations

import random
import time
from typing import Any

from cbir.core.errors import CbirError
from features.imaging import ImageDecodeError
from indexing.search import SearchService
from indexing.thumbnails import SIZES, ThumbnailCache, original_mimetype


class SampleIds:
    """The indexed doc ids, listed from the store at most once per `max_age` seconds."""

    def __init__(self, max_age: float = 60.0) -> None:
        self.max_age = max_age
        self.ids: list[str] = []
        self._listed_at = float("-inf")
        self._store: object = None

    def current(self, service: SearchService) -> list[str]:
        now = time.monotonic()
        if service.store is not self._store or now - self._listed_at > self.max_age:
            field = service.base_methods[0] if service.base_methods else None
            self.ids = sorted(service.store.ids_with(field)) if field else []
            self._listed_at, self._store = now, service.store
        return self.ids

    def draw(
        self, service: SearchService, n: int, seed: str | None
    ) -> list[tuple[str, str | None]]:
        """`n` random (doc id, label) pairs; the same `seed` draws the same ones."""
        ids = self.current(service)
        chosen = random.Random(seed).sample(ids, min(n, len(ids)))
        stored = service.store.get(chosen)
        return [(d, stored[d].label) for d in chosen if d in stored]  # skip ids deleted since


def describe(cache: ThumbnailCache, service: SearchService, doc_id: str) -> dict[str, Any]:
    """File name, folder, pixel and byte size of a known image (None where unreadable)."""
    try:
        facts = cache.facts(service.dataset, service.record(doc_id))
    except (CbirError, ImageDecodeError, OSError):
        name = doc_id.rsplit("/", 1)[-1]
        return {"name": name, "folder": None, "width": None, "height": None, "bytes": None}
    return facts.to_json()


def image_bytes(
    cache: ThumbnailCache, service: SearchService, doc_id: str, size: str | None, png_side: int
) -> tuple[bytes, str]:
    """(body, MIME type) of a known image: `size` N a cached JPEG thumbnail (N in SIZES),
    "original" the file's own bytes, None a PNG at most `png_side` wide or high.
    ValueError for another size; ImageDecodeError when the image cannot be read."""
    if size is None:
        return service.image_png(doc_id, max_side=png_side), "image/png"
    if size == "original":
        payload = service.dataset.payload(service.record(doc_id))
        if isinstance(payload, bytes):
            return payload, original_mimetype(payload)
        return service.image_png(doc_id, max_side=None), "image/png"  # a decoded array
    if not size.isdigit() or int(size) not in SIZES:
        choices = ", ".join(str(s) for s in SIZES)
        raise ValueError(f"size must be one of {choices} or 'original', got {size!r}")
    path = cache.thumbnail(service.dataset, service.record(doc_id), int(size))
    return path.read_bytes(), "image/jpeg"
