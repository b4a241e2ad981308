"""Fine-tuning a pretrained backbone on labelled images, judged by validation retrieval AP.

Two phases, as in transfer learning: a linear classifier head is first trained on the frozen
pooled features (cheap: features are computed once), then the last `tail_blocks` stages of
the backbone are trained with it at a lower rate (cross-entropy with label smoothing,
random horizontal flips, BatchNorm statistics kept frozen). The validation split is carved
out of the given images; after every epoch of the second phase, retrieval on it (held-out
queries against the train rows) is scored and the best state is kept, with early stopping.
If no epoch beats the untouched backbone, the backbone is kept as it was.
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


@dataclass
class FinetuneReport:
    train_rows: np.ndarray  # int64 rows of the given images trained on
    val_rows: np.ndarray  # int64 rows held out for validation
    measure: str  # the validation measure early stopping follows
    baseline: dict[str, float]  # validation retrieval of the untouched backbone
    best: dict[str, float]  # validation retrieval of the kept state
    best_epoch: int  # 0: the untouched backbone was kept
    epochs: list[dict] = field(default_factory=list)
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
) -> FinetuneReport:
    """Fine-tune `extractor` in place on uint8 (n, crop, crop, 3) images with int labels (n,)."""
    config = config or FinetuneConfig()
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    labels = np.asarray(labels, dtype=np.int64)
    train_rows, val_rows = carve_validation(labels, val_fraction, config.seed)

    def score() -> dict[str, float]:
        vectors = l2_normalise(_embed(extractor, crops))
        return score_retrieval(
            vectors[val_rows], labels[val_rows], vectors[train_rows], labels[train_rows]
        )

    baseline = score()
    measure = next(k for k in baseline if k.startswith("map_minRk"))
    network = extractor.network
    head = _train_head(extractor, crops[train_rows], labels[train_rows], config)
    tail = [p for block in network.blocks()[-config.tail_blocks :] for p in block.parameters()]
    report = FinetuneReport(train_rows, val_rows, measure, baseline, baseline, 0)
    if config.tail_blocks <= 0 or config.epochs <= 0:
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
    best_state, stale = copy.deepcopy(network.state_dict()), 0
    generator = torch.Generator().manual_seed(config.seed)
    x_train, y_train = crops[train_rows], torch.from_numpy(labels[train_rows])
    for epoch in range(1, config.epochs + 1):
        clock = time.perf_counter()
        network.eval()  # BatchNorm statistics stay the pretrained ones
        losses = []
        order = torch.randperm(len(x_train), generator=generator).numpy()
        for s in range(0, len(order), config.batch_size):
            rows = order[s : s + config.batch_size]
            x = extractor.to_input(x_train[rows])
            flip = torch.rand(len(rows), generator=generator) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(3), x)
            logits = head(network(x).float())
            loss = F.cross_entropy(
                logits, y_train[rows].to(x.device), label_smoothing=config.label_smoothing
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
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
    report.seconds = time.perf_counter() - started
    return report


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
