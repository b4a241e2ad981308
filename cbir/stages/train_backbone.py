"""`cbir train cnn --arch NAME`: save a pretrained backbone, or fine-tune it on a labelled folder.

The backbone is fine-tuned on the dataset's train split (the validation split is carved out
of it; features/backbone_finetune.py) unless `epochs` is 0, which saves it as it is; the
model card records validation retrieval before and after. A folder gets the gentle recipe
(head, then the last two stages); CIFAR-10 the thumbnail recipe (`FinetuneConfig.cifar`:
every stage, whole 32-px image upscaled to `CIFAR_IMAGE_SIZE` px unless `image_size` says).
"""

from __future__ import annotations

import dataclasses
import json
import platform
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cbir.core.config import Settings
from cbir.core.progress import Stopwatch, progress
from evaluation.validation import validation_retrieval
from features.backbone_extractor import BackboneExtractor, resize_centre_crop
from features.backbone_finetune import FinetuneConfig, finetune
from indexing.arrays import SplitArrays, split_arrays
from indexing.dataset_kinds import open_dataset
from indexing.datasets import Dataset, DatasetKind

VALIDATION_IDS = "validation.json"
CIFAR_IMAGE_SIZE = 64  # px the 32-px thumbnails are upscaled to (docs/backbones.md, CIFAR-10 route)


def train_backbone(
    settings: Settings,
    out: Path,
    *,
    arch: str,
    dataset: str,
    data: str | None,
    weights_file: str | None,
    allow_download: bool,
    pooling: str | None,
    image_size: int | None,
    epochs: int | None,
    val_fraction: float,
    batch_size: int | None = None,
    command: str,
    echo: Callable[[str], None] = print,
    show_progress: bool = True,
) -> dict:
    """Save `arch`, fine-tuned on `dataset`'s train split unless `epochs` is 0; returns its card."""
    clock = Stopwatch()
    cifar = dataset == DatasetKind.CIFAR10.value
    if cifar and image_size is None:
        image_size = CIFAR_IMAGE_SIZE
    extractor = BackboneExtractor.pretrained(
        arch, weights_file, allow_download, pooling, image_size, full_frame=cifar
    )
    card: dict = {"command": command, "arch": arch, "pooling": extractor.pooling.value}
    card["weights"] = extractor.weights_tag
    if epochs != 0:
        card.update(
            _finetune(
                extractor,
                out,
                open_dataset(dataset, settings, data),
                _recipe(dataset, epochs, batch_size),
                val_fraction,
                echo,
                show_progress,
            )
        )
    else:
        card["trained"] = False
    extractor.save(out)
    card.update(
        dim=extractor.dim,
        fingerprint=extractor.fingerprint,
        image_size=extractor.prep.crop,
        resize=extractor.prep.resize,
        parameters=sum(p.numel() for p in extractor.network.parameters()),
        wall_seconds=round(clock.seconds, 1),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        python=platform.python_version(),
    )
    return card


def data_card(ds: Dataset, arrays: SplitArrays, train_rows, val_rows) -> dict:
    """The model card's lines about the data a network was trained on."""
    return {
        "dataset": ds.name,
        "data_fingerprint": ds.fingerprint,
        "classes": arrays.classes,
        "train_images": len(train_rows),
        "validation_images": len(val_rows),
        "skipped_files": len(arrays.skipped),
    }


def _recipe(dataset: str, epochs: int | None, batch_size: int | None) -> FinetuneConfig:
    """The fine-tuning recipe for a dataset kind, with the epochs and batch size asked for."""
    if dataset == DatasetKind.CIFAR10.value:
        config = FinetuneConfig.cifar(epochs)
    else:
        config = FinetuneConfig(epochs=4 if epochs is None else epochs)
    return dataclasses.replace(config, batch_size=batch_size) if batch_size else config


def _finetune(
    extractor: BackboneExtractor,
    out: Path,
    ds: Dataset,
    config: FinetuneConfig,
    val_fraction: float,
    echo: Callable[[str], None],
    show_progress: bool,
) -> dict:
    if ds.name == DatasetKind.CIFAR10.value:  # the packed 32-px array, upscaled once
        arrays = split_arrays(ds, "train", show_progress=show_progress)
        arrays.images = np.stack([resize_centre_crop(im, extractor.prep) for im in arrays.images])
    else:
        arrays = split_arrays(
            ds,
            "train",
            show_progress=show_progress,
            resize=lambda im: resize_centre_crop(im, extractor.prep),
        )

    bar = progress(total=None, desc="fine-tune", unit="step", disable=not show_progress)

    def on_step(step: int, total: int) -> None:
        bar.total = total
        bar.update(1)

    def on_epoch(stats: dict) -> None:
        line = (
            f"epoch {stats['epoch']}  loss {stats['loss']:.4f}  "
            + "  ".join(f"{k} {v:.4f}" for k, v in stats.items() if k.startswith(("map", "P_")))
            + f"  {stats['seconds']:.1f} s"
        )
        bar.write(line) if show_progress else echo(line)

    report = finetune(
        extractor,
        arrays.images,
        arrays.labels,
        validation_retrieval,
        config,
        val_fraction,
        on_epoch,
        on_step,
    )
    bar.close()
    if report.best_epoch:
        extractor.weights_tag = f"{extractor.weights_tag}+finetuned:{ds.fingerprint[:12]}"
    out.mkdir(parents=True, exist_ok=True)
    n_train = len(report.train_rows)
    val_ids = [arrays.doc_ids[i] for i in report.val_rows]
    (out / VALIDATION_IDS).write_text(
        json.dumps({"seed": config.seed, "fraction": val_fraction, "doc_ids": val_ids}) + "\n"
    )
    echo(
        f"validation {report.measure}: {report.baseline[report.measure]:.4f} pretrained -> "
        f"{report.best[report.measure]:.4f} fine-tuned (epoch {report.best_epoch}; 0 = kept as is)"
    )
    if report.final is not report.best:
        echo(
            "validation against all train rows: "
            + ", ".join(f"{k} {v:.4f}" for k, v in report.final.items())
        )
    return {
        "trained": report.best_epoch > 0,
        "weights": extractor.weights_tag,
        **data_card(ds, arrays, report.train_rows, report.val_rows),
        "finetune_config": config.__dict__,
        "validation_measure": report.measure,
        "validation_pretrained": report.baseline,
        "validation_retrieval": report.best,
        "validation_index_rows": min(config.val_index or n_train, n_train),
        "validation_retrieval_all_train": report.final,
        "validation_gain": report.gain,
        "best_epoch": report.best_epoch,
        "epochs": report.epochs,
        "train_seconds": round(report.seconds, 1),
    }
