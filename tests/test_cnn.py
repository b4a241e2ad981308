"""The CNN extractor: training learns, encoding is deterministic and flip-invariant, saved
models round-trip, torchvision backbones load only real weights, Ray equals in-process."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from benchmarks.synthetic import write_labelled_folder
from cbir.core.config import Settings
from cbir.stages.train_cnn import CARD_JSON, VALIDATION_IDS, train_cnn
from features.base import ModelError
from features.cnn import CnnExtractor
from features.cnn_fit import carve_validation
from features.cnn_train import (
    TrainConfig,
    _cutout,
    recalibrate_batchnorm,
    sample_rows,
    train_network,
)
from features.registry import load_extractor
from indexing.arrays import split_arrays
from indexing.datasets import FolderDataset
from indexing.encoding import RayOptions, encode_batches

LABELS = ("red", "green", "blue", "yellow")
TINY = TrainConfig(epochs=10, batch_size=16, widths=(16, 32, 32), threads=1, optimizer="sgd")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny network trained by the `cbir train cnn` stage on four generated classes."""
    root = tmp_path_factory.mktemp("cnn")
    data = write_labelled_folder(root / "data", labels=LABELS, train=60, test=6)
    settings = Settings.resolve(env={}, home=root / "home")
    out = train_cnn(
        settings,
        dataset="folder",
        data=str(data),
        config=TINY,
        show_progress=False,
        echo=lambda line: None,
    )
    return out, data


def test_training_learns_well_above_chance(trained):
    out, _ = trained
    card = json.loads((out / CARD_JSON).read_text())
    assert card["trained"] is True
    assert len(card["epochs"]) == TINY.epochs
    assert card["validation_accuracy"] >= 0.75  # chance is 0.25
    assert card["validation_retrieval"]["P_10"] >= 0.75
    assert card["train_images"] + card["validation_images"] == 4 * 60
    assert card["data_fingerprint"] and card["config"]["widths"] == [16, 32, 32]


def test_validation_ids_are_the_held_out_train_images(trained):
    out, data = trained
    ids = json.loads((out / VALIDATION_IDS).read_text())["doc_ids"]
    train_ids = {r.doc_id for r in FolderDataset(data).records("train")}
    assert len(ids) == 24 and set(ids) <= train_ids  # 10% of each label's 60


@pytest.mark.parametrize("optimizer", ["sgd", "muon"])
def test_both_optimizers_learn_and_muon_keeps_filter_norms(trained, optimizer):
    _, data = trained
    arrays = split_arrays(FolderDataset(data), "train", show_progress=False)
    train, val = carve_validation(arrays.labels, 0.1, seed=0)
    # airbench94_muon's bias rate is set for 256-wide blocks and 2,000-image batches; the
    # tiny net on flat generated colours needs a gentler one (the default diverges here)
    config = replace(TINY, optimizer=optimizer, bias_lr=0.001)
    result = train_network(
        arrays.images[train],
        arrays.labels[train],
        arrays.images[val],
        arrays.labels[val],
        config,
        num_classes=len(LABELS),
    )
    assert result.val_accuracy >= 0.75  # chance is 0.25
    assert result.epochs[-1].loss < result.epochs[0].loss
    if optimizer == "muon":  # Muon renormalises every conv filter bank to sqrt(out channels)
        conv = result.model.blocks[2].conv2.weight
        assert abs(conv.norm().item() - len(conv) ** 0.5) < 0.2 * len(conv) ** 0.5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("side", [31, 15, 7, 8])
def test_inference_pooling_equals_the_layer_to_the_bit(dtype, side):
    from features.cnn_net import max_pool_2x2

    x = torch.randn(3, 5, side, side, generator=torch.Generator().manual_seed(side)).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(max_pool_2x2(x), torch.nn.MaxPool2d(2)(x))


def test_unknown_optimizer_is_refused():
    images = np.zeros((8, 32, 32, 3), np.uint8)
    labels = np.arange(8) % 2
    with pytest.raises(ValueError, match="choose sgd or muon"):
        train_network(images, labels, images, labels, replace(TINY, optimizer="adam"), 2)


def test_carve_validation_is_balanced_seeded_and_disjoint():
    labels = np.repeat(np.arange(3), [10, 20, 30])
    train, val = carve_validation(labels, 0.1, seed=3)
    assert np.bincount(labels[val]).tolist() == [1, 2, 3]
    assert not set(train) & set(val) and len(train) + len(val) == 60
    assert np.array_equal(val, carve_validation(labels, 0.1, seed=3)[1])


def test_encoding_is_deterministic_normalised_and_flip_invariant(trained):
    out, data = trained
    model = load_extractor(out)
    ds = FolderDataset(data)
    images = [ds.image(r) for r in ds.records("test")][:8]
    first, second = model.encode(images), model.encode(images)
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.float32 and first.shape == (8, 32)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    mirrored = model.encode([np.ascontiguousarray(im[:, ::-1]) for im in images])
    np.testing.assert_allclose(mirrored, first, atol=2e-2)  # test-time flip averages both


def test_save_load_round_trip_keeps_fingerprint_and_vectors(trained, tmp_path):
    out, data = trained
    model = load_extractor(out)
    again = load_extractor(model.save(tmp_path / "copy"))
    assert again.fingerprint == model.fingerprint
    image = FolderDataset(data).image(FolderDataset(data).records("test")[0])
    np.testing.assert_array_equal(again.encode([image]), model.encode([image]))


def test_tampered_weights_are_refused(trained, tmp_path):
    out, _ = trained
    copy = load_extractor(out).save(tmp_path / "m")
    state = torch.load(copy / "network.pt", weights_only=True)
    state["head.weight"] += 1
    torch.save(state, copy / "network.pt")
    with pytest.raises(ModelError, match="fingerprint"):
        load_extractor(copy)


def test_backbone_loads_a_weights_file_the_test_wrote(tmp_path):
    import torchvision

    weights = tmp_path / "resnet18.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    model = CnnExtractor.from_backbone("resnet18", weights, image_size=64)
    assert model.weights_tag == "file:resnet18.pth" and model.dim == 512
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(2)]
    vectors = model.encode(images)
    assert vectors.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    again = load_extractor(model.save(tmp_path / "saved"))
    assert again.fingerprint == model.fingerprint
    np.testing.assert_array_equal(again.encode(images), vectors)


def test_backbone_refuses_weights_of_another_network(tmp_path):
    import torchvision

    weights = tmp_path / "wrong.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    with pytest.raises(ModelError, match="do not fit torchvision's resnet50"):
        CnnExtractor.from_backbone("resnet50", weights)


def test_missing_backbone_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ModelError) as err:
        CnnExtractor.from_backbone("vgg19", allow_download=False)
    message = str(err.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message
    assert "--weights FILE" in message and "random network" in message


def test_cli_reports_a_missing_weights_file(cli, tmp_path):
    code, _, err = cli(
        "train", "cnn", "--arch", "resnet18", "--weights", str(tmp_path / "none.pth")
    )
    assert code == 2
    assert "none.pth does not exist" in err


def test_fit_refuses_backbones_and_unlabelled_data():
    with pytest.raises(ModelError, match=re.escape("--arch resnet18 [--weights FILE]")):
        CnnExtractor(arch="resnet18").fit([np.zeros((32, 32, 3), np.uint8)])
    with pytest.raises(ModelError, match="needs labels"):
        CnnExtractor().fit([np.zeros((32, 32, 3), np.uint8)])


@pytest.mark.slow
def test_ray_batch_encoding_equals_in_process(trained):
    out, data = trained
    ds = FolderDataset(data)

    def vectors(ray):
        rows = {}
        for batch in encode_batches(
            ds.iter_batches(batch_size=16), {"cnn": out}, ray=ray, show_progress=False
        ):
            for record, row in zip(batch.records, batch.vectors["cnn"], strict=True):
                rows[record.doc_id] = row
        return rows

    local, on_ray = vectors(None), vectors(RayOptions(workers=2))
    assert on_ray.keys() == local.keys() and len(local) == 4 * 66
    for doc_id, row in local.items():
        np.testing.assert_array_equal(on_ray[doc_id], row)


@pytest.mark.slow
def test_tune_searches_on_validation_and_returns_a_config(trained, tmp_path):
    from cbir.stages.train_cnn import tune_cnn

    _, data = trained
    settings = Settings.resolve(env={}, home=tmp_path / "home")
    best = tune_cnn(settings, "folder", str(data), TINY, 0.1, trials=2, epochs=2)
    assert isinstance(best, TrainConfig)
    assert TINY.lr / 3 <= best.lr <= TINY.lr * 3
    assert TINY.weight_decay / 3 <= best.weight_decay <= TINY.weight_decay * 3
    assert best.epochs == TINY.epochs  # only lr and weight decay are searched
    assert (tmp_path / "home" / "tune").is_dir()


def test_statistics_are_taken_from_rows_spread_over_the_classes():
    """Image arrays come grouped by class: a prefix would describe one class only (the
    whitening stem and recomputed BatchNorm statistics once came from airplanes alone)."""
    labels = np.repeat(np.arange(10), 100)  # class-sorted, as ImageFolder gives them
    rows = sample_rows(len(labels), 100, seed=0)
    assert len(rows) == 100 == len(set(rows.tolist())) and rows.tolist() == sorted(rows.tolist())
    assert len(set(labels[rows.numpy()].tolist())) == 10
    assert torch.equal(rows, sample_rows(len(labels), 100, seed=0))
    assert sample_rows(5, 100, seed=0).tolist() == [0, 1, 2, 3, 4]

    torch.manual_seed(0)
    dark, bright = torch.zeros(200, 3, 16, 16), torch.full((200, 3, 16, 16), 2.0)
    x = torch.cat([dark, bright]) + 0.1 * torch.randn(400, 3, 16, 16)  # two "classes", sorted
    from features.cnn_net import CifarNet

    model = CifarNet(widths=(4, 4, 4))
    cpu = torch.device("cpu")

    def first_mean(images: torch.Tensor, limit: int) -> torch.Tensor:
        recalibrate_batchnorm(model, images, cpu, bf16=False, limit=limit)
        return model.blocks[0].norm1.running_mean.clone()

    everything = first_mean(x, limit=400)
    sampled = first_mean(x, limit=100)
    prefix = first_mean(x[:100], limit=100)  # what a prefix of 100 rows would give
    assert (sampled - everything).abs().max() < 0.5 * (prefix - everything).abs().max()


def test_cli_training_options_reach_the_model_card(cli, trained, tmp_path):
    _, data = trained
    out = tmp_path / "cli-cnn"
    code, _, err = cli(
        "train", "cnn", "--dataset", "folder", "--data", data, "--out", out, "--epochs", "1",
        "--batch-size", "16", "--widths", "8,16,16", "--threads", "1", "--optimizer", "sgd",
        "--translate", "0", "--label-smoothing", "0.3", "--cutout", "4", "--seed", "7",
    )  # fmt: skip
    assert code == 0, err
    config = json.loads((out / CARD_JSON).read_text())["config"]
    assert (config["label_smoothing"], config["translate"], config["optimizer"]) == (0.3, 0, "sgd")
    assert (config["epochs"], config["seed"], config["widths"]) == (1, 7, [8, 16, 16])
    assert config["cutout"] == 4


def test_cutout_zeroes_one_clipped_square_per_image():
    x = torch.ones(64, 3, 16, 16)
    y = _cutout(x, 6, torch.Generator().manual_seed(0))
    zero = (y == 0).all(1)  # (n, h, w): every channel zeroed together
    assert torch.equal((y == 0).any(1), zero)
    counts = zero.sum((1, 2))
    assert counts.max() == 36 and (counts > 0).all()  # whole squares inside, clipped at edges
    for mask in zero:
        rows, cols = mask.any(1).nonzero().squeeze(1), mask.any(0).nonzero().squeeze(1)
        assert mask.sum() == len(rows) * len(cols)  # one rectangle
        assert len(rows) <= 6 and len(cols) <= 6
        assert rows.tolist() == list(range(rows[0], rows[-1] + 1))
    assert (y[~zero.unsqueeze(1).expand_as(y)] == 1).all()
    assert torch.equal(y, _cutout(x, 6, torch.Generator().manual_seed(0)))
