"""`cbir train cnn --tune N`: a small Ray Tune search over the optimizer's two main rates.

For SGD they are the learning rate and weight decay, for Muon the filters' and the
biases' learning rates. N trials sample both on a log scale around airbench's values; each
trains for a few epochs on the train part and reports validation accuracy after every
epoch, and the ASHA scheduler stops the weak ones early. Only the validation split carved
out of train is looked at. Returns the training configuration with the best trial's values.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cbir.config import Settings
from features.cnn_fit import carve_validation
from features.cnn_train import TrainConfig, train_network

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

    from indexing.arrays import split_arrays
    from indexing.datasets import open_dataset

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
