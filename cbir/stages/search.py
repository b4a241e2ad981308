"""`cbir search`: one query (an image file or an indexed/dataset doc id) against the index."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cbir.core.config import Settings
from cbir.core.errors import CbirError
from evaluation.query_quality import query_quality
from features.imaging import decode_image
from indexing.search import SearchResult, SearchService


@dataclass(frozen=True)
class SearchAnswer:
    result: SearchResult
    quality: dict | None  # P@k and AP@k / min(R, k) when the query has a label


def search(
    settings: Settings,
    *,
    image: str | Path | None = None,
    doc_id: str | None = None,
    method: str = "cnn",
    k: int = 10,
) -> SearchAnswer:
    """Search with `image` (a file, decoded here) or `doc_id`, with the tuned fusion/expansion."""
    if (image is None) == (doc_id is None):
        raise CbirError("give an image file or --id DOC_ID (one of them)")
    service = SearchService.open_tuned(settings)
    try:
        if image is not None:
            pixels = decode_image(image, max_pixels=settings.max_pixels)
            result = service.search_image(pixels, method, k)
        else:
            result = service.search_id(doc_id, method, k)
        return SearchAnswer(result, query_quality(result, service.label_counts))
    finally:
        service.close()
