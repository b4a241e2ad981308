"""Feature networks cut out of ImageNet classifiers: trunk, then the chosen pooling.

`feature_net(arch, classifier, pooling)` keeps only the modules the feature needs (the
ImageNet head is dropped), so a saved model holds the trunk's weights and nothing else.
`blocks()` lists a network's stages in order, for fine-tuning the last ones.
"""

from __future__ import annotations

import torch
from torch import nn

from features.backbones import Pooling, spec

GEM_P = 3.0


def gem(features: torch.Tensor, p: float = GEM_P, eps: float = 1e-6) -> torch.Tensor:
    """Generalised mean over the spatial grid: float (n, c, h, w) -> (n, c)."""
    return features.clamp(min=eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


class PooledCnn(nn.Module):
    """A convolutional trunk, average or GeM pooled, then an optional norm (ConvNeXt's)."""

    def __init__(self, stages: nn.Sequential, pooling: Pooling, norm: nn.Module | None = None):
        super().__init__()
        self.stages = stages
        self.pooling = Pooling(pooling)
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.stages(x)
        gem_pool = self.pooling is Pooling.GEM
        pooled = gem(features.float()) if gem_pool else features.mean(dim=(2, 3))
        if self.norm is not None:
            pooled = self.norm(pooled[:, :, None, None]).flatten(1)
        return pooled

    def blocks(self) -> list[nn.Module]:
        return list(self.stages)


class VggFc6(nn.Module):
    """VGG-19's convolutions, its adaptive pool, and fc6 + ReLU (4096-d)."""

    def __init__(self, vgg: nn.Module):
        super().__init__()
        self.features, self.avgpool = vgg.features, vgg.avgpool
        self.fc6 = vgg.classifier[:2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc6(torch.flatten(self.avgpool(self.features(x)), 1))

    def blocks(self) -> list[nn.Module]:
        return [*self.features, self.fc6]


class TorchvisionVit(nn.Module):
    """torchvision's ViT up to its final LayerNorm; the class token or the patch-token mean."""

    def __init__(self, vit: nn.Module, pooling: Pooling):
        super().__init__()
        self.vit = vit
        self.vit.heads = nn.Identity()
        self.pooling = Pooling(pooling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.vit._process_input(x)
        cls = self.vit.class_token.expand(tokens.shape[0], -1, -1)
        tokens = self.vit.encoder(torch.cat([cls, tokens], dim=1))
        return tokens[:, 0] if self.pooling is Pooling.CLS else tokens[:, 1:].mean(dim=1)

    def blocks(self) -> list[nn.Module]:
        return [*self.vit.encoder.layers, self.vit.encoder.ln]


class TimmVit(nn.Module):
    """A timm ViT (DINOv2) up to its final norm; the class token or the patch-token mean."""

    def __init__(self, vit: nn.Module, pooling: Pooling):
        super().__init__()
        vit.reset_classifier(0)
        self.vit = vit
        self.pooling = Pooling(pooling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.vit.forward_features(x)
        if self.pooling is Pooling.CLS:
            return tokens[:, 0]
        return tokens[:, self.vit.num_prefix_tokens :].mean(dim=1)

    def blocks(self) -> list[nn.Module]:
        return [*self.vit.blocks, self.vit.norm]


def feature_net(arch: str, classifier: nn.Module, pooling: Pooling) -> nn.Module:
    """The feature network of `arch` built around `classifier`'s modules (weights shared)."""
    backbone = spec(arch)
    if backbone.family == "vgg":
        return VggFc6(classifier)
    if backbone.family == "vit":
        cls = TorchvisionVit if backbone.source == "torchvision" else TimmVit
        return cls(classifier, pooling)
    if backbone.source != "torchvision":
        m = classifier  # timm EfficientNet: forward_features is exactly these modules
        stages = nn.Sequential(
            nn.Sequential(m.conv_stem, m.bn1), *m.blocks, nn.Sequential(m.conv_head, m.bn2)
        )
        return PooledCnn(stages, pooling)
    if arch.startswith("resnet"):
        c = classifier
        stem = nn.Sequential(c.conv1, c.bn1, c.relu, c.maxpool)
        return PooledCnn(nn.Sequential(stem, c.layer1, c.layer2, c.layer3, c.layer4), pooling)
    if arch.startswith("convnext"):
        return PooledCnn(nn.Sequential(*classifier.features), pooling, classifier.classifier[0])
    return PooledCnn(nn.Sequential(*classifier.features), pooling)  # efficientnet_b0
