"""Fine-tuning a pretrained backbone on labelled images, judged by validation retrieval AP.

Two phases, as in transfer learning: a linear classifier head is first trained on the frozen
pooled features (cheap: features are computed once), then the last `tail_blocks` stages of
the backbone are trained with it at a lower rate (cross-entropy with label smoothing,
random horizontal flips, BatchNorm statistics frozen unless the recipe learns them). The
validation split is carved out of the given images; after every epoch of the second phase,
retrieval on it (held-out queries against the train rows, or a seeded sample of them) is
scored and the best state is kept, with early stopping. If no epoch beats the untouched
backbone, the backbone is kept as it was. `FinetuneConfig.cifar()` is the recipe for CIFAR-10's 32-px thumbnails:
every stage trained with BatchNorm in training mode (a new domain: its statistics are
learnt), shifts, a decaying rate.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from features.backbone_extractor import BackboneExtractor
from features.base import l2_normalise
from features.cnn_fit import RetrievalScorer, carve_validation
from features.cnn_train import translate_flip


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 4  # per phase; the second stops early after `patience` epochs without gain
    tail_blocks: int = 2  # last stages trained in phase two (0: head only, vectors unchanged)
    head_lr: float = 1e-3
    tail_lr: float = 1e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    batch_size: int = 32
    patience: int = 2
    seed: int = 0
    train_batchnorm: bool = False  # BatchNorm in training mode (statistics learnt), else frozen
    head_images: int = 0  # train images the linear head is fitted on (0: all of them)
    translate: int = 0  # random shift in pixels (reflect padding) on top of the flips
    lr_decay: bool = False  # rates fall linearly to zero over the epochs
    val_index: int = 0  # per-epoch validation against this many train rows (0: all of them)

    @classmethod
    def cifar(cls, epochs: int | None = None) -> FinetuneConfig:
        """CIFAR-10 (upscaled thumbnails, far from ImageNet photos): all stages, BatchNorm learnt."""
        return cls(
            epochs=6 if epochs is None else epochs,
            tail_blocks=99,  # every stage
            head_lr=1e-3,
            tail_lr=1e-3,
            weight_decay=0.05,
            batch_size=128,
            patience=2,
            train_batchnorm=True,
            head_images=10_000,
            translate=4,
            lr_decay=True,
            val_index=5_000,
        )


@dataclass
class FinetuneReport:
    train_rows: np.ndarray  # int64 rows of the given images trained on
    val_rows: np.ndarray  # int64 rows held out for validation
    measure: str  # the validation measure early stopping follows
    baseline: dict[str, float]  # validation retrieval of the untouched backbone
    best: dict[str, float]  # validation retrieval of the kept state
    best_epoch: int  # 0: the untouched backbone was kept
    epochs: list[dict] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)  # kept state against all train rows
    seconds: float = 0.0

    @property
    def gain(self) -> float:
        return self.best[self.measure] - self.baseline[self.measure]


def finetune(
    extractor: BackboneExtractor,
    crops: np.ndarray,
    labels: np.ndarray,
    score_retrieval: RetrievalScorer,
    config: FinetuneConfig | None = None,
    val_fraction: float = 0.1,
    on_epoch: Callable[[dict], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> FinetuneReport:
    """Fine-tune `extractor` in place on uint8 (n, crop, crop, 3) images with int labels (n,).

    `on_step(step, total)` is called after every optimizer step of the second phase.
    """
    config = config or FinetuneConfig()
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    labels = np.asarray(labels, dtype=np.int64)
    train_rows, val_rows = carve_validation(labels, val_fraction, config.seed)

    index_rows = train_rows
    if 0 < config.val_index < len(train_rows):  # a seeded sample keeps each epoch's check cheap
        sample = np.random.default_rng(config.seed).choice(len(train_rows), config.val_index, False)
        index_rows = train_rows[np.sort(sample)]

    def score(index: np.ndarray = index_rows) -> dict[str, float]:
        rows = np.concatenate([val_rows, index])
        vectors = l2_normalise(_embed(extractor, crops[rows]))
        queries = vectors[: len(val_rows)]
        return score_retrieval(queries, labels[val_rows], vectors[len(val_rows) :], labels[index])

    baseline = score()
    measure = next(k for k in baseline if k.startswith("map_minRk"))
    network = extractor.network
    best_state, stale = copy.deepcopy(network.state_dict()), 0
    head_rows = _sample(train_rows, config.head_images, np.random.default_rng(config.seed + 1))
    head = _train_head(extractor, crops[head_rows], labels[head_rows], config)
    tail = [p for block in network.blocks()[-config.tail_blocks :] for p in block.parameters()]
    report = FinetuneReport(train_rows, val_rows, measure, baseline, baseline, 0)
    if config.tail_blocks <= 0 or config.epochs <= 0:
        network.load_state_dict(best_state)
        report.final = baseline
        report.seconds = time.perf_counter() - started
        return report
    for p in network.parameters():
        p.requires_grad_(False)
    for p in tail:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(
        [{"params": tail, "lr": config.tail_lr}, {"params": head.parameters()}],
        lr=config.head_lr / 10,
        weight_decay=config.weight_decay,
    )
    generator = torch.Generator().manual_seed(config.seed)
    y_train = torch.from_numpy(labels[train_rows])
    steps = config.epochs * -(-len(train_rows) // config.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1 - step / steps) if config.lr_decay else 1.0
    )
    for epoch in range(1, config.epochs + 1):
        clock = time.perf_counter()
        network.train(config.train_batchnorm)  # else BatchNorm keeps ImageNet's statistics
        losses = []
        order = torch.randperm(len(train_rows), generator=generator).numpy()
        for s in range(0, len(order), config.batch_size):
            rows = order[s : s + config.batch_size]
            x = extractor.to_input(crops[train_rows[rows]])
            flip = torch.rand(len(rows), generator=generator) < 0.5
            x = translate_flip(x, config.translate, flip, generator)
            logits = head(network(x).float())
            loss = F.cross_entropy(
                logits, y_train[rows].to(x.device), label_smoothing=config.label_smoothing
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            if on_step:
                on_step(schedule.last_epoch, steps)
        network.eval()
        scores = score()
        stats = {
            "epoch": epoch,
            "loss": float(np.mean(losses)),
            **scores,
            "seconds": round(time.perf_counter() - clock, 1),
        }
        report.epochs.append(stats)
        if on_epoch:
            on_epoch(stats)
        if scores[measure] > report.best[measure]:
            report.best, report.best_epoch, stale = scores, epoch, 0
            best_state = copy.deepcopy(network.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                break
    for p in network.parameters():
        p.requires_grad_(True)
    network.load_state_dict(best_state)
    extractor.set_network(network)
    extractor.num_classes = int(labels.max()) + 1
    report.final = score(train_rows) if len(index_rows) < len(train_rows) else report.best
    report.seconds = time.perf_counter() - started
    return report


def _sample(rows: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """`size` of `rows` drawn without replacement, in order (all of them when size is 0)."""
    if size <= 0 or size >= len(rows):
        return rows
    return np.sort(rng.choice(rows, size, replace=False))


def _embed(extractor: BackboneExtractor, crops: np.ndarray) -> np.ndarray:
    step = extractor.batch_size
    return np.concatenate(
        [extractor.embed(crops[s : s + step]) for s in range(0, len(crops), step)]
    )


def _train_head(
    extractor: BackboneExtractor, crops: np.ndarray, labels: np.ndarray, config: FinetuneConfig
) -> torch.nn.Linear:
    """A linear classifier on the frozen pooled features of the images and their mirrors."""
    features = torch.from_numpy(
        np.concatenate([_embed(extractor, crops), _embed(extractor, crops[:, :, ::-1])])
    ).to(extractor.device)
    targets = torch.from_numpy(np.concatenate([labels, labels])).to(extractor.device)
    head = torch.nn.Linear(features.shape[1], int(labels.max()) + 1).to(extractor.device)
    optimizer = torch.optim.AdamW(
        head.parameters(), lr=config.head_lr * 10, weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(config.seed)
    for _ in range(max(1, config.epochs) * 5):  # features are cached: epochs are cheap here
        order = torch.randperm(len(features), generator=generator)
        for s in range(0, len(order), config.batch_size):
            rows = order[s : s + config.batch_size].to(extractor.device)
            loss = F.cross_entropy(
                head(features[rows]), targets[rows], label_smoothing=config.label_smoothing
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return head
