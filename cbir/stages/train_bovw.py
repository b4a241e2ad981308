"""The `cbir train bovw` stage: fit BoVW on a seeded sample of the train split and save it.

The recipe follows the dataset unless given: CIFAR-10 keeps its measured 32-px recipe, any
other dataset (a folder of photos) gets the photo recipe (docs/bovw.md, "Photos").

Idempotent: when the model directory already holds a model with the same parameters,
fitted on the same sample of the same data (dataset fingerprint), it is kept as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cbir.core.config import Settings
from cbir.core.errors import DatasetError
from cbir.core.progress import Stopwatch, progress, summary_line
from features.base import MANIFEST, ModelError, read_manifest
from features.bovw import BovwExtractor
from features.bovw_config import BovwConfig, Recipe
from features.bovw_defaults import SizedDefaults, recipe_params, sized_defaults
from features.bovw_report import VocabularyReport
from features.imaging import ImageDecodeError
from indexing.dataset_kinds import open_dataset
from indexing.datasets import Dataset, DatasetKind, ImageRecord, index_side

TRAINING_FILE = "training.json"


@dataclass
class TrainResult:
    """What a train run did: where the model is, whether it was refitted, and its diagnostics."""

    model_dir: Path
    fingerprint: str
    skipped: bool  # True when an identical model was already there
    images: int
    seconds: float
    report: VocabularyReport | None = None
    unreadable: list[str] | None = None
    defaults: SizedDefaults | None = None
    recipe: str = Recipe.CIFAR.value

    @property
    def summary(self) -> str:
        if self.skipped:
            return f"train bovw: model {self.fingerprint} in {self.model_dir} is up to date"
        return summary_line("train bovw", self.images, self.seconds)


def train_bovw(
    settings: Settings,
    dataset: str = "cifar10",
    data: str | None = None,
    *,
    params: dict[str, Any] | None = None,
    images: int | None = None,
    out: Path | str | None = None,
    force: bool = False,
    show_progress: bool = True,
    recipe: Recipe | str | None = None,
) -> TrainResult:
    """Fit BoVW with `params` (BovwConfig fields) on at most `images` train images drawn
    with the model's seed, and save it to `out` (default `$CBIR_HOME/models/bovw`).

    Sample size, vocabulary size, k-means images and PCA dimension not given are chosen by
    the collection's size (features.bovw_defaults); `recipe` None picks it from the dataset
    (`default_recipe`). Never reads the test split.
    """
    clock = Stopwatch()
    if images is not None and images < 1:
        raise ModelError(f"--images must be at least 1, got {images}")
    model_dir = Path(out) if out else settings.models_dir / BovwExtractor.name
    ds = open_dataset(dataset, settings, data)
    records = index_side(ds)
    if not records:
        raise DatasetError(f"{ds.source} has no train images to fit BoVW on")
    recipe = Recipe(recipe) if recipe is not None else default_recipe(ds.name)
    sized = sized_defaults(len(records), recipe_params(recipe, params), images)
    extractor, images = BovwExtractor(**sized.params), sized.images
    training = {
        "dataset": ds.name,
        "source": ds.source,
        "data_fingerprint": ds.fingerprint,
        "train_images": len(records),
        "sample_images": min(images, len(records)),
    }
    existing = _existing(model_dir, extractor, training)
    if existing and not force:
        return TrainResult(
            model_dir, existing, True, 0, clock.seconds, defaults=sized, recipe=recipe.value
        )

    rng = np.random.default_rng(extractor.config.seed)
    chosen = [
        records[i]
        for i in np.sort(rng.choice(len(records), training["sample_images"], replace=False))
    ]
    pixels, kept, unreadable = _load(ds, chosen, extractor.input_side, show_progress)
    if not pixels:
        raise DatasetError(
            f"none of the {len(chosen):,} sampled train images of {ds.source} could be read"
        )
    extractor.fit(pixels, show_progress=show_progress)
    report = extractor.report
    report.doc_ids_without_descriptors = [kept[i].doc_id for i in report.images_without_descriptors]
    extractor.save(model_dir)
    report.write(model_dir)
    training["unreadable"] = unreadable
    training["defaults_by_size"] = sized.chosen  # written after the comparison: a record only
    training["recipe"] = recipe.value
    (model_dir / TRAINING_FILE).write_text(json.dumps(training, indent=2) + "\n")
    return TrainResult(
        model_dir,
        extractor.fingerprint,
        False,
        len(pixels),
        clock.seconds,
        report,
        unreadable,
        sized,
        recipe.value,
    )


def default_recipe(dataset: str) -> Recipe:
    """CIFAR-10 keeps the 32-px recipe it was measured with; photos get the photo recipe."""
    return Recipe.CIFAR if dataset == DatasetKind.CIFAR10.value else Recipe.PHOTO


def _existing(model_dir: Path, extractor: BovwExtractor, training: dict) -> str | None:
    """The fingerprint of an equivalent model already in `model_dir`, else None."""
    if not (model_dir / MANIFEST).is_file() or not (model_dir / TRAINING_FILE).is_file():
        return None
    try:
        manifest = read_manifest(model_dir)
        previous = json.loads((model_dir / TRAINING_FILE).read_text())
    except (ModelError, OSError, json.JSONDecodeError):
        return None
    if manifest.get("name") != extractor.name:
        return None
    try:
        same_params = BovwConfig(**manifest["params"]) == extractor.config
    except (ModelError, TypeError):  # written by another version of the parameters
        return None
    same_data = all(previous.get(k) == v for k, v in training.items())
    return manifest["fingerprint"] if same_params and same_data else None


def _load(
    ds: Dataset, records: list[ImageRecord], side: int | None, show_progress: bool
) -> tuple[list[np.ndarray], list[ImageRecord], list[str]]:
    pixels, kept, unreadable = [], [], []
    for record in progress(records, desc="load train images", disable=not show_progress):
        try:
            pixels.append(ds.image(record, min_side=side))  # photos reduced to the model's size
        except ImageDecodeError as exc:
            unreadable.append(f"{record.path}: {exc.reason}")
            continue
        kept.append(record)
    return pixels, kept, unreadable
