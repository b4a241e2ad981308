"""Training the CIFAR embedding network: airbench's recipe, on CPU threads or a GPU.

Two optimizers: airbench94_muon's (the default: Muon on the conv filters, Nesterov SGD on
the biases and the classifier, every rate decaying linearly to zero) or airbench94's
(Nesterov SGD with scaled learning rates, BatchNorm biases at 64x, a linear warm-up then
linear decay, lookahead averaging of the weights). Both use label smoothing (0.2),
random 2-pixel translations with reflect padding and alternating horizontal flips, a
whitening stem whose bias trains for the first 3 epochs only, channels-last tensors and
bfloat16 autocast where the hardware has it; the final weights are also tried
with recomputed BatchNorm statistics. Every epoch reports loss, train and
validation accuracy, and seconds; the checkpoint with the best validation accuracy wins.

Hand-written because no maintained library packages this recipe; torch supplies the
SGD, the loss and the layers (Muon is in features/muon.py).
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from features.cnn_net import CIFAR_MEAN, CIFAR_STD, CifarNet, init_whitening


@dataclass
class TrainConfig:
    epochs: int = 16
    batch_size: int = 500
    lr: float = 11.5
    momentum: float = 0.85
    weight_decay: float = 0.0153
    bias_scaler: float = 64.0
    label_smoothing: float = 0.2
    cutout: int = 0  # side of a random square zeroed in each training image (0: none)
    whiten_bias_epochs: int = 3
    translate: int = 2
    warmup: float = 0.23
    lr_start: float = 0.2
    lr_end: float = 0.07
    lookahead: bool = True
    widths: tuple[int, ...] = (64, 256, 256)
    seed: int = 0
    threads: int | None = None  # CPU threads (default: all)
    bf16: bool = True  # bfloat16 autocast when the device supports it
    recalibrate_bn: bool = True  # try recomputed BatchNorm statistics for the final weights
    # "muon" (default): airbench94_muon's Muon on the conv filters, SGD on the biases and
    # the head, linear decay to zero, no lookahead (the muon_*, bias_lr and head_lr fields);
    # "sgd": airbench94's Nesterov SGD with lookahead (lr, weight_decay, warmup... above).
    optimizer: str = "muon"
    muon_lr: float = 0.24
    muon_momentum: float = 0.6
    bias_lr: float = 0.053
    head_lr: float = 0.67
    muon_weight_decay: float = 2e-6  # per image of a batch, on the biases and the head

    def to_json(self) -> dict:
        data = asdict(self)
        data["widths"] = list(self.widths)
        return data


@dataclass
class EpochStats:
    epoch: int
    loss: float
    train_accuracy: float
    val_accuracy: float
    seconds: float


@dataclass
class TrainResult:
    model: CifarNet
    epochs: list[EpochStats] = field(default_factory=list)
    best_epoch: int = 0
    val_accuracy: float = 0.0
    seconds: float = 0.0
    device: str = "cpu"
    recalibrated: bool = False  # the final weights use recomputed BatchNorm statistics
    recalibrated_accuracy: float | None = None  # validation accuracy with them


def pick_device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on a device that supports it; a no-op context otherwise."""
    usable = enabled and (device.type == "cpu" or torch.cuda.is_bf16_supported())
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=usable)


def to_input(
    images: np.ndarray,
    device: torch.device,
    mean: tuple[float, ...] = CIFAR_MEAN,
    std: tuple[float, ...] = CIFAR_STD,
) -> torch.Tensor:
    """uint8 (n, h, w, 3) RGB -> normalised float (n, 3, h, w), channels-last, on `device`."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    x = x.permute(0, 3, 1, 2).float().div_(255)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    return ((x - mean_t) / std_t).contiguous(memory_format=torch.channels_last)


def network_digest(network: torch.nn.Module) -> hashlib._Hash:
    """sha256 over a network's state dict, keys sorted (for model fingerprints)."""
    digest = hashlib.sha256()
    for key, tensor in sorted(network.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest


def translate_flip(
    x: torch.Tensor, pad: int, flip: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """Shift each image by up to `pad` pixels (reflect padding), then flip where `flip` is set."""
    n, _, h, w = x.shape
    if pad > 0:
        padded = F.pad(x, (pad,) * 4, mode="reflect")
        sy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        sx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        out = torch.empty_like(x)
        for dy in range(2 * pad + 1):  # group by shift: (2p+1)^2 slices, not n
            for dx in range(2 * pad + 1):
                idx = ((sy == dy) & (sx == dx)).nonzero().squeeze(1).to(x.device)
                if len(idx):
                    out[idx] = padded[idx, :, dy : dy + h, dx : dx + w]
        x = out
    return torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(3), x)


def _cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Zero a `size` x `size` square (clipped at the border) at a random centre of each image
    (DeVries and Taylor, 2017); zero is the mean pixel after normalisation."""
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), generator=gen)
    cx = torch.randint(0, w, (n, 1, 1), generator=gen)
    lo = size // 2
    ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    inside = (ys >= cy - lo) & (ys < cy - lo + size) & (xs >= cx - lo) & (xs < cx - lo + size)
    return x.masked_fill(inside.unsqueeze(1).to(x.device), 0.0)


def _sgd_optimisation(model: CifarNet, config: TrainConfig, bs: int, total: int):
    """airbench94: one Nesterov SGD, BatchNorm biases at `bias_scaler` times the rate,
    linear warm-up from `lr_start` then linear decay to `lr_end`."""
    # airbench's hyper-parameters are per 1024 "kilosteps"; its scaling, verbatim
    kilostep = 1024 * (1 + 1 / (1 - config.momentum))
    lr = config.lr / kilostep
    wd = config.weight_decay * bs / kilostep
    lr_bias = lr * config.bias_scaler
    named = list(model.named_parameters())
    biases = [p for name, p in named if _is_norm_bias(name) and p.requires_grad]
    others = [p for name, p in named if not _is_norm_bias(name) and name != "whiten.weight"]
    opt = torch.optim.SGD(
        [
            {"params": biases, "lr": lr_bias, "weight_decay": wd / lr_bias},
            {"params": others, "lr": lr, "weight_decay": wd / lr},
        ],
        momentum=config.momentum,
        nesterov=True,
    )
    base_lrs = [g["lr"] for g in opt.param_groups]
    warm = int(total * config.warmup)

    def set_lr(step: int) -> None:
        if step < warm:
            f = step / warm
            factor = config.lr_start * (1 - f) + f
        else:
            f = (step - warm) / max(1, total - warm)
            factor = (1 - f) + config.lr_end * f
        for group, base in zip(opt.param_groups, base_lrs, strict=True):
            group["lr"] = base * factor

    return [opt], set_lr


def _muon_optimisation(
    model: CifarNet, config: TrainConfig, bs: int, total: int, steps_per_epoch: int
):
    """airbench94_muon: Muon on the conv filters; Nesterov SGD on the whitening bias (its rate
    falling to zero over `whiten_bias_epochs`), the BatchNorm biases and the head, whose
    logits are scaled by 1 / width from a unit-variance start; all rates decay linearly to 0."""
    from features.muon import Muon

    with torch.no_grad():
        model.head.weight.mul_(1 / model.head.weight.std())
    model.logit_scale = 1 / model.embedding_dim
    wd = config.muon_weight_decay * bs
    named = list(model.named_parameters())
    filters = [p for name, p in named if p.ndim == 4 and name != "whiten.weight"]
    norm_biases = [p for name, p in named if _is_norm_bias(name) and p.requires_grad]
    groups = [
        {"params": [model.whiten.bias], "lr": config.bias_lr, "weight_decay": wd / config.bias_lr},
        {"params": norm_biases, "lr": config.bias_lr, "weight_decay": wd / config.bias_lr},
        {"params": [model.head.weight], "lr": config.head_lr, "weight_decay": wd / config.head_lr},
    ]
    sgd = torch.optim.SGD(groups, momentum=config.momentum, nesterov=True)
    # Muon's step has a fixed size, so an epoch moves the filters n / bs times that much: the
    # rate is airbench's for its batch of 2,000 images, scaled to this batch size.
    muon = Muon(filters, lr=config.muon_lr * bs / 2000, momentum=config.muon_momentum)
    optimizers = [sgd, muon]
    base_lrs = [[g["lr"] for g in opt.param_groups] for opt in optimizers]
    whiten_steps = max(1, config.whiten_bias_epochs * steps_per_epoch)

    def set_lr(step: int) -> None:
        for opt, bases in zip(optimizers, base_lrs, strict=True):
            for group, base in zip(opt.param_groups, bases, strict=True):
                group["lr"] = base * (1 - step / total)
        sgd.param_groups[0]["lr"] = base_lrs[0][0] * max(0.0, 1 - step / whiten_steps)

    return optimizers, set_lr


def _is_norm_bias(name: str) -> bool:
    return "bias" in name and not name.startswith("whiten")


def sample_rows(n: int, k: int, seed: int) -> torch.Tensor:
    """`k` of `n` rows drawn at random (seeded), in order.

    Image arrays come grouped by class (ImageFolder order), so their first rows are one or
    two classes only: statistics taken from a prefix describe airplanes, not the data.
    """
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=gen)[: min(k, n)].sort().values


@torch.no_grad()
def recalibrate_batchnorm(
    model: CifarNet,
    x: torch.Tensor,
    device: torch.device,
    bf16: bool,
    limit: int = 10_000,
    seed: int = 0,
) -> None:
    """Recompute BatchNorm statistics on `limit` random un-augmented train images (torch's
    `update_bn`).

    Lookahead averaging moves the weights away from the ones the running statistics were
    collected with (the reason SWA needs `update_bn`); one forward pass puts them back in step.
    """
    from torch.optim.swa_utils import update_bn

    rows = sample_rows(len(x), limit, seed).to(x.device)
    with autocast(device, bf16):
        update_bn((x[rows[s : s + 500]] for s in range(0, len(rows), 500)), model)
    model.eval()


@torch.no_grad()
def accuracy(
    model: CifarNet, x: torch.Tensor, y: torch.Tensor, device: torch.device, bf16: bool
) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(x), 1000):
        with autocast(device, bf16):
            logits = model(x[start : start + 1000])
        correct += (logits.argmax(1) == y[start : start + 1000]).sum().item()
    return correct / max(1, len(x))


def train_network(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    config: TrainConfig,
    num_classes: int,
    on_epoch: Callable[[EpochStats], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train a CifarNet; images uint8 (n, 32, 32, 3), labels int64 (n,)."""
    started = time.perf_counter()
    device = pick_device()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed + 1)

    xt, yt = to_input(train_images, device), torch.as_tensor(train_labels, device=device)
    xv, yv = to_input(val_images, device), torch.as_tensor(val_labels, device=device)
    model = CifarNet(widths=config.widths, num_classes=num_classes).to(device)
    model = model.to(memory_format=torch.channels_last)
    # fitted on 5,000 random train images: the arrays are grouped by class, a prefix is one class
    init_whitening(model.whiten, xt[sample_rows(len(xt), 5000, config.seed).to(device)])

    n, bs = len(yt), min(config.batch_size, len(yt))
    steps_per_epoch = max(1, n // bs)
    total = config.epochs * steps_per_epoch
    if config.optimizer == "muon":
        optimizers, set_lr = _muon_optimisation(model, config, bs, total, steps_per_epoch)
    elif config.optimizer == "sgd":
        optimizers, set_lr = _sgd_optimisation(model, config, bs, total)
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; choose sgd or muon")
    use_lookahead = config.lookahead and config.optimizer == "sgd"

    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum", label_smoothing=config.label_smoothing)
    averaged = copy.deepcopy(model.state_dict()) if use_lookahead else None
    decay = 0.95**5 * (torch.arange(total + 1) / total) ** 3

    def lookahead(weight: float) -> None:
        for key, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                averaged[key].lerp_(value, 1 - weight)
                value.copy_(averaged[key])

    flips = torch.rand(n, generator=gen) < 0.5
    result = TrainResult(model=model, device=str(device))
    best_state, best_acc, step = None, -1.0, 0
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        model.train()
        model.whiten.bias.requires_grad = epoch < config.whiten_bias_epochs
        order = torch.randperm(n, generator=gen)
        flip = flips ^ bool(epoch % 2)  # alternate: each image is seen both ways in two epochs
        loss_sum, correct, seen = 0.0, 0, 0
        for i in range(steps_per_epoch):
            idx = order[i * bs : (i + 1) * bs]
            xb = translate_flip(xt[idx.to(device)], config.translate, flip[idx], gen)
            if config.cutout > 0:
                xb = _cutout(xb, config.cutout, gen)
            yb = yt[idx.to(device)]
            set_lr(step)
            with autocast(device, config.bf16):
                logits = model(xb)
                loss = loss_fn(logits.float(), yb)
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            for opt in optimizers:
                opt.step()
            step += 1
            if averaged is not None and step % 5 == 0:
                lookahead(decay[step].item())
            loss_sum += loss.item()
            correct += (logits.argmax(1) == yb).sum().item()
            seen += len(yb)
            if on_step:
                on_step(step, total)
        if epoch == config.epochs - 1 and averaged is not None:
            lookahead(1.0)  # end on the averaged weights
        val_acc = accuracy(model, xv, yv, device, config.bf16)
        if epoch == config.epochs - 1 and config.recalibrate_bn:
            # Averaged weights with recomputed BatchNorm statistics are one more candidate,
            # kept only when validation prefers them (they rescue tiny datasets, and can
            # lose on large ones).
            kept = copy.deepcopy(model.state_dict())
            recalibrate_batchnorm(model, xt, device, config.bf16, seed=config.seed)
            recal_acc = accuracy(model, xv, yv, device, config.bf16)
            result.recalibrated_accuracy = recal_acc
            if recal_acc > val_acc:
                val_acc, result.recalibrated = recal_acc, True
            else:
                model.load_state_dict(kept)
        stats = EpochStats(
            epoch + 1, loss_sum / seen, correct / seen, val_acc, time.perf_counter() - t0
        )
        result.epochs.append(stats)
        if on_epoch:
            on_epoch(stats)
        if val_acc >= best_acc:
            best_acc, result.best_epoch = val_acc, epoch + 1
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    result.val_accuracy = best_acc
    result.seconds = time.perf_counter() - started
    return result
