"""The visual words a query and a result share, with the model that built the index's BoVW field.

What "why it matched" shows for a BoVW (or fusion) hit: both images are decoded as the index
decoded them for encoding (indexing/encoding.py `decoding_side`) and described by the very
extractor that encoded the field (features/bovw_words.py), so the score it reports is the
cosine of the vectors the index holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cbir.core.errors import CbirError
from features.base import Extractor
from features.bovw_words import WordMatch, keypoint_words, shared_words
from features.imaging import ImageDecodeError
from indexing.encoding import decoding_side
from indexing.methods import MethodName

if TYPE_CHECKING:
    from indexing.search import SearchService


class NoWordsError(CbirError):
    """The index has no field built by a bag-of-visual-words model."""


class UnreadableImageError(CbirError):
    """An image of the pair cannot be decoded."""


@dataclass(frozen=True)
class WordsExplanation:
    """The shared words of a pair, the field they come from, and the images' (height, width)."""

    field: str
    match: WordMatch
    query_shape: tuple[int, int]
    result_shape: tuple[int, int]
    vocabulary_size: int
    recipe: str

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.field,
            "recipe": self.recipe,
            "vocabulary_size": self.vocabulary_size,
            **self.match.to_json(),
        }


def words_field(models: Mapping[str, Extractor]) -> str | None:
    """The field whose model is a bag of visual words (`bovw` first); None when there is none."""
    from features.bovw import BovwExtractor

    fields = [m for m, model in models.items() if isinstance(model, BovwExtractor)]
    return "bovw" if "bovw" in fields else (fields[0] if fields else None)


def words_methods(methods: list[str], field: str | None) -> list[str]:
    """Those of `methods` whose ranking reads `field`: itself, +qe, +gv, and fusion."""
    if field is None:
        return []
    names = {m: MethodName.parse(m) for m in methods}
    return [m for m, name in names.items() if name.base == field or name.is_fusion]


def explain_words(service: SearchService, query_id: str, result_id: str) -> WordsExplanation:
    """The visual words the images `query_id` and `result_id` (doc ids) share.

    Raises NoWordsError when no field of the index is BoVW, UnknownDocumentError for an
    unknown id, UnreadableImageError when an image cannot be decoded.
    """
    field = words_field(service.models)
    if field is None:
        raise NoWordsError(
            f"this index has no bag-of-visual-words field (its fields: "
            f"{', '.join(service.models)}); shared visual words need one: index with a bovw "
            "model (`cbir train bovw`, then `cbir index --methods bovw`), or ask kind=inliers"
        )
    side = decoding_side(
        service.models.values(), service.local.options.max_side if service.local else None
    )
    images = []
    for doc_id in (query_id, result_id):
        record = service.record(doc_id)
        try:
            images.append(service.dataset.image(record, min_side=side))
        except ImageDecodeError as exc:
            raise UnreadableImageError(
                f"the image of {doc_id!r} cannot be read ({exc.reason}); its visual words "
                "cannot be drawn"
            ) from None
    with service.holding(field) as model:
        query, result = (keypoint_words(model, image) for image in images)
        match = shared_words(model, query, result)
    return WordsExplanation(
        field,
        match,
        images[0].shape[:2],
        images[1].shape[:2],
        model.config.vocabulary_size,
        model.config.recipe,
    )
