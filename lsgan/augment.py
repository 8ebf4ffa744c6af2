"""The multi-view augmentation T of slcGAN (Noroozi, 2020) and of the clustering-consistency terms
of ClusterGAN and NEMGAN. Two kinds:

* ``crop_jitter`` (the paper's T, natural images): random resized crop, horizontal flip and colour
  jitter, with torchvision's ``RandomResizedCrop`` / ``RandomHorizontalFlip`` / ``ColorJitter``
  distributions;
* ``affine`` (digits and other shapes whose identity survives small deformations but not a mirror
  or a crop that cuts the stroke off): a random rotation, scale, shear and translation per image,
  as the augmentations of IIC / IMSAT on MNIST.

``MultiViewAugment`` maps a batch of images in [-1, 1] (B×C×H×W, on any device) to an augmented
view of the same shape. A second view must differ per image, and a torchvision v2 transform called
on a batch draws one set of parameters for all of it; so both kinds draw their parameters per image
and transform the whole batch in one pass (``affine_grid`` + ``grid_sample``, then per-image colour
factors), on the batch's device. Randomness comes from torch's global RNG (drawn on the CPU, so the
draws do not depend on the device), which the training loop checkpoints for exact resume.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import math

import torch
import torch.nn.functional as F
from torch import nn

from lsgan.errors import ConfigError, check_choice

KINDS = ("crop_jitter", "affine")


@dataclass
class AugmentConfig:
    """Parameters of T (``method.clustering.augment.*``); set a jitter strength or ``flip`` to 0 to drop it."""

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


def check_augment_config(cfg, path: str = "method.clustering.augment") -> None:
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


class MultiViewAugment(nn.Module):
    """T(x): a random view of each image of a batch in [-1, 1] (B×C×H×W, square)."""

    def __init__(self, cfg, image_shape: Sequence[int]):
        super().__init__()
        check_augment_config(cfg)
        shape = tuple(int(s) for s in image_shape)
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ConfigError(f"method.clustering.augment: the multi-view augmentation needs square images (C,H,W), "
                              f"got data of shape {shape}")
        self.size = shape[1]
        self.kind = cfg.kind
        self.affine = {k: float(getattr(cfg, k)) for k in ("rotation", "scale", "shear", "translate")}
        self.crop = {"scale": tuple(map(float, cfg.crop_scale)), "ratio": tuple(map(float, cfg.crop_ratio)),
                     "flip": float(cfg.flip)}
        self.jitter = {k: float(getattr(cfg, k)) for k in ("brightness", "contrast", "saturation", "hue")}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"x: expected a B×C×H×W image batch, got shape {tuple(x.shape)}")
        if self.kind == "affine":
            return random_affine(x.detach(), **self.affine)
        unit = (random_resized_crop(x.detach(), **self.crop) + 1.0) / 2.0  # the jitter's clamps assume [0, 1]
        return color_jitter(unit, **self.jitter) * 2.0 - 1.0


def random_resized_crop(x: torch.Tensor, scale: Tuple[float, float], ratio: Tuple[float, float],
                        flip: float = 0.0) -> torch.Tensor:
    """torchvision's ``RandomResizedCrop`` (then ``RandomHorizontalFlip(flip)``) with a box drawn per
    image, for a whole B×C×H×W batch in one ``grid_sample``."""
    b, _, height, width = x.shape
    top, left, h, w = crop_boxes(b, height, width, scale, ratio)
    return resize_boxes(x, top, left, h, w, mirror=torch.rand(b) < flip)


def crop_boxes(b: int, height: int, width: int, scale: Tuple[float, float], ratio: Tuple[float, float]):
    """``b`` boxes (top, left, h, w; float tensors of integers) drawn as torchvision's
    ``RandomResizedCrop.get_params`` draws one: up to 10 tries of an area fraction in ``scale`` and a
    log-uniform aspect ratio in ``ratio`` whose rounded box fits, else the centre crop with its aspect
    ratio clamped to ``ratio``; then a uniform integer position."""
    tries = 10
    area = height * width * torch.empty(b, tries).uniform_(scale[0], scale[1])
    aspect = torch.exp(torch.empty(b, tries).uniform_(math.log(ratio[0]), math.log(ratio[1])))
    w_try, h_try = torch.sqrt(area * aspect).round(), torch.sqrt(area / aspect).round()
    fits = (w_try > 0) & (w_try <= width) & (h_try > 0) & (h_try <= height)
    ok = fits.any(1)
    first = fits.float().argmax(1, keepdim=True)  # the first try that fits
    fb_w, fb_h = float(width), float(height)
    if width / height < min(ratio):
        fb_h = float(round(width / min(ratio)))
    elif width / height > max(ratio):
        fb_w = float(round(height * max(ratio)))
    w = torch.where(ok, w_try.gather(1, first).squeeze(1), torch.tensor(fb_w))
    h = torch.where(ok, h_try.gather(1, first).squeeze(1), torch.tensor(fb_h))
    top = torch.where(ok, torch.floor(torch.rand(b) * (height - h + 1)), torch.div(height - h, 2, rounding_mode="floor"))
    left = torch.where(ok, torch.floor(torch.rand(b) * (width - w + 1)), torch.div(width - w, 2, rounding_mode="floor"))
    return top, left, h, w


def resize_boxes(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: torch.Tensor, w: torch.Tensor,
                 mirror: torch.Tensor) -> torch.Tensor:
    """Each image's box resized back to the image's H×W (bilinear, half-pixel centres, reading no pixel
    outside the box: torchvision's ``resized_crop`` of a box no larger than the image), mirrored
    left-right where ``mirror``; one ``grid_sample`` for the batch."""
    b, _, height, width = x.shape
    sign = torch.where(mirror, -1.0, 1.0)
    zero = torch.zeros(b)
    # grid_sample (align_corners=False) reads output coordinate o in [-1, 1] at o·w/W + (2·left + w)/W − 1
    theta = torch.stack([torch.stack([sign * w / width, zero, (2 * left + w) / width - 1], dim=1),
                         torch.stack([zero, h / height, (2 * top + h) / height - 1], dim=1)], dim=1)
    grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), list(x.shape), align_corners=False)
    # resize clamps at the box's edge pixels (its centres), not at the image's
    lo = torch.stack([(2 * left + 1) / width, (2 * top + 1) / height], dim=1) - 1
    hi = torch.stack([(2 * (left + w) - 1) / width, (2 * (top + h) - 1) / height], dim=1) - 1
    lo, hi = (t.to(device=x.device, dtype=x.dtype).view(b, 1, 1, 2) for t in (lo, hi))
    grid = torch.maximum(torch.minimum(grid, hi), lo)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of a B×3×H×W batch (torchvision's ``rgb_to_grayscale``), B×1×H×W."""
    return (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp(0.0, 1.0)


def _shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of each RGB image of a batch in [0, 1] by ``shift`` (a fraction of the circle)."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(maxc == r, ((g - b) / safe) % 6,
                      torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    hue = torch.where(delta > 0, hue, torch.zeros_like(hue))
    hue = (hue + shift.view(-1, 1, 1)) % 1.0
    sat = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    # HSV -> RGB: each channel n in (5, 3, 1) is v - v·s·clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6
    k = (torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1) + 6 * hue.unsqueeze(1)) % 6
    ramp = torch.minimum(k, 4 - k).clamp(0.0, 1.0)
    v = maxc.unsqueeze(1)
    return (v - v * sat.unsqueeze(1) * ramp).clamp(0.0, 1.0)


def color_jitter(x: torch.Tensor, brightness: float, contrast: float, saturation: float, hue: float) -> torch.Tensor:
    """torchvision's ``ColorJitter`` with factors and order drawn per image, for a B×C×H×W batch in
    [0, 1]: brightness, contrast and saturation factors uniform in [max(0, 1 − s), 1 + s], a hue shift
    uniform in ±``hue``, applied in a random order of the four; saturation and hue leave 1-channel
    images unchanged, as torchvision's do. A strength of 0 skips that adjustment."""
    b, channels = x.shape[0], x.shape[1]

    def factor(strength: float) -> torch.Tensor:
        return torch.empty(b).uniform_(max(0.0, 1.0 - strength), 1.0 + strength)

    draws = {"brightness": factor(brightness), "contrast": factor(contrast),
             "saturation": factor(saturation), "hue": torch.empty(b).uniform_(-hue, hue)}
    order = torch.argsort(torch.rand(b, 4), dim=1)  # a random permutation of the four per image
    names = ("brightness", "contrast", "saturation", "hue")
    strengths = dict(zip(names, (brightness, contrast, saturation, hue)))
    active = [n for n in names if strengths[n] > 0 and (channels == 3 or n in ("brightness", "contrast"))]
    draws = {k: v.to(device=x.device, dtype=x.dtype) for k, v in draws.items()}
    order = order.to(x.device)
    x = x.clone()
    for position in range(4):  # each image takes one adjustment per position: 4 passes over the batch
        for op in active:
            idx = (order[:, position] == names.index(op)).nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            part, f = x.index_select(0, idx), draws[op].index_select(0, idx)
            if op == "brightness":
                part = (part * f.view(-1, 1, 1, 1)).clamp(0.0, 1.0)
            elif op == "contrast":
                gray = _gray(part) if channels == 3 else part
                part = _blend(part, gray.mean(dim=(1, 2, 3), keepdim=True), f)
            elif op == "saturation":
                part = _blend(part, _gray(part), f)
            else:
                part = _shift_hue(part, f)
            x.index_copy_(0, idx, part)
    return x


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
