"""Tiny extractors for testing the shared machinery (base class, registry, Ray path, stores)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from features.base import Extractor, l2_normalise


class CentredExtractor(Extractor):
    """Raw features (`raw`, float64 (n, dim)) centred on the train mean, then L2-normalised."""

    def __init__(self) -> None:
        self.centre: np.ndarray | None = None

    def raw(self, images) -> np.ndarray:
        raise NotImplementedError

    @property
    def is_fitted(self) -> bool:
        return self.centre is not None

    def fit(self, images, labels=None):
        self.centre = self.raw(images).mean(0)
        return self

    def encode(self, images) -> np.ndarray:
        return l2_normalise(self.raw(images) - self.centre)

    def save_state(self, directory: Path) -> None:
        np.save(directory / "centre.npy", self.centre)

    def load_state(self, directory: Path) -> None:
        self.centre = np.load(directory / "centre.npy")

    def state_digest(self) -> bytes:
        return np.ascontiguousarray(self.centre).tobytes()


class ColourMomentsExtractor(CentredExtractor):
    """Per-channel mean and standard deviation, centred on the train mean: 6 dimensions."""

    name = "colour-moments"

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = scale

    @property
    def dim(self) -> int:
        return 6

    @property
    def params(self) -> dict:
        return {"scale": self.scale}

    def raw(self, images) -> np.ndarray:
        rows = [
            np.concatenate([im.reshape(-1, 3).mean(0), im.reshape(-1, 3).std(0)]) for im in images
        ]
        return np.asarray(rows, dtype=np.float64) * self.scale


class ThumbnailExtractor(CentredExtractor):
    """The image shrunk to side x side pixels, centred on the train mean: a second, different method."""

    name = "thumbnail"

    def __init__(self, side: int = 4):
        super().__init__()
        self.side = side

    @property
    def dim(self) -> int:
        return self.side * self.side * 3

    @property
    def params(self) -> dict:
        return {"side": self.side}

    def raw(self, images) -> np.ndarray:
        from PIL import Image

        small = [
            np.asarray(Image.fromarray(im).resize((self.side, self.side), Image.BILINEAR))
            for im in images
        ]
        return np.asarray(small, dtype=np.float64).reshape(len(images), -1)


class WeightedMomentsExtractor(ColourMomentsExtractor):
    """Colour moments with a weight per dimension: a second method that ranks differently."""

    name = "weighted-moments"

    def __init__(self, scale: float = 1.0, weights=(1.0, 1.0, 1.0, 1.0, 1.0, 1.0)):
        super().__init__(scale)
        self.weights = tuple(float(w) for w in weights)

    @property
    def params(self) -> dict:
        return {"scale": self.scale, "weights": list(self.weights)}

    def raw(self, images) -> np.ndarray:
        return super().raw(images) * np.asarray(self.weights)
