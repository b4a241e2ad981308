"""The interface every feature extractor implements: fit once, encode many, save, load."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cbir.core.errors import CbirError
from features.imaging import DEFAULT_MIN_SIDE

MANIFEST = "extractor.json"
FORMAT_VERSION = 1


class ModelError(CbirError):
    """A saved model is missing, incomplete, or does not fit the request."""


@dataclass(frozen=True)
class ModelInfo:
    """What a store records about the model that built a vector field."""

    name: str
    dim: int
    fingerprint: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "fingerprint": self.fingerprint}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelInfo:
        return cls(str(data["name"]), int(data["dim"]), str(data["fingerprint"]))


class Extractor(ABC):
    """Turns RGB images into float32 vectors of a fixed dimension.

    Images are uint8 arrays of shape (h, w, 3), RGB, as `features.imaging.decode_image`
    returns them. `encode` returns float32 (n, dim) with L2-normalised rows; a row is all
    zeros when an image gives the method nothing to describe (e.g. a flat image for SIFT).
    """

    name: ClassVar[str]

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of every vector `encode` returns."""

    @property
    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The constructor parameters, JSON-serialisable; `type(self)(**params)` rebuilds it unfitted."""

    @property
    @abstractmethod
    def is_fitted(self) -> bool:
        """Whether learned state is present, so that `encode` may be called."""

    @abstractmethod
    def fit(self, images: Sequence[np.ndarray], labels: np.ndarray | None = None) -> Extractor:
        """Learn from train images only (labels only where the method is supervised); returns self."""

    @abstractmethod
    def encode(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """float32 array (len(images), dim) of L2-normalised rows (zero rows allowed)."""

    @abstractmethod
    def save_state(self, directory: Path) -> None:
        """Write learned state (arrays, weights) into `directory`."""

    @abstractmethod
    def load_state(self, directory: Path) -> None:
        """Read what `save_state` wrote."""

    @abstractmethod
    def state_digest(self) -> bytes:
        """Bytes that identify the learned state (hashed into the fingerprint)."""

    @property
    def input_side(self) -> int | None:
        """The short side (pixels) `encode` needs; decoders may reduce larger images to it.

        The default suits any method up to full-resolution SIFT; None asks for full resolution.
        """
        return DEFAULT_MIN_SIDE

    def encode_one(self, image: np.ndarray) -> np.ndarray:
        """The vector of one image, float32 (dim,)."""
        return self.encode([image])[0]

    @property
    def fingerprint(self) -> str:
        """Hash of method, parameters and learned state: equal fingerprints encode alike."""
        if not self.is_fitted:
            raise ModelError(f"{self.name} extractor is not fitted; run `cbir train {self.name}`")
        digest = hashlib.sha256()
        digest.update(self.name.encode())
        digest.update(json.dumps(self.params, sort_keys=True).encode())
        digest.update(self.state_digest())
        return digest.hexdigest()[:16]

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(self.name, self.dim, self.fingerprint)

    def save(self, directory: Path | str) -> Path:
        """Write the manifest and learned state to `directory`; returns it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.save_state(directory)
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "params": self.params,
            "dim": self.dim,
            "fingerprint": self.fingerprint,
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        return directory

    @classmethod
    def load(cls, directory: Path | str) -> Extractor:
        """Rebuild an extractor saved by `save`; the fingerprint is checked against the manifest."""
        directory = Path(directory)
        manifest = read_manifest(directory)
        if manifest["name"] != cls.name:
            raise ModelError(f"{directory} holds a {manifest['name']!r} model, not {cls.name!r}")
        extractor = cls(**manifest["params"])
        extractor.load_state(directory)
        if extractor.fingerprint != manifest["fingerprint"]:
            raise ModelError(
                f"{directory}: learned state has fingerprint {extractor.fingerprint}, manifest says "
                f"{manifest['fingerprint']}; the files were changed or mixed up: train the model again"
            )
        return extractor


def read_manifest(directory: Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ModelError(
            f"no model at {directory} ({MANIFEST} missing); train one with `cbir train`"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not readable JSON ({exc})") from None
    for key in ("name", "class", "params", "fingerprint"):
        if key not in manifest:
            raise ModelError(f"{path} has no {key!r}; it was not written by cbir")
    return manifest


def l2_normalise(vectors: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length, float32; all-zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, eps)
