"""The parameters of the BoVW extractor, checked once, with the vector layout they imply."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, fields
from typing import Any

from features.base import ModelError
from features.hog import hog_dim
from features.sift import Sampling

MAX_DIM = 4096  # Elasticsearch's dense_vector limit; every stored vector fits it.

Levels = tuple[tuple[int, float], ...]


class Recipe(enum.StrEnum):
    """Where SIFT looks: CIFAR's 32-px thumbnail (dense, upright) or the whole photo (keypoints)."""

    CIFAR = "cifar"
    PHOTO = "photo"


# Fields that only the photo recipe reads; a CIFAR config leaves them out of its parameters,
# so models saved before the photo recipe existed keep their parameters and fingerprints.
PHOTO_FIELDS = ("recipe", "working_side", "min_working_side", "max_keypoints")


def _levels(value: Any, name: str) -> Levels:
    try:
        levels = tuple((int(level), float(weight)) for level, weight in value)
    except (TypeError, ValueError):
        raise ModelError(f"{name} must be a list of [level, weight] pairs, got {value!r}") from None
    if not levels or any(level < 1 or weight <= 0 for level, weight in levels):
        raise ModelError(f"{name} needs levels >= 1 with positive weights, got {value!r}")
    finest = max(level for level, _ in levels)
    if any(finest % level for level, _ in levels):
        raise ModelError(f"{name}: every level must divide the finest ({finest}), got {value!r}")
    return levels


@dataclass(frozen=True)
class BovwConfig:
    """Every BoVW parameter; defaults are the recipe measured on CIFAR-10 (README, BoVW)."""

    recipe: str = Recipe.CIFAR.value
    side: int = 32  # images are first resized to side x side (CIFAR's own size)
    upscale: int = 64  # SIFT runs on the gray image upscaled to this side
    sampling: str = Sampling.DENSE.value
    grid_step: int = 4
    grid_margin: int = 8
    keypoint_size: float = 4.0
    root_sift: bool = True
    vocabulary_size: int = 1024
    vocabulary_images: int = 10_000  # images sampled for the k-means fit
    descriptors_per_image: int = 50
    kmeans_init: int = 3
    knn: int = 5  # words each descriptor is soft-assigned to (1 = hard assignment)
    sigma: float = 0.1
    pyramid: Levels = ((1, 1.0), (2, 2.0))
    mirror: bool = True  # pool the horizontally mirrored image too (flip invariance)
    idf: bool = True
    colour: bool = True
    colour_words: int = 32
    colour_knn: int = 4
    colour_pyramid: Levels = ((1, 1.0), (2, 1.0), (4, 2.0))
    colour_weight: float = 0.7
    hog: bool = True
    hog_weight: float = 1.3
    pca_dim: int = 2048  # 0 = no PCA (then the raw vector must fit MAX_DIM)
    seed: int = 0
    # photo recipe only: SIFT on the whole image, long side brought into [min_working_side,
    # working_side] px (features/local.py), at most max_keypoints detector keypoints
    working_side: int = 640
    min_working_side: int = 320
    max_keypoints: int = 500

    def __post_init__(self) -> None:
        object.__setattr__(self, "pyramid", _levels(self.pyramid, "pyramid"))
        object.__setattr__(self, "colour_pyramid", _levels(self.colour_pyramid, "colour_pyramid"))
        try:
            object.__setattr__(self, "sampling", Sampling(self.sampling).value)
        except ValueError:
            choices = ", ".join(s.value for s in Sampling)
            raise ModelError(f"sampling must be one of {choices}, got {self.sampling!r}") from None
        try:
            object.__setattr__(self, "recipe", Recipe(self.recipe).value)
        except ValueError:
            choices = ", ".join(r.value for r in Recipe)
            raise ModelError(f"recipe must be one of {choices}, got {self.recipe!r}") from None
        self._check_recipe()
        for name in ("side", "upscale", "grid_step", "vocabulary_size", "knn", "colour_words"):
            if int(getattr(self, name)) < 1:
                raise ModelError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.sigma <= 0:
            raise ModelError(f"sigma must be positive, got {self.sigma!r}")
        if self.pca_dim < 0:
            raise ModelError(f"pca_dim must be 0 (off) or positive, got {self.pca_dim}")
        if self.pca_dim > self.raw_dim:
            raise ModelError(f"pca_dim {self.pca_dim} exceeds the raw dimension {self.raw_dim}")
        if self.dim > MAX_DIM:
            raise ModelError(
                f"BoVW vectors would have {self.dim:,} dimensions, more than the {MAX_DIM:,} "
                "a dense_vector field allows; set pca_dim (e.g. 2048) or a smaller vocabulary"
            )

    def _check_recipe(self) -> None:
        if self.recipe == Recipe.PHOTO:
            if not self.root_sift:
                raise ModelError(
                    "the photo recipe uses RootSIFT (features/local.py); drop --no-root-sift"
                )
            if not 1 <= self.min_working_side <= self.working_side:
                raise ModelError(
                    f"need 1 <= min_working_side <= working_side, got {self.min_working_side} "
                    f"and {self.working_side}"
                )
            if self.max_keypoints < 1:
                raise ModelError(f"max_keypoints must be at least 1, got {self.max_keypoints}")
            return
        defaults = {f.name: f.default for f in fields(self)}
        changed = [n for n in PHOTO_FIELDS[1:] if getattr(self, n) != defaults[n]]
        if changed:
            raise ModelError(
                f"{', '.join(changed)} apply to the photo recipe only (recipe='photo')"
            )

    @property
    def is_photo(self) -> bool:
        return self.recipe == Recipe.PHOTO

    @property
    def input_side(self) -> int:
        """Short side (px) the decoder may reduce an image to without losing what SIFT uses."""
        return self.working_side if self.is_photo else self.side

    @property
    def sift_grid(self) -> int:
        return max(level for level, _ in self.pyramid)

    @property
    def colour_grid(self) -> int:
        return max(level for level, _ in self.colour_pyramid)

    @property
    def sift_dim(self) -> int:
        return sum(level * level for level, _ in self.pyramid) * self.vocabulary_size

    @property
    def colour_dim(self) -> int:
        if not self.colour:
            return 0
        return sum(level * level for level, _ in self.colour_pyramid) * self.colour_words

    @property
    def hog_dim(self) -> int:
        return hog_dim(self.side) if self.hog else 0

    @property
    def raw_dim(self) -> int:
        """Length of the concatenated channels before PCA."""
        return self.sift_dim + self.colour_dim + self.hog_dim

    @property
    def dim(self) -> int:
        return self.pca_dim or self.raw_dim

    def to_params(self) -> dict[str, Any]:
        """JSON-ready parameters: `BovwConfig(**to_params())` rebuilds this config."""
        params = asdict(self)
        if not self.is_photo:
            for name in PHOTO_FIELDS:
                del params[name]
        params["pyramid"] = [list(p) for p in self.pyramid]
        params["colour_pyramid"] = [list(p) for p in self.colour_pyramid]
        return params
