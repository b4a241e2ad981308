"""BoVW defaults sized to the collection: what `cbir train bovw` uses for options not given.

The rule gives CIFAR-10's measured recipe (1,024 words, 10,000 sampled images, PCA to 2,048)
to every collection of 10,000 train images or more, and scales down below that:

- sample: all train images up to 10,000 (the fit's cost stays bounded at 500,000);
- vocabulary: the largest power of two with at least 32 k-means descriptors per word
  (sample x descriptors_per_image / 32), between 16 and 1,024;
- PCA to 2,048 dimensions when at least 2,048 images are sampled (PCA needs as many images
  as dimensions); below that no PCA, and the vocabulary is halved until the raw vector fits
  a dense_vector field (4,096 dimensions).

An option the user gave always wins; the rule fills in only the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from features.bovw_config import MAX_DIM, BovwConfig, Recipe

SAMPLE_IMAGES = 10_000  # CIFAR-10's recipe: images sampled for the fit and for k-means
MAX_WORDS = 1024
MIN_WORDS = 16
DESCRIPTORS_PER_WORD = 32
PCA_DIM = 2048

# The photo recipe (docs/bovw.md, "Photos"): SIFT keypoints of the whole image; the spatial
# pyramids and HOG of a 32-px thumbnail are dropped because they change when the image turns.
PHOTO_PRESET: dict[str, Any] = {
    "recipe": Recipe.PHOTO.value,
    "sampling": "detector",
    "pyramid": [[1, 1.0]],
    "hog": False,
    "colour_pyramid": [[1, 1.0]],
    "grid_step": 24,  # dense option: working pixels between grid points
    "grid_margin": 16,
    "keypoint_size": 16.0,
}


def recipe_params(recipe: Recipe | str, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """`given` BovwConfig fields over the recipe's own defaults (CIFAR: BovwConfig's)."""
    recipe = Recipe(recipe)
    preset = PHOTO_PRESET if recipe is Recipe.PHOTO else {}
    return {**preset, **(given or {}), "recipe": recipe.value}


# The options the rule chooses, as BovwConfig fields (`images` is the train sample size).
SIZED = ("images", "vocabulary_size", "vocabulary_images", "pca_dim")


@dataclass(frozen=True)
class SizedDefaults:
    """The BovwConfig parameters and sample size for a collection, and which were chosen."""

    train_images: int
    params: dict[str, Any]
    images: int
    chosen: dict[str, int]  # option -> value, for the options the rule filled in

    def line(self) -> str:
        """The chosen options in one line, for the console."""
        if not self.chosen:
            return "defaults by collection size: none used (every sized option was given)"
        chosen = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in self.chosen.items())
        return f"defaults for {self.train_images:,} train images: {chosen}"


def _power_of_two_at_most(n: int) -> int:
    return 1 << (max(n, 1).bit_length() - 1)


def sized_defaults(
    train_images: int, params: dict[str, Any] | None = None, images: int | None = None
) -> SizedDefaults:
    """Fill the options absent from `params` (and `images` when None) for `train_images` images.

    `params` holds only what the user gave (BovwConfig fields); the result's params are
    complete enough to build the extractor. Raises ModelError for explicit options that
    cannot go together (via BovwConfig).
    """
    given = dict(params or {})
    chosen: dict[str, int] = {}
    if images is None:
        images = chosen["images"] = min(train_images, SAMPLE_IMAGES)
    sample = max(1, min(images, train_images))
    if "vocabulary_images" not in given:
        given["vocabulary_images"] = chosen["vocabulary_images"] = min(sample, SAMPLE_IMAGES)
    vocabulary_images = min(int(given["vocabulary_images"]), sample)
    per_image = int(given.get("descriptors_per_image", BovwConfig.descriptors_per_image))
    auto_words = "vocabulary_size" not in given
    auto_pca = "pca_dim" not in given
    if auto_words:
        words = _power_of_two_at_most(vocabulary_images * per_image // DESCRIPTORS_PER_WORD)
        given["vocabulary_size"] = max(MIN_WORDS, min(MAX_WORDS, words))
    if auto_pca:
        given["pca_dim"] = 0
        raw = _raw_dim(given)
        if sample >= PCA_DIM and raw > PCA_DIM:
            given["pca_dim"] = PCA_DIM
        elif raw > MAX_DIM and not auto_words:
            given["pca_dim"] = _power_of_two_at_most(sample)
    if auto_words and not given["pca_dim"]:
        while given["vocabulary_size"] > MIN_WORDS and _raw_dim(given) > MAX_DIM:
            given["vocabulary_size"] //= 2
    for name in ("vocabulary_size", "pca_dim"):
        if name not in (params or {}):
            chosen[name] = int(given[name])
    BovwConfig(**given)  # explicit options that cannot go together fail here, naming them
    ordered = {k: chosen[k] for k in SIZED if k in chosen}
    return SizedDefaults(train_images, given, images, ordered)


def _raw_dim(params: dict[str, Any]) -> int:
    """Length of the raw (pre-PCA) vector; pca_dim 1 only lets BovwConfig build at any size."""
    return BovwConfig(**{**params, "pca_dim": 1}).raw_dim
