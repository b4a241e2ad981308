"""A small generated index for the web tests, the load check and the README screenshot.

Two fields named like the real methods (`bovw`, `cnn`) so that the page's method choice,
fusion and side-by-side view work as on a real index; their models are tiny test
extractors (6-d colour moments, the second weighted towards contrast so it ranks differently).
"""

from __future__ import annotations

from pathlib import Path

from cbir.config import Settings
from indexing.datasets import FolderDataset
from indexing.pipeline import index_dataset
from tests.extractors import ColourMomentsExtractor, WeightedMomentsExtractor
from tests.synthetic import write_labelled_folder

LABELS = ("red", "green", "blue", "yellow")
TRAIN_PER_LABEL = 20
TEST_PER_LABEL = 5


def build_web_index(root: Path) -> Settings:
    """Write the labelled folder, fit both models and index its train split; returns the settings.

    Layout under `root`: data/ (train/<label>/NNN.png, test/<label>/NNN.png), models/, home/
    (CBIR_HOME, whose index/ is the embedded store).
    """
    data = write_labelled_folder(
        root / "data", labels=LABELS, train=TRAIN_PER_LABEL, test=TEST_PER_LABEL
    )
    dataset = FolderDataset(data)
    train = [dataset.image(r) for r in dataset.records("train")]
    bovw = ColourMomentsExtractor().fit(train).save(root / "models" / "bovw")
    cnn = (
        WeightedMomentsExtractor(weights=(1, 1, 1, 4, 4, 4))
        .fit(train)
        .save(root / "models" / "cnn")
    )
    settings = Settings.resolve(env={}, home=root / "home")
    index_dataset(
        settings,
        dataset="folder",
        data=str(data),
        methods=("bovw", "cnn"),
        models={"bovw": bovw, "cnn": cnn},
        ray=None,
        batch_size=100,
        show_progress=False,
    )
    return settings
