"""benchmarks/cnn_validation.py: the translated views, the weighted encoding and αDBA's sum."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks import cnn_validation
from features.base import l2_normalise
from features.cnn import CnnExtractor
from features.cnn_net import CifarNet
from indexing.expansion import Expansion


def test_translated_views_are_one_pixel_shifts_with_reflect_padding():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    views = cnn_validation.translated_views(x)
    assert torch.equal(views[(1, 1)], x)
    # offset (0, 0) moves the content one pixel down-right; (2, 2) one pixel up-left
    assert torch.equal(views[(0, 0)][:, :, 1:, 1:], x[:, :, :-1, :-1])
    assert torch.equal(views[(2, 2)][:, :, :-1, :-1], x[:, :, 1:, 1:])
    assert torch.equal(views[(0, 0)][:, :, 0, 1:], x[:, :, 1, :-1])  # reflected top row


def test_weighted_views_reduce_to_the_extractors_encoding(monkeypatch):
    torch.manual_seed(0)
    widths = (8, 16, 16)
    extractor = CnnExtractor(widths=widths, center=False, batch_size=7)
    extractor.set_network(CifarNet(widths=widths))
    images = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    monkeypatch.setattr(cnn_validation, "TRANSLATE_WEIGHTS", {(1, 1): 0.5})
    got = cnn_validation.encode_translated(extractor, images)
    np.testing.assert_allclose(got, extractor.encode(list(images)), atol=1e-6)
    monkeypatch.setattr(cnn_validation, "TRANSLATE_WEIGHTS", {(1, 1): 0.5, (0, 0): 0.5})
    shifted = cnn_validation.encode_translated(extractor, images)
    assert np.abs(shifted - got).max() > 1e-3  # the shifted views do enter


@pytest.mark.parametrize("skip_self", [False, True])
def test_alpha_qe_sums_the_top_neighbours_weighted_by_cosine_power(skip_self):
    index = l2_normalise(np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32))
    queries = index if skip_self else l2_normalise(index[:2] + 0.1)
    got = cnn_validation.alpha_qe(queries, index, Expansion(2, 3.0), skip_self=skip_self)
    for i, q in enumerate(queries):
        sims = index @ q
        order = [j for j in np.argsort(-sims) if not (skip_self and j == i)][:2]
        expected = q + sum(max(sims[j], 0) ** 3 * index[j] for j in order)
        np.testing.assert_allclose(got[i], expected / np.linalg.norm(expected), atol=1e-5)
