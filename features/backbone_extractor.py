"""A pretrained backbone as the `cnn` method: preprocessing of its weights, pooling, L2 norm.

Each image is resized so its short side is the weights' resize size (aspect kept), centre
cropped to their crop size, normalised with their mean and std, and passed channels-last
through the trunk and the chosen pooling (`features/backbone_nets.py`); the vector is
L2-normalised. CUDA is used when present; bfloat16 autocast only when `bf16` is set (see
docs/backbones.md for where it keeps vectors equal within tolerance).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from features.backbones import BACKBONES, Preprocess, load_pretrained, pooling_of, preprocessing
from features.base import Extractor, ModelError, l2_normalise
from features.cnn_train import autocast, network_digest, pick_device, to_input

WEIGHTS_FILE = "network.pt"
FORWARD_CHUNK = 32  # images per forward pass (bounds memory at 224 px)


def resize_centre_crop(image: np.ndarray, prep: Preprocess) -> np.ndarray:
    """uint8 (h, w, 3) -> (crop, crop, 3): short side to `prep.resize` keeping the aspect, centre crop.

    Area averaging when shrinking (an anti-aliased resize), bicubic or bilinear when enlarging.
    """
    import cv2

    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    h, w = image.shape[:2]
    scale = prep.resize / min(h, w)
    size_h, size_w = max(prep.crop, round(h * scale)), max(prep.crop, round(w * scale))
    if (size_h, size_w) != (h, w):
        if scale < 1:
            method = cv2.INTER_AREA
        else:
            method = cv2.INTER_CUBIC if prep.interpolation == "bicubic" else cv2.INTER_LINEAR
        image = cv2.resize(image, (size_w, size_h), interpolation=method)
    top, left = (size_h - prep.crop) // 2, (size_w - prep.crop) // 2
    return np.ascontiguousarray(image[top : top + prep.crop, left : left + prep.crop])


class BackboneExtractor(Extractor):
    name = "cnn"

    def __init__(
        self,
        arch: str = "efficientnet_lite0",
        pooling: str | None = None,
        image_size: int | None = None,
        bf16: bool = False,
        batch_size: int = 64,
        weights_tag: str | None = None,
        num_classes: int = 0,
        full_frame: bool = False,
    ):
        self.arch = arch
        self.pooling = pooling_of(arch, pooling)
        self.full_frame = bool(full_frame)  # whole image resized to the crop (CIFAR-10)
        self.prep = preprocessing(arch, image_size, self.full_frame)
        self.bf16 = bool(bf16)
        self.batch_size = int(batch_size)
        self.weights_tag = weights_tag
        self.num_classes = int(num_classes)  # > 0: fine-tuned on that many labels
        self.network: torch.nn.Module | None = None
        self.device = pick_device()

    @property
    def dim(self) -> int:
        return BACKBONES[self.arch].dim

    @property
    def params(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "pooling": self.pooling.value,
            "image_size": self.prep.crop,
            "bf16": self.bf16,
            "batch_size": self.batch_size,
            "weights_tag": self.weights_tag,
            "num_classes": self.num_classes,
            # only when set, so that models saved before the option keep their fingerprints
            **({"full_frame": True} if self.full_frame else {}),
        }

    @property
    def is_fitted(self) -> bool:
        return self.network is not None

    def fit(
        self, images: Sequence[np.ndarray], labels: np.ndarray | None = None
    ) -> BackboneExtractor:
        raise ModelError(
            f"{self.arch} is pretrained; save it with `cbir train cnn --arch {self.arch}`, or "
            f"fine-tune it on labels with `cbir train cnn --arch {self.arch} --dataset folder --data DIR`"
        )

    def encode(self, images: Sequence[np.ndarray]) -> np.ndarray:
        if not self.is_fitted:
            raise ModelError("the backbone extractor has no network; run `cbir train cnn`")
        if len(images) == 0:
            return np.zeros((0, self.dim), np.float32)
        out = [
            self.embed(
                np.stack(
                    [resize_centre_crop(im, self.prep) for im in images[s : s + self.batch_size]]
                )
            )
            for s in range(0, len(images), self.batch_size)
        ]
        return l2_normalise(np.concatenate(out))

    def save_state(self, directory: Path) -> None:
        torch.save(self.network.state_dict(), directory / WEIGHTS_FILE)

    def load_state(self, directory: Path) -> None:
        path = Path(directory) / WEIGHTS_FILE
        if not path.is_file():
            raise ModelError(f"{directory} has no {WEIGHTS_FILE}; save the model again")
        network = self.build_network()
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            network.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise ModelError(f"{path} does not fit {self.arch} ({first}); save it again") from None
        self.set_network(network)

    def state_digest(self) -> bytes:
        return network_digest(self.network).digest()

    # -- building blocks -----------------------------------------------------------------
    def build_network(self) -> torch.nn.Module:
        """This architecture's feature network with random weights (the caller loads saved ones)."""
        from features.backbone_nets import feature_net
        from features.backbones import build_classifier

        return feature_net(self.arch, build_classifier(self.arch), self.pooling)

    def set_network(self, network: torch.nn.Module) -> None:
        self.network = network.to(self.device, memory_format=torch.channels_last).eval()

    def to_input(self, batch: np.ndarray) -> torch.Tensor:
        """uint8 (n, crop, crop, 3) -> normalised float (n, 3, crop, crop), channels-last."""
        return to_input(batch, self.device, self.prep.mean, self.prep.std)

    @torch.no_grad()
    def embed(self, batch: np.ndarray) -> np.ndarray:
        """Raw (not normalised) features float32 (n, dim) of uint8 (n, crop, crop, 3) images."""
        x = self.to_input(batch)
        with autocast(self.device, self.bf16):
            parts = [
                self.network(x[s : s + FORWARD_CHUNK]).float()
                for s in range(0, len(x), FORWARD_CHUNK)
            ]
        return torch.cat(parts).cpu().numpy()

    @classmethod
    def pretrained(
        cls,
        arch: str,
        weights_file: str | Path | None = None,
        allow_download: bool = True,
        pooling: str | None = None,
        image_size: int | None = None,
        bf16: bool = False,
        full_frame: bool = False,
    ) -> BackboneExtractor:
        """A ready extractor around `arch`'s pretrained weights (see features/backbones.py)."""
        from features.backbone_nets import feature_net

        extractor = cls(
            arch, pooling=pooling, image_size=image_size, bf16=bf16, full_frame=full_frame
        )
        classifier, extractor.weights_tag = load_pretrained(arch, weights_file, allow_download)
        extractor.set_network(feature_net(arch, classifier, extractor.pooling))
        return extractor
