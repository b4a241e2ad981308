"""Muon for convolution filters: momentum SGD whose update is orthogonalised per filter bank.

Keller Jordan's optimizer (kellerjordan.github.io/posts/muon), as airbench94_muon uses it
for CIFAR-10: Nesterov momentum, each filter bank's weight renormalised to norm sqrt(out
channels) before the step, and the update replaced by an approximate orthogonalisation
(a quintic Newton-Schulz iteration in bfloat16) of the momentum viewed as an
(out, in * kh * kw) matrix. airbench reaches its accuracy in 8 epochs with it instead of ~10.

Hand-written because `torch.optim.Muon` (torch >= 2.9, newer than this project's minimum)
takes 2-D parameters only, and conv filters are 4-D; the iteration itself is a few matmuls.
"""

from __future__ import annotations

import torch

# The quintic's coefficients: chosen to maximise the slope at zero (Jordan, 2024).
_NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalise(matrix: torch.Tensor, steps: int = 3, eps: float = 1e-7) -> torch.Tensor:
    """Approximately U V^T of `matrix` = U S V^T (2-D), by Newton-Schulz in bfloat16.

    Singular values come out roughly in [0.5, 1.5] rather than exactly 1, which Jordan found
    trains as well; three steps suffice for these shapes.
    """
    if matrix.ndim != 2:
        raise ValueError(f"orthogonalise takes a 2-D matrix, got shape {tuple(matrix.shape)}")
    a, b, c = _NS_COEFFICIENTS
    x = matrix.to(torch.bfloat16)
    x = x / (x.norm() + eps)  # top singular value <= 1
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if tall else x).to(matrix.dtype)


class Muon(torch.optim.Optimizer):
    """Muon over parameters with a leading output dimension (conv filters, linear weights)."""

    def __init__(self, params, lr: float = 0.24, momentum: float = 0.6, nesterov: bool = True):
        if lr < 0 or not 0 <= momentum < 1:
            raise ValueError(f"Muon needs lr >= 0 and 0 <= momentum < 1, got {lr}, {momentum}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "nesterov": nesterov})

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad)
                buffer = state["momentum_buffer"]
                buffer.mul_(group["momentum"]).add_(p.grad)
                grad = p.grad.add(buffer, alpha=group["momentum"]) if group["nesterov"] else buffer
                p.mul_(len(p) ** 0.5 / p.norm().clamp_min(1e-12))  # fixed weight norm
                update = orthogonalise(grad.reshape(len(grad), -1)).view_as(grad)
                p.add_(update, alpha=-group["lr"])
        return loss
