"""Pretrained torchvision backbones as feature networks, through the weights API.

The features the retrieval literature uses: ResNet global-average-pooled features
(resnet18: 512-d, resnet50: 2048-d) and VGG-19's first fully-connected layer after its
ReLU (fc6, 4096-d). Weights come from `--weights FILE`, else the torchvision cache
(`$TORCH_HOME/hub/checkpoints`), else a download; when none works the error says where to
put the file. A randomly initialised network is never used silently.
"""

from __future__ import annotations

import urllib.error
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from features.base import ModelError


@dataclass(frozen=True)
class Backbone:
    dim: int
    what: str


BACKBONES: dict[str, Backbone] = {
    "resnet18": Backbone(512, "global average pool"),
    "resnet50": Backbone(2048, "global average pool"),
    "vgg19": Backbone(4096, "fc6 (first fully-connected layer, after ReLU)"),
}


def _check(arch: str) -> None:
    if arch not in BACKBONES:
        raise ModelError(f"unknown backbone {arch!r}; choose one of: {', '.join(BACKBONES)}")


def _truncate(arch: str, model: nn.Module) -> nn.Module:
    """Cut the classifier off so the network returns the feature the literature uses."""
    if arch.startswith("resnet"):
        model.fc = nn.Identity()
    else:
        model.classifier = model.classifier[:2]  # Linear(25088, 4096) + ReLU
    return model


def build_backbone(arch: str) -> nn.Module:
    """The truncated architecture with untrained weights (the caller loads saved ones)."""
    import torchvision

    _check(arch)
    return _truncate(arch, torchvision.models.get_model(arch, weights=None))


def default_weights(arch: str):
    """torchvision's recommended ImageNet weights enum member for `arch`."""
    import torchvision

    _check(arch)
    return torchvision.models.get_model_weights(arch).DEFAULT


def cached_weights_path(arch: str) -> Path:
    """Where torchvision keeps (or would keep) the default weights file of `arch`."""
    weights = default_weights(arch)
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def load_backbone(
    arch: str, weights_file: str | Path | None = None, allow_download: bool = True
) -> tuple[nn.Module, str]:
    """(truncated network with pretrained weights, a tag naming the weights)."""
    import torchvision

    _check(arch)
    model = torchvision.models.get_model(arch, weights=None)
    if weights_file is not None:
        path = Path(weights_file)
        if not path.is_file():
            raise ModelError(f"--weights {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a bad file
            raise ModelError(f"--weights {path} is not a torch state dict ({exc})") from None
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        tag = f"file:{path.name}"
    else:
        weights = default_weights(arch)
        cached = cached_weights_path(arch)
        if not cached.is_file() and not allow_download:
            raise ModelError(_missing(arch, cached, weights.url, "downloads are off"))
        try:
            state = weights.get_state_dict(progress=True, check_hash=True)
        except (urllib.error.URLError, OSError, RuntimeError) as exc:
            raise ModelError(_missing(arch, cached, weights.url, str(exc))) from None
        tag = f"torchvision:{weights}"
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        first = str(exc).splitlines()[0]
        raise ModelError(f"the weights do not fit torchvision's {arch} ({first})") from None
    return _truncate(arch, model).eval(), tag


def _missing(arch: str, cached: Path, url: str, reason: str) -> str:
    return (
        f"no pretrained {arch} weights: not in the torchvision cache ({cached}) and the "
        f"download failed ({reason}). Fetch {url} on a machine with internet and put it in "
        f"{cached.parent}, or pass --weights FILE; cbir never encodes with a random network"
    )
