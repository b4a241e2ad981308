"""Generated, indexed folders: for the tests, the web load check and the README screenshot.

`build_indexed_folder` is the one builder: a labelled folder of coloured images
(benchmarks/synthetic.py), two fields named like the real methods (`bovw`, `cnn`) so that
method choice, fusion and the side-by-side view work as on a real index, their models tiny
test extractors (benchmarks/toy_extractors.py), and the train split indexed in process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.synthetic import write_labelled_folder
from benchmarks.toy_extractors import (
    ColourMomentsExtractor,
    ThumbnailExtractor,
    WeightedMomentsExtractor,
)
from cbir.core.config import Settings
from cbir.stages.index import index_dataset
from features.base import Extractor
from indexing.datasets import FolderDataset

LABELS = ("red", "green", "blue", "yellow")
TRAIN_PER_LABEL = 20
TEST_PER_LABEL = 5


@dataclass(frozen=True)
class IndexedFolder:
    data: Path  # train/<label>/NNN.png, test/<label>/NNN.png
    models: dict[str, Path]  # method -> saved model directory
    settings: Settings


def build_indexed_folder(
    root: Path,
    settings: Settings | None = None,
    *,
    labels: Sequence[str] = LABELS,
    train: int = TRAIN_PER_LABEL,
    test: int = TEST_PER_LABEL,
    spread: float = 0.0,
    cnn: Extractor | None = None,
    models_dir: Path | None = None,
) -> IndexedFolder:
    """Write the folder under `root`/data, fit both models on its train split, index it.

    `cnn` defaults to a 4-px thumbnail; models go to `models_dir` (default `root`/models) and
    the index to `settings` (default CBIR_HOME = `root`/home, embedded store).
    """
    data = write_labelled_folder(
        root / "data", labels=labels, train=train, test=test, spread=spread
    )
    dataset = FolderDataset(data)
    images = [dataset.image(r) for r in dataset.records("train")]
    where = models_dir or root / "models"
    models = {
        "bovw": ColourMomentsExtractor().fit(images).save(where / "bovw"),
        "cnn": (cnn or ThumbnailExtractor(4)).fit(images).save(where / "cnn"),
    }
    settings = settings or Settings.resolve(env={}, home=root / "home")
    index_dataset(
        settings,
        dataset="folder",
        data=str(data),
        methods=tuple(models),
        models=models,
        ray=None,
        batch_size=100,
        show_progress=False,
    )
    return IndexedFolder(data, models, settings)


def build_web_index(root: Path) -> Settings:
    """The page's index: four colours, the `cnn` stand-in weighted towards contrast so that it
    ranks differently from `bovw`. Layout under `root`: data/, models/, home/ (CBIR_HOME)."""
    weighted = WeightedMomentsExtractor(weights=(1, 1, 1, 4, 4, 4))
    return build_indexed_folder(root, cnn=weighted).settings
