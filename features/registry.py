"""Find extractor classes by method name, and load saved models whatever their method."""

from __future__ import annotations

import importlib
from pathlib import Path

from features.base import Extractor, ModelError, read_manifest

# Method name -> "module:Class"; imported lazily so BoVW-only processes never import torch.
METHODS: dict[str, str] = {
    "bovw": "features.bovw:BovwExtractor",
    "cnn": "features.cnn:CnnExtractor",
}


def extractor_class(name: str) -> type[Extractor]:
    """The class implementing method `name` (`bovw`, `cnn`)."""
    try:
        dotted = METHODS[name]
    except KeyError:
        raise ModelError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}") from None
    return _import_class(dotted)


def load_extractor(directory: Path | str) -> Extractor:
    """Load the model saved in `directory` with the class its manifest names."""
    manifest = read_manifest(Path(directory))
    return _import_class(manifest["class"]).load(directory)


def _import_class(dotted: str) -> type[Extractor]:
    module_name, _, attr = dotted.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"cannot import extractor {dotted} ({exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, Extractor)):
        raise ModelError(f"{dotted} is not a feature extractor")
    return cls
