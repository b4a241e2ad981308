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


def test_alpha_dba_copes_with_duplicates_that_outrank_a_row():
    # three identical rows: ties rank the larger row first, so row 0 is not in its own top 2
    index = np.array([[1, 0], [1, 0], [1, 0], [0.6, 0.8]], np.float32)
    got = cnn_validation.alpha_qe(index, index, Expansion(1, 3.0), skip_self=True)
    np.testing.assert_allclose(got[:3], index[:3], atol=1e-6)  # q + 1^3 * (its duplicate)
    expected = index[3] + 0.6**3 * index[0]  # its nearest other row has cosine 0.6
    np.testing.assert_allclose(got[3], expected / np.linalg.norm(expected), atol=1e-6)
