"""Every backbone family builds, encodes deterministically and round-trips with weights the
test writes (a random network saved by torchvision or timm itself: no download)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from features.backbone_extractor import BackboneExtractor
from features.backbones import BACKBONES, pooling_of
from features.base import ModelError
from features.registry import load_extractor

# (arch, pooling, crop side): small crops keep CPU tests fast; torchvision's ViT is fixed at 224.
FAST = [
    ("resnet18", "gem", 64),
    ("efficientnet_lite0", "gem", 64),
    ("dinov2_vits14", "mean", 56),
]
SLOW = [
    ("efficientnet_b0", "avg", 64),
    ("resnet50", "avg", 64),
    ("convnext_tiny", "gem", 64),
    ("vit_b_16", "cls", 224),
    ("dinov2_vitb14", "cls", 56),
]


def random_weights(arch: str, path):
    """The state dict of a randomly initialised network, as its library builds it.

    BatchNorm statistics are set from one batch of noise: with the initial ones (mean 0,
    variance 1) a random EfficientNet's activations shrink to 1e-14 by its last stage.
    """
    torch.manual_seed(0)
    spec = BACKBONES[arch]
    if spec.source == "torchvision":
        import torchvision

        model = torchvision.models.get_model(arch, weights=None)
    else:
        import timm

        model = timm.create_model(spec.timm_name.split(".")[0], pretrained=False)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if norms:
        for norm in norms:
            norm.momentum = None  # running statistics = this batch's
        with torch.no_grad():
            model.train()(torch.randn(8, 3, 64, 64))
    torch.save(model.state_dict(), path)
    return path


def images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (48 + 8 * i, 80, 3), dtype=np.uint8) for i in range(n)]


def check_family(arch, pooling, side, tmp_path):
    weights = random_weights(arch, tmp_path / f"{arch}.pth")
    model = BackboneExtractor.pretrained(arch, weights, pooling=pooling, image_size=side)
    assert model.weights_tag == f"file:{arch}.pth" and model.prep.crop == side
    vectors = model.encode(images())
    assert vectors.shape == (3, BACKBONES[arch].dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    np.testing.assert_array_equal(model.encode(images()), vectors)
    again = load_extractor(model.save(tmp_path / "saved"))
    assert again.fingerprint == model.fingerprint and again.pooling == model.pooling
    np.testing.assert_array_equal(again.encode(images()), vectors)
    return model


@pytest.mark.parametrize(("arch", "pooling", "side"), FAST)
def test_family_builds_encodes_and_round_trips(arch, pooling, side, tmp_path):
    check_family(arch, pooling, side, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "pooling", "side"), SLOW)
def test_large_family_builds_encodes_and_round_trips(arch, pooling, side, tmp_path):
    check_family(arch, pooling, side, tmp_path)


def test_poolings_differ_and_fingerprints_follow_them():
    avg = BackboneExtractor.pretrained("efficientnet_lite0", pooling="avg", image_size=64)
    gem = BackboneExtractor.pretrained("efficientnet_lite0", pooling="gem", image_size=64)
    assert avg.fingerprint != gem.fingerprint
    assert not np.allclose(avg.encode(images(1)), gem.encode(images(1)))


def test_bad_choices_are_refused_clearly(tmp_path):
    with pytest.raises(ModelError, match="vgg19 has no pooling 'gem'; choose one of: fc6"):
        pooling_of("vgg19", "gem")
    with pytest.raises(ModelError, match="unknown backbone 'resnet1'"):
        BackboneExtractor.pretrained("resnet1")
    weights = random_weights("resnet18", tmp_path / "r.pth")
    with pytest.raises(ModelError, match="do not fit timm's dinov2_vits14"):
        BackboneExtractor.pretrained("dinov2_vits14", weights)
    with pytest.raises(ModelError, match="cbir train cnn --arch resnet18 --dataset folder"):
        BackboneExtractor("resnet18").fit(images(1))


def test_timm_weights_missing_offline_say_where_to_put_them(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(ModelError) as err:
        BackboneExtractor.pretrained("dinov2_vits14", allow_download=False)
    message = str(err.value)
    assert "timm/vit_small_patch14_dinov2.lvd142m" in message and "--weights FILE" in message
    assert str(tmp_path / "hf" / "hub") in message


@pytest.mark.slow
def test_ray_batch_encoding_equals_in_process_for_every_fast_family(tmp_path):
    from benchmarks.synthetic import write_labelled_folder
    from indexing.datasets import FolderDataset
    from indexing.encoding import RayOptions, encode_batches

    dirs = {}
    for arch, pooling, side in FAST:
        weights = random_weights(arch, tmp_path / f"{arch}.pth")
        model = BackboneExtractor.pretrained(arch, weights, pooling=pooling, image_size=side)
        dirs[arch] = model.save(tmp_path / arch)
    ds = FolderDataset(write_labelled_folder(tmp_path / "data", train=3, test=1))

    def vectors(ray):
        rows = {}
        for batch in encode_batches(
            ds.iter_batches(batch_size=4), dirs, ray=ray, show_progress=False
        ):
            for i, record in enumerate(batch.records):
                rows[record.doc_id] = {arch: v[i] for arch, v in batch.vectors.items()}
        return rows

    # Same thread count on both sides: oneDNN's CPU kernels split work by thread count, and a
    # random EfficientNet-B0 amplifies those last-bit differences (1e-2; real weights: 1e-6).
    threads = torch.get_num_threads()
    local = vectors(None)
    on_ray = vectors(RayOptions(workers=1, threads_per_worker=threads))
    assert on_ray.keys() == local.keys() and len(local) == 12
    for doc_id, row in local.items():
        for arch in dirs:
            np.testing.assert_array_equal(on_ray[doc_id][arch], row[arch], err_msg=arch)
