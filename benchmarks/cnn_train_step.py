"""Training throughput of the CIFAR network, eager against `torch.compile`, in one run.

One training step is what `cbir train cnn` does per batch: bfloat16 autocast forward,
label-smoothed cross-entropy, backward, an SGD step, on channels-last random images (the
speed does not depend on the pixels). The reference is eager mode, timed in the same run;
the compiled model's first step (the compilation) is reported apart and left out of its
median. Answers whether compiling would buy more epochs within the 20-minute budget:

    python -m benchmarks.cnn_train_step --steps 8
"""

from __future__ import annotations

import argparse
import statistics

import torch

from cbir.core.progress import Stopwatch, progress
from features.cnn_net import CifarNet
from features.cnn_train import autocast, pick_device


def time_steps(model, batch: int, steps: int, desc: str) -> tuple[float, list[float]]:
    """(seconds of the first step, seconds of each of the next `steps`)."""
    device = next(model.parameters()).device
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum", label_smoothing=0.2)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)

    def step() -> float:
        clock = Stopwatch()
        with autocast(device, True):
            loss = loss_fn(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return clock.seconds

    first = step()
    return first, [step() for _ in progress(range(steps), desc=desc, unit="step")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per mode (default 8)")
    parser.add_argument("--batch-size", type=int, default=500, help="images per step (default 500)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device()
    results = {}
    for mode in ("eager", "compiled"):
        torch.manual_seed(0)
        net = CifarNet().to(device).to(memory_format=torch.channels_last)
        model = torch.compile(net) if mode == "compiled" else net
        first, times = time_steps(model, args.batch_size, args.steps, mode)
        median = statistics.median(times)
        results[mode] = median
        print(
            f"{mode}: first step {first:.1f} s, median step {median:.3f} s "
            f"({args.batch_size / median:,.0f} images/s over {args.steps} steps)"
        )
    ratio = results["compiled"] / results["eager"]
    print(
        f"cnn train step on {device.type} ({torch.get_num_threads()} threads): compiled takes "
        f"{ratio:.2f}x the eager time ({args.batch_size / results['eager']:,.0f} vs "
        f"{args.batch_size / results['compiled']:,.0f} images/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
