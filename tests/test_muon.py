"""Muon: the Newton-Schulz step orthogonalises, and the optimizer keeps filter norms fixed."""

from __future__ import annotations

import pytest
import torch

from features.muon import Muon, orthogonalise


@pytest.mark.parametrize("shape", [(16, 144), (144, 16), (32, 32)])
def test_orthogonalise_flattens_the_spectrum_and_keeps_the_directions(shape):
    gen = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(shape[0], min(shape), generator=gen))
    v, _ = torch.linalg.qr(torch.randn(shape[1], min(shape), generator=gen))
    spread = torch.logspace(0, -2, min(shape))  # singular values from 1 down to 0.01
    matrix = u @ torch.diag(spread) @ v.T
    out = orthogonalise(matrix * 37.0)  # the scale of the input does not matter
    assert out.shape == matrix.shape and out.dtype == matrix.dtype
    singular = torch.linalg.svdvals(out.float())
    # Jordan's quintic leaves singular values roughly in (0.5, 1.5) instead of exactly 1;
    # the input's spread of 100x collapses to a few x
    top = singular[: min(shape) // 2]
    assert top.min() > 0.4 and singular.max() < 1.6
    # same singular vectors: U^T out V is nearly diagonal
    core = u.T @ out.float() @ v
    off = core - torch.diag(torch.diagonal(core))
    assert off.norm() < 0.1 * core.norm()


def test_orthogonalise_refuses_a_non_matrix():
    with pytest.raises(ValueError, match="2-D"):
        orthogonalise(torch.zeros(2, 3, 4))


def test_muon_steps_keep_each_filter_bank_at_norm_sqrt_out_and_descend():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 16, 3, bias=False)
    target = torch.nn.Conv2d(8, 16, 3, bias=False)
    with torch.no_grad():
        target.weight.mul_(4 / target.weight.norm())  # reachable at Muon's fixed norm
    opt = Muon(conv.parameters(), lr=0.05, momentum=0.6)
    x = torch.randn(64, 8, 10, 10)
    losses = []
    for _ in range(30):
        loss = (conv(x) - target(x).detach()).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # the weight is renormalised before each step, then moved by lr times an orthogonal update
    assert abs(conv.weight.norm().item() - 16**0.5) < 0.05 * 16**0.5 + 0.05 * 4
    assert losses[-1] < 0.5 * losses[0]


def test_muon_checks_its_arguments():
    with pytest.raises(ValueError, match="momentum"):
        Muon([torch.nn.Parameter(torch.zeros(2, 2))], lr=0.1, momentum=1.5)
