"""Which visual words two images share, by the BoVW extractor's own steps ("why it matched").

Each keypoint's word is its nearest vocabulary word, found as the encoder finds it
(`describe`, `unit_descriptors`, the same faiss search); the image's vector and soft word
histogram come from the encoder's own `word_cells`, `raw_vectors` and `project`, so the
numbers are those of the vector the index stores. Nothing here re-implements SIFT or the
quantisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from features.base import ModelError

if TYPE_CHECKING:
    from features.bovw import BovwExtractor


@dataclass(frozen=True)
class KeypointWords:
    """One image as BoVW sees it: keypoints with their nearest word, its histogram and vector.

    `positions` float32 (m, 2) are (x, y) fractions of the image's width and height, `words`
    int64 (m,) the nearest word of each; `mirrored_*` the same for the image flipped left-right
    (positions in the flipped image; empty when the model pools no mirror). `histogram`
    float32 (k,) is the extractor's soft word counts over the whole image (mirror pooled when
    on); `vector` float32 (dim,) the image's BoVW vector, equal to `encode_one(image)`.
    """

    positions: np.ndarray
    words: np.ndarray
    mirrored_positions: np.ndarray
    mirrored_words: np.ndarray
    histogram: np.ndarray
    vector: np.ndarray


def keypoint_words(extractor: BovwExtractor, image: np.ndarray) -> KeypointWords:
    """The keypoints of `image` (uint8 RGB (h, w, 3)) and their words under `extractor`."""
    from features.vocabulary import nearest_words

    if not extractor.is_fitted:
        raise ModelError("bovw extractor is not fitted; run `cbir train bovw`")
    features = extractor.describe([image])
    cells = extractor.word_cells(features)  # float32 (1, grid*grid, k)
    vector = extractor.project(extractor.raw_vectors(features, cells))[0]
    described = features.descriptors[0]
    knn = extractor.config.knn  # as soft_assign asks faiss: the same nearest word on ties

    def words(descriptors: np.ndarray) -> np.ndarray:
        found, _ = nearest_words(extractor.unit_descriptors(descriptors), extractor.vocabulary, knn)
        return found[:, 0] if len(found) else np.zeros(0, np.int64)

    return KeypointWords(
        described.positions.astype(np.float32),
        words(described.descriptors),
        described.mirrored_positions.astype(np.float32),
        words(described.mirrored),
        cells[0].sum(axis=0),
        vector,
    )


@dataclass(frozen=True)
class SharedWord:
    """A word that is the nearest word of keypoints in both images.

    `query`, `result` float32 (a, 2), (b, 2): its keypoints' (x, y) fractions of each image as
    shown (a mirrored query view is flipped back); `contribution`: its part of `word_cosine`.
    """

    word: int
    query: np.ndarray
    result: np.ndarray
    contribution: float


@dataclass(frozen=True)
class WordMatch:
    """The visual words two images share, most contributing first, and what they add up to.

    `word_cosine` is the cosine of the two images' whole-image SIFT-word histograms as the
    extractor weighs them (soft counts, mirror pooled, idf, square root, L2), `soft_shared`
    the words with weight in both (what that cosine sums over); `shared_cosine` the part of it
    from the drawn `words`. `query_weight_share` is the share of the query keypoints' tf-idf
    weight (idf of each keypoint's word) that falls on shared words. `score` is the cosine of
    the two BoVW vectors: what a `bovw` search ranks by.
    """

    words: list[SharedWord]
    query_words: int
    result_words: int
    query_keypoints: int
    result_keypoints: int
    mirrored: bool
    query_weight_share: float
    word_cosine: float
    shared_cosine: float
    soft_shared: int
    score: float

    def to_json(self, digits: int = 4) -> dict[str, Any]:
        def xy(points: np.ndarray) -> list[list[float]]:
            return np.round(points.astype(np.float64), digits).tolist()

        return {
            "shared_words": len(self.words),
            "query_words": self.query_words,
            "result_words": self.result_words,
            "query_keypoints": self.query_keypoints,
            "result_keypoints": self.result_keypoints,
            "mirrored": self.mirrored,
            "query_weight_share": round(self.query_weight_share, digits),
            "word_cosine": round(self.word_cosine, digits),
            "shared_word_cosine": round(self.shared_cosine, digits),
            "soft_shared_words": self.soft_shared,
            "score": round(self.score, digits),
            "words": [
                {
                    "word": w.word,
                    "contribution": round(w.contribution, 6),
                    "query": xy(w.query),
                    "result": xy(w.result),
                }
                for w in self.words
            ],
        }


def shared_words(
    extractor: BovwExtractor, query: KeypointWords, result: KeypointWords
) -> WordMatch:
    """The words `query` and `result` share; the query's mirrored view is used when it shares
    more (the extractor pools the mirror, so a mirrored copy matches through it)."""
    from features.vocabulary import pyramid

    k = extractor.config.vocabulary_size
    levels = ((1, 1.0),)  # the whole image: the histograms, weighed as the pyramid weighs a level
    unit = pyramid(
        np.stack([query.histogram, result.histogram])[:, None, :], 1, levels, extractor.idf
    )
    per_word = unit[0] * unit[1]
    views = [(query.positions, query.words, False)]
    if len(query.mirrored_words):
        views.append((query.mirrored_positions, query.mirrored_words, True))
    positions, words, mirrored = max(
        views,
        key=lambda v: len(np.intersect1d(v[1], result.words)),  # first view on ties
    )
    shown = positions.copy()
    if mirrored:
        shown[:, 0] = 1.0 - shown[:, 0]
    common = np.intersect1d(words, result.words)
    order = common[np.lexsort((common, -per_word[common]))]
    idf = extractor.idf if extractor.idf is not None else np.ones(k, np.float32)
    weight = np.bincount(words, minlength=k) * idf.astype(np.float64)
    total = float(weight.sum())
    return WordMatch(
        words=[
            SharedWord(
                int(w), shown[words == w], result.positions[result.words == w], float(per_word[w])
            )
            for w in order
        ],
        query_words=len(np.unique(words)),
        result_words=len(np.unique(result.words)),
        query_keypoints=len(words),
        result_keypoints=len(result.words),
        mirrored=mirrored,
        query_weight_share=float(weight[common].sum()) / total if total else 0.0,
        word_cosine=float(per_word.sum()),
        shared_cosine=float(per_word[common].sum()),
        soft_shared=int(np.count_nonzero((query.histogram > 0) & (result.histogram > 0))),
        score=float(np.dot(query.vector, result.vector)),
    )
