"""The multi-view augmentation T of slcGAN (Noroozi, 2020): random resized crop, horizontal flip
and colour jitter, built from ``torchvision.transforms.v2``.

``MultiViewAugment`` maps a batch of images in [-1, 1] (B×C×H×W, on any device) to an augmented
view of the same shape. A v2 transform called on a batch tensor draws *one* set of random
parameters for the whole batch; a second view must differ per image, so the transform is
applied image by image (on the batch's device, no host round trip) and the results stacked.
Randomness comes from torch's global RNG, which the training loop checkpoints for exact resume.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence

import torch
from torch import nn
from torchvision.transforms import v2

from lsgan.config import ConfigError


@dataclass
class AugmentConfig:
    """Parameters of T (``method.augment.*``); set a jitter strength or ``flip`` to 0 to drop it."""

    crop_scale: List[float] = field(default_factory=lambda: [0.6, 1.0])   # area fraction kept by the crop
    crop_ratio: List[float] = field(default_factory=lambda: [0.75, 1.3333])  # aspect-ratio range of the crop
    flip: float = 0.5        # probability of a horizontal flip
    brightness: float = 0.4  # colour-jitter strengths (torchvision ColorJitter semantics)
    contrast: float = 0.4
    saturation: float = 0.4  # no effect on 1-channel images
    hue: float = 0.1         # in [0, 0.5]; no effect on 1-channel images


def check_augment_config(cfg, path: str = "method.augment") -> None:
    """Raise ConfigError (one line, naming the field) for values T cannot be built from."""
    lo_hi = [("crop_scale", cfg.crop_scale, "two numbers 0 < lo <= hi <= 1", lambda a, b: 0 < a <= b <= 1),
             ("crop_ratio", cfg.crop_ratio, "two numbers 0 < lo <= hi", lambda a, b: 0 < a <= b)]
    for name, value, what, ok in lo_hi:
        if len(value) != 2 or not ok(float(value[0]), float(value[1])):
            raise ConfigError(f"{path}.{name}={list(value)}: must be {what}")
    if not 0.0 <= float(cfg.flip) <= 1.0:
        raise ConfigError(f"{path}.flip={cfg.flip}: must be a probability in [0, 1]")
    for name in ("brightness", "contrast", "saturation"):
        if float(getattr(cfg, name)) < 0:
            raise ConfigError(f"{path}.{name}={getattr(cfg, name)}: must be >= 0")
    if not 0.0 <= float(cfg.hue) <= 0.5:
        raise ConfigError(f"{path}.hue={cfg.hue}: must be in [0, 0.5]")


def build_view_transform(cfg, size: int) -> v2.Compose:
    """The per-image v2 pipeline of T on float images in [0, 1] of side ``size``."""
    check_augment_config(cfg)
    steps: List[nn.Module] = [v2.RandomResizedCrop(size, scale=tuple(map(float, cfg.crop_scale)),
                                                   ratio=tuple(map(float, cfg.crop_ratio)), antialias=True)]
    if cfg.flip > 0:
        steps.append(v2.RandomHorizontalFlip(p=float(cfg.flip)))
    jitter = {k: float(getattr(cfg, k)) for k in ("brightness", "contrast", "saturation", "hue")}
    if any(v > 0 for v in jitter.values()):
        steps.append(v2.ColorJitter(**{k: (v if v > 0 else None) for k, v in jitter.items()}))
    return v2.Compose(steps)


class MultiViewAugment(nn.Module):
    """T(x): a random view of each image of a batch in [-1, 1] (B×C×H×W, square)."""

    def __init__(self, cfg, image_shape: Sequence[int]):
        super().__init__()
        shape = tuple(int(s) for s in image_shape)
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ConfigError(f"method.augment: the multi-view augmentation needs square images (C,H,W), "
                              f"got data of shape {shape}")
        self.size = shape[1]
        self.transform = build_view_transform(cfg, self.size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"x: expected a B×C×H×W image batch, got shape {tuple(x.shape)}")
        unit = (x.detach() + 1.0) / 2.0  # ColorJitter's clamps assume [0, 1] floats
        views = torch.stack([self.transform(img) for img in unit])
        return views.clamp(0.0, 1.0) * 2.0 - 1.0
