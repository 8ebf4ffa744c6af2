"""The multi-view augmentation T of slcGAN (Noroozi, 2020) and of the clustering-consistency terms
of ClusterGAN and NEMGAN. Two kinds:

* ``crop_jitter`` (the paper's T, natural images): random resized crop, horizontal flip and colour
  jitter, built from ``torchvision.transforms.v2``;
* ``affine`` (digits and other shapes whose identity survives small deformations but not a mirror
  or a crop that cuts the stroke off): a random rotation, scale, shear and translation per image,
  as the augmentations of IIC / IMSAT on MNIST. It is computed for the whole batch at once
  (``affine_grid`` + ``grid_sample``), ~50x faster on a CPU than the per-image v2 pipeline.

``MultiViewAugment`` maps a batch of images in [-1, 1] (B×C×H×W, on any device) to an augmented
view of the same shape. A v2 transform called on a batch tensor draws *one* set of random
parameters for the whole batch; a second view must differ per image, so the transform is
applied image by image (on the batch's device, no host round trip) and the results stacked.
Randomness comes from torch's global RNG, which the training loop checkpoints for exact resume.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from lsgan.errors import ConfigError, check_choice

KINDS = ("crop_jitter", "affine")


@dataclass
class AugmentConfig:
    """Parameters of T (``method.augment.*``); set a jitter strength or ``flip`` to 0 to drop it."""

    kind: str = "crop_jitter"  # crop_jitter (the paper's T) | affine (digits: rotation, scale, shear, shift)
    crop_scale: List[float] = field(default_factory=lambda: [0.6, 1.0])   # area fraction kept by the crop
    crop_ratio: List[float] = field(default_factory=lambda: [0.75, 1.3333])  # aspect-ratio range of the crop
    flip: float = 0.5        # probability of a horizontal flip
    brightness: float = 0.4  # colour-jitter strengths (torchvision ColorJitter semantics)
    contrast: float = 0.4
    saturation: float = 0.4  # no effect on 1-channel images
    hue: float = 0.1         # in [0, 0.5]; no effect on 1-channel images
    rotation: float = 15.0   # affine only: max rotation, degrees
    scale: float = 0.15      # affine only: scale drawn in [1 - scale, 1 + scale]
    shear: float = 0.2       # affine only: max shear (x offset per unit of y)
    translate: float = 0.12  # affine only: max shift, fraction of the image side


def check_augment_config(cfg, path: str = "method.augment") -> None:
    """Raise ConfigError (one line, naming the field) for values T cannot be built from."""
    check_choice(f"{path}.kind", cfg.kind, KINDS)
    for name, hi in (("rotation", 180.0), ("scale", 0.99), ("shear", 2.0), ("translate", 0.5)):
        if not 0.0 <= float(getattr(cfg, name)) <= hi:
            raise ConfigError(f"{path}.{name}={getattr(cfg, name)}: must be in [0, {hi}]")
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
        self.kind = cfg.kind
        self.affine = {k: float(getattr(cfg, k)) for k in ("rotation", "scale", "shear", "translate")}
        self.transform = build_view_transform(cfg, self.size) if self.kind == "crop_jitter" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"x: expected a B×C×H×W image batch, got shape {tuple(x.shape)}")
        if self.kind == "affine":
            return random_affine(x.detach(), **self.affine)
        unit = (x.detach() + 1.0) / 2.0  # ColorJitter's clamps assume [0, 1] floats
        views = torch.stack([self.transform(img) for img in unit])
        return views.clamp(0.0, 1.0) * 2.0 - 1.0


def random_affine(x: torch.Tensor, rotation: float, scale: float, shear: float, translate: float) -> torch.Tensor:
    """A random affine view of each image of a batch in [-1, 1] (B×C×H×W), parameters drawn per
    image from torch's global RNG (on the CPU, so the draws do not depend on the device): rotation
    in ±``rotation`` degrees, scale in 1 ± ``scale``, shear in ±``shear``, shift in ±``translate``
    of the side. Pixels moved in from outside are background (−1)."""
    b = x.shape[0]

    def uniform(half_width: float) -> torch.Tensor:
        return (torch.rand(b) * 2 - 1) * half_width

    angle, zoom, sh = uniform(math.radians(rotation)), 1 + uniform(scale), uniform(shear)
    shift = torch.stack([uniform(2 * translate), uniform(2 * translate)], dim=1)  # affine_grid spans [-1, 1]
    cos, sin = angle.cos(), angle.sin()
    # The sampling grid maps output to input coordinates: rotation·shear, divided by the zoom.
    theta = torch.stack([torch.stack([cos, -sin + sh * cos, shift[:, 0]], dim=1),
                         torch.stack([sin, cos + sh * sin, shift[:, 1]], dim=1)], dim=1)
    theta[:, :, :2] /= zoom.view(b, 1, 1)
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # grid_sample pads with zeros: shift to [0, 2] so the padding is the background
    return F.grid_sample(x + 1.0, grid, align_corners=False, padding_mode="zeros") - 1.0
