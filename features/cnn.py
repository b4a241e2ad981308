"""CNN embeddings: the project's CIFAR network or a torchvision backbone, L2-normalised.

`CnnExtractor(arch="cifarnet")` is the compact network of `features/cnn_net.py`, trained by
`cbir train cnn` (`fit` carves a validation split out of the train images it is given).
`CnnExtractor.from_backbone(arch, ...)` returns a pretrained ImageNet backbone as a `cnn`
model (`features/backbone_extractor.py`; the list is in `features/backbones.py`).

Encoding: images are resized to the network's input size, optionally averaged with their
horizontal mirror (test-time flip), optionally centred on the mean train embedding (a
learned, label-free statistic), and L2-normalised. CUDA is used when present.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from features.base import Extractor, ModelError, l2_normalise
from features.cnn_net import CifarNet
from features.cnn_train import autocast, network_digest, pick_device, to_input
from features.imaging import resize_square

WEIGHTS_FILE = "network.pt"
FORWARD_CHUNK = 256  # images per forward pass when encoding (cache-friendly on CPU)
MEAN_FILE = "mean.npy"


class CnnExtractor(Extractor):
    name = "cnn"

    def __init__(
        self,
        arch: str = "cifarnet",
        widths: Sequence[int] = (64, 256, 256),
        num_classes: int = 10,
        image_size: int | None = None,
        flip_tta: bool = True,
        center: bool = True,
        bf16: bool = True,
        batch_size: int = 500,
        weights_tag: str | None = None,
    ):
        from features.backbones import BACKBONES

        if arch in BACKBONES:
            raise ModelError(
                f"{arch} is a pretrained backbone; build it with "
                f"`cbir train cnn --arch {arch} [--weights FILE]`, not as the CIFAR network"
            )
        if arch != "cifarnet":
            choices = ", ".join(["cifarnet", *BACKBONES])
            raise ModelError(f"unknown CNN architecture {arch!r}; choose one of: {choices}")
        self.arch = arch
        self.widths = tuple(int(w) for w in widths)
        self.num_classes = int(num_classes)
        self.image_size = int(image_size or 32)
        self.flip_tta = bool(flip_tta)
        self.center = bool(center)
        self.bf16 = bool(bf16)
        self.batch_size = int(batch_size)
        self.weights_tag = weights_tag
        self.network: torch.nn.Module | None = None
        self.mean: np.ndarray | None = None  # float32 (dim,): the mean train embedding
        self.device = pick_device()
        self.training_report = None  # a features.cnn_fit.FitReport after fit()

    # -- the Extractor interface -------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.widths[-1]

    @property
    def input_side(self) -> int:
        return self.image_size

    @property
    def params(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "widths": list(self.widths),
            "num_classes": self.num_classes,
            "image_size": self.image_size,
            "flip_tta": self.flip_tta,
            "center": self.center,
            "bf16": self.bf16,
            "batch_size": self.batch_size,
            "weights_tag": self.weights_tag,
        }

    @property
    def is_fitted(self) -> bool:
        return self.network is not None and self.mean is not None

    def fit(self, images: Sequence[np.ndarray], labels: np.ndarray | None = None) -> CnnExtractor:
        """Train the CIFAR network on `images` (a validation split is carved out of them)."""
        if labels is None:
            raise ModelError("the CIFAR network is supervised: fit(images, labels) needs labels")
        from features.cnn_fit import fit_cifarnet

        batch = np.stack([self._resize(im) for im in images])
        self.training_report = fit_cifarnet(self, batch, np.asarray(labels))
        return self

    def encode(self, images: Sequence[np.ndarray]) -> np.ndarray:
        if not self.is_fitted:
            raise ModelError("the CNN extractor has no network; run `cbir train cnn`")
        if len(images) == 0:
            return np.zeros((0, self.dim), np.float32)
        out = [
            self.embed(np.stack([self._resize(im) for im in images[s : s + self.batch_size]]))
            for s in range(0, len(images), self.batch_size)
        ]
        vectors = np.concatenate(out)
        if self.center:
            vectors = vectors - self.mean
        return l2_normalise(vectors)

    def save_state(self, directory: Path) -> None:
        # With bfloat16 inference (the default), weights are stored as bfloat16: autocast
        # rounds them to that for every convolution and matrix product anyway, so the file
        # halves (the shipped model stays a few MB) at no cost. They are rounded in memory
        # first, so a loaded model encodes identically and keeps the fingerprint. BatchNorm
        # statistics stay float32 (autocast runs normalisation in float32).
        state = self.network.state_dict()
        params = {name for name, _ in self.network.named_parameters()} if self.bf16 else set()
        with torch.no_grad():
            for name in params:
                state[name].copy_(state[name].bfloat16().float())
        stored = {k: v.bfloat16() if k in params else v for k, v in state.items()}
        torch.save(stored, directory / WEIGHTS_FILE)
        np.save(directory / MEAN_FILE, self.mean)

    def load_state(self, directory: Path) -> None:
        path = Path(directory) / WEIGHTS_FILE
        if not path.is_file():
            raise ModelError(f"{directory} has no {WEIGHTS_FILE}; train the model again")
        network = self.build_network()
        state = torch.load(path, map_location="cpu", weights_only=True)
        network.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        )
        self.set_network(network)
        self.mean = np.load(Path(directory) / MEAN_FILE).astype(np.float32)

    def state_digest(self) -> bytes:
        digest = network_digest(self.network)
        digest.update(np.ascontiguousarray(self.mean, np.float32).tobytes())
        return digest.digest()

    # -- building blocks -----------------------------------------------------------------
    def build_network(self) -> torch.nn.Module:
        """An untrained network of this architecture (weights are loaded by the caller)."""
        return CifarNet(widths=self.widths, num_classes=self.num_classes)

    def set_network(self, network: torch.nn.Module) -> None:
        self.network = network.to(self.device).eval().to(memory_format=torch.channels_last)
        if self.mean is None and not self.center:
            self.mean = np.zeros(self.dim, np.float32)

    def _resize(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        return resize_square(image, self.image_size)

    @torch.no_grad()
    def embed(self, batch: np.ndarray) -> np.ndarray:
        """Raw embeddings float32 (n, dim) of uint8 (n, size, size, 3) images (no centring)."""
        x = to_input(batch, self.device)
        views = [x]
        if self.flip_tta:
            views.append(x.flip(3).contiguous(memory_format=torch.channels_last))
        total = None
        for view in views:
            # One view at a time, in chunks of FORWARD_CHUNK: on CPU, 1.3-1.7x faster than a
            # forward pass over both views of the whole batch, with bit-identical vectors
            # (nothing in the network mixes images).
            with autocast(self.device, self.bf16):
                features = torch.cat(
                    [
                        self._forward(view[s : s + FORWARD_CHUNK]).float()
                        for s in range(0, len(view), FORWARD_CHUNK)
                    ]
                )
            total = features if total is None else total + features
        return (total / len(views)).cpu().numpy()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.embed(x)

    @staticmethod
    def from_backbone(
        arch: str, weights_file: str | Path | None = None, allow_download: bool = True, **options
    ) -> Extractor:
        """A ready `cnn` model around a pretrained backbone; `options` as BackboneExtractor.pretrained."""
        from features.backbone_extractor import BackboneExtractor

        return BackboneExtractor.pretrained(arch, weights_file, allow_download, **options)
