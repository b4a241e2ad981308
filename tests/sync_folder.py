"""A small photo folder, a toy model and a check that the index equals the folder (sync tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.synthetic import encode
from benchmarks.toy_extractors import ColourMomentsExtractor
from cbir.core.config import Settings
from cbir.stages.index import IndexReport, index_dataset
from features.imaging import ImageDecodeError, decode_image
from features.registry import load_extractor
from indexing.datasets import FolderDataset
from indexing.stores.urls import open_store

FIELD = "colour"


def picture(seed: int, side: int = 8) -> bytes:
    """A PNG of one colour per seed with a little noise: distinct vectors per seed."""
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 256, 3)
    pixels = np.clip(colour + rng.integers(-20, 21, (side, side, 3)), 0, 255).astype(np.uint8)
    return encode(Image.fromarray(pixels))


def write_folder(root: Path, n: int, start: int = 0) -> Path:
    """`n` pictures, spread over two sub-folders (labels), seeds start..start+n-1."""
    for seed in range(start, start + n):
        path = root / ("cats" if seed % 2 else "dogs") / f"{seed:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(picture(seed))
    return root


def fit_model(root: Path, where: Path) -> Path:
    images = [decode_image(picture(seed)) for seed in range(8)]
    return ColourMomentsExtractor().fit(images).save(where)


def sync(settings: Settings, folder: Path, model: Path, **kwargs) -> IndexReport:
    return index_dataset(
        settings,
        dataset="folder",
        data=str(folder),
        methods=(FIELD,),
        models={FIELD: model},
        ray=None,
        batch_size=kwargs.pop("batch_size", 4),
        show_progress=False,
        **kwargs,
    )


def assert_index_equals_folder(settings: Settings, folder: Path, model: Path) -> int:
    """Exactly one document per decodable file, each with the vector of its current bytes."""
    extractor = load_extractor(model)
    dataset = FolderDataset(folder)
    expected = {}
    for record in dataset.records():
        try:
            expected[record.doc_id] = decode_image(dataset.payload(record))
        except ImageDecodeError:
            continue
    with open_store(settings.store, settings) as store:
        ids = store.ids_with(FIELD)
        assert ids == set(expected), (
            f"missing {sorted(set(expected) - ids)[:5]}, extra {sorted(ids - set(expected))[:5]}"
        )
        assert store.count() == len(expected)
        order = sorted(expected)
        stored = store.get(order)
        wanted = extractor.encode([expected[d] for d in order])
        got = np.stack([stored[d].vectors[FIELD] for d in order]) if order else wanted
        np.testing.assert_allclose(got, wanted, atol=1e-5)
        for doc_id in order:
            record = dataset.record(doc_id)
            assert stored[doc_id].path == record.path and stored[doc_id].label == record.label
    return len(expected)
