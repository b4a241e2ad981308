"""Where each method's saved model lives, and loading them for a stage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from cbir.core.config import Settings
from features.base import MANIFEST, Extractor, ModelError
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
