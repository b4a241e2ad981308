"""What a BoVW visual word looks like: the image patches whose descriptors it is nearest to.

Uses the fitted extractor's own steps (`describe`, `unit_descriptors`, its vocabulary) and
the same nearest-word search the encoder uses, so a patch shown under a word is one the
extractor really assigns to that word (mirrored descriptors are left out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from features.bovw import BovwExtractor


@dataclass
class WordPatches:
    """One visual word: how many sampled descriptors it is nearest to, and patches of them.

    patches: uint8 RGB (side, side, 3) each, most typical first (closest to the word).
    """

    word: int
    count: int
    patches: list[np.ndarray]


def word_patches(
    extractor: BovwExtractor,
    images: Sequence[np.ndarray],
    *,
    words: Sequence[int] | None = None,
    n_words: int = 8,
    per_word: int = 8,
) -> list[WordPatches]:
    """Patches of `images` (RGB uint8) assigned to `words` (default: the `n_words` most used).

    A patch is the region a SIFT descriptor summarises: 4 x 4 cells of 3 sigma each,
    sigma = keypoint size / 2, i.e. 6 x keypoint size pixels on the upscaled image,
    centred on the keypoint. At most one patch per image and word, closest first.
    """
    import cv2

    from features.vocabulary import nearest_words

    c = extractor.config
    if c.is_photo:  # keypoints of varied size and angle on the whole image: no fixed patch
        from features.base import ModelError

        raise ModelError("word patches are drawn for the cifar recipe only; this model is 'photo'")
    features = extractor.describe(images)
    owner = np.concatenate(
        [np.full(len(d), i, np.int64) for i, d in enumerate(features.descriptors)]
        or [np.zeros(0, np.int64)]
    )
    if len(owner) == 0:
        return []
    raw = np.concatenate([d.descriptors for d in features.descriptors])
    positions = np.concatenate([d.positions for d in features.descriptors])
    nearest, distance = nearest_words(extractor.unit_descriptors(raw), extractor.vocabulary, 1)
    nearest, distance = nearest[:, 0], distance[:, 0]
    counts = np.bincount(nearest, minlength=len(extractor.vocabulary))
    if words is None:
        used = np.flatnonzero(counts)
        words = used[np.argsort(-counts[used], kind="stable")][:n_words].tolist()
    half = round(3 * c.keypoint_size)
    big = {}
    out = []
    for word in words:
        members = np.flatnonzero(nearest == word)
        members = members[np.argsort(distance[members], kind="stable")]
        patches, seen = [], set()
        for m in members:
            image = int(owner[m])
            if image in seen:
                continue
            seen.add(image)
            if image not in big:
                small = cv2.resize(images[image], (c.side, c.side), interpolation=cv2.INTER_AREA)
                upscaled = cv2.resize(small, (c.upscale, c.upscale), interpolation=cv2.INTER_LINEAR)
                big[image] = cv2.copyMakeBorder(
                    upscaled, half, half, half, half, cv2.BORDER_REFLECT
                )
            x, y = (positions[m] * c.upscale).round().astype(int) + half
            patches.append(big[image][y - half : y + half, x - half : x + half].copy())
            if len(patches) == per_word:
                break
        out.append(WordPatches(int(word), int(counts[word]), patches))
    return out
