"""`cbir train cnn` as a function: train (or wrap a backbone), save, write the model card.

`--tune N` (`tune_cnn`) first runs a small Ray Tune search over the optimizer's two main
rates: for SGD the learning rate and weight decay, for Muon the filters' and the biases'
learning rates. N trials sample both on a log scale around airbench's values; each trains for
a few epochs on the train part and reports validation accuracy after every epoch, and the
ASHA scheduler stops the weak ones early. Only the validation split carved out of train is
looked at.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from cbir.core.config import Settings
from cbir.core.progress import progress, summary_line
from cbir.stages.train_backbone import data_card, train_backbone
from evaluation.validation import validation_retrieval
from features.cnn import CnnExtractor
from features.cnn_fit import carve_validation, fit_cifarnet
from features.cnn_train import EpochStats, TrainConfig, train_network
from indexing.arrays import split_arrays
from indexing.dataset_kinds import open_dataset

CARD_JSON = "model_card.json"
CARD_MD = "MODEL_CARD.md"
VALIDATION_IDS = "validation.json"


def train_cnn(
    settings: Settings,
    *,
    dataset: str = "cifar10",
    data: str | None = None,
    out_dir: str | Path | None = None,
    config: TrainConfig | None = None,
    val_fraction: float = 0.1,
    arch: str = "cifarnet",
    weights_file: str | None = None,
    allow_download: bool = True,
    show_progress: bool = True,
    echo=print,
    pooling: str | None = None,
    image_size: int | None = None,
    finetune_epochs: int | None = None,
    finetune_batch_size: int | None = None,
) -> Path:
    """Train the CIFAR network (or save or fine-tune a pretrained backbone) with its card.

    A backbone (`arch` other than cifarnet) is fine-tuned on a folder's labels unless
    `finetune_epochs` is 0 (cbir/stages/train_backbone.py).
    """
    out = Path(out_dir) if out_dir else settings.models_dir / "cnn"
    started = time.perf_counter()
    command = "cbir " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else "cbir"
    if arch != "cifarnet":
        card = train_backbone(
            settings,
            out,
            arch=arch,
            dataset=dataset,
            data=data,
            weights_file=weights_file,
            allow_download=allow_download,
            pooling=pooling,
            image_size=image_size,
            epochs=finetune_epochs,
            batch_size=finetune_batch_size,
            val_fraction=val_fraction,
            command=command,
            echo=echo,
            show_progress=show_progress,
        )
        _write_card(out, card)
        echo(f"saved {arch} ({card['weights']}, {card['pooling']} pooling) to {out}")
        return out

    ds = open_dataset(dataset, settings, data)
    arrays = split_arrays(ds, "train", side=32, show_progress=show_progress)
    config = config or TrainConfig()
    extractor = CnnExtractor(arch="cifarnet", widths=config.widths, num_classes=len(arrays.classes))

    bar = progress(total=None, desc="train cnn", unit="step", disable=not show_progress)

    def on_step(step: int, total: int) -> None:
        bar.total = total
        bar.update(1)

    def on_epoch(stats: EpochStats) -> None:
        line = (
            f"epoch {stats.epoch:>3}/{config.epochs}  loss {stats.loss:.4f}  "
            f"train acc {stats.train_accuracy:.4f}  val acc {stats.val_accuracy:.4f}  "
            f"{stats.seconds:.1f} s"
        )
        bar.write(line) if show_progress else echo(line)

    images = arrays.images[:] if hasattr(arrays.images, "shape") else arrays.images
    report = fit_cifarnet(
        extractor,
        images,
        arrays.labels,
        config,
        val_fraction,
        on_epoch=on_epoch,
        on_step=on_step,
        score_retrieval=validation_retrieval,
    )
    bar.close()
    extractor.save(out)
    wall = time.perf_counter() - started
    val_ids = [arrays.doc_ids[i] for i in report.val_rows]
    (out / VALIDATION_IDS).write_text(
        json.dumps({"seed": config.seed, "fraction": val_fraction, "doc_ids": val_ids}) + "\n"
    )
    card = {
        "command": command,
        "arch": "cifarnet",
        "dim": extractor.dim,
        "fingerprint": extractor.fingerprint,
        "trained": True,
        **data_card(ds, arrays, report.train_rows, report.val_rows),
        "config": config.to_json(),
        "epochs": [asdict(e) for e in report.epochs],
        "best_epoch": report.best_epoch,
        "validation_accuracy": report.val_accuracy,
        "batchnorm_recalibrated": report.recalibrated,
        "validation_accuracy_recalibrated": report.recalibrated_accuracy,
        "validation_retrieval": report.val_retrieval,
        "train_seconds": round(report.train_seconds, 1),
        "wall_seconds": round(wall, 1),
        "device": report.device,
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in extractor.network.parameters()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    _write_card(out, card)
    echo(
        f"validation: accuracy {report.val_accuracy:.4f}, "
        + ", ".join(f"{k} {v:.4f}" for k, v in report.val_retrieval.items())
    )
    echo(f"saved to {out}")
    echo(summary_line("train cnn", len(report.train_rows) * config.epochs, wall, "image-epochs"))
    return out


def _write_card(out: Path, card: dict) -> None:
    (out / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n")
    lines = ["# CNN model card", ""]
    for key, value in card.items():
        if key == "epochs":
            continue
        lines.append(f"- **{key}**: `{json.dumps(value)}`")
    if card.get("epochs"):  # one row per epoch, whatever it measured (training or fine-tuning)
        columns = list(card["epochs"][0])
        lines += ["", "| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)]
        for e in card["epochs"]:
            cells = [f"{e[c]:.4f}" if isinstance(e[c], float) else str(e[c]) for c in columns]
            lines.append("| " + " | ".join(cells) + " |")
    (out / CARD_MD).write_text("\n".join(lines) + "\n")


# The two TrainConfig fields each optimizer's search varies.
SEARCHED = {"sgd": ("lr", "weight_decay"), "muon": ("muon_lr", "bias_lr")}


def _trial(config: dict, images: np.ndarray, labels: np.ndarray, base: dict) -> None:
    from ray import tune

    train_rows, val_rows = carve_validation(labels, base["val_fraction"], base["seed"])
    settings = {k: v for k, v in base.items() if k != "val_fraction"}
    settings["widths"] = tuple(settings["widths"])
    trial = TrainConfig(**{**settings, **config})
    train_network(
        images[train_rows],
        labels[train_rows],
        images[val_rows],
        labels[val_rows],
        trial,
        num_classes=int(labels.max()) + 1,
        on_epoch=lambda s: tune.report({"val_accuracy": s.val_accuracy, "epoch": s.epoch}),
    )


def tune_cnn(
    settings: Settings,
    dataset: str,
    data: str | None,
    config: TrainConfig,
    val_fraction: float,
    trials: int,
    epochs: int,
    address: str | None = None,
) -> TrainConfig:
    """Search the optimizer's two rates with ASHA; returns `config` with the best values."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    searched = SEARCHED[config.optimizer]
    arrays = split_arrays(open_dataset(dataset, settings, data), "train", side=32)
    images = np.ascontiguousarray(arrays.images)
    base = {**config.to_json(), "epochs": epochs, "threads": 1, "val_fraction": val_fraction}
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(_trial, images=images, labels=arrays.labels, base=base),
            {"cpu": 1},
        ),
        param_space={
            name: tune.loguniform(getattr(config, name) / 3, getattr(config, name) * 3)
            for name in searched
        },
        tune_config=tune.TuneConfig(
            metric="val_accuracy",
            mode="max",
            num_samples=trials,
            scheduler=ASHAScheduler(max_t=epochs, grace_period=1, time_attr="epoch"),
        ),
        run_config=tune.RunConfig(storage_path=str((settings.home / "tune").resolve()), verbose=1),
    )
    best = tuner.fit().get_best_result()
    chosen = {name: best.config[name] for name in searched}
    values = ", ".join(f"{name} {value:.4g}" for name, value in chosen.items())
    print(
        f"tune: best of {trials} trials ({config.optimizer}): {values}, "
        f"validation accuracy {best.metrics['val_accuracy']:.4f}"
    )
    return dataclasses.replace(config, **chosen)
