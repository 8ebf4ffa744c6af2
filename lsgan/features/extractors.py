"""The extractor registry: frozen networks mapping images in [-1, 1] to intermediate conv features.

- ``alexnet_random``: torchvision's AlexNet architecture with seeded random weights (nothing
  downloaded). Caron et al. (DeepCluster) observe that even an untrained AlexNet's conv maps
  are semi-clustered. Gray images are repeated to 3 channels, mapped to [0, 1] and normalised
  with the ImageNet mean/std (AlexNet's usual input statistics), then resized to
  ``input_size`` (default 64: the smallest convenient size at which every layer conv1..conv5
  keeps a spatial map, 15→7→3→3→3; 224 is AlexNet's native size but costs ~12× more).
  ``layer=convK`` is the ReLU output of the K-th convolution.
- ``rotnet``: a small conv net (4 blocks of two 3×3 conv-BN-ReLU, max-pool after blocks 1–3)
  trained to predict which of 0/90/180/270° an image was rotated by (Gidaris et al. 2018); no
  labels. ``layer=convK`` is block K's output (after its pooling).
- ``supervised``: the same backbone trained as a classifier on the training labels, with
  ``data.label_noise`` of them flipped (the robustness study).

Trained extractors need ``extractor.weights``, written by ``python -m lsgan.train_extractor``.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import os
import time
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lsgan.errors import ConfigError, check_choice, merge_node
from lsgan.io import atomic_torch_save
from lsgan.nets.perceptual import IMAGENET_MEAN, IMAGENET_STD


@dataclass
class ExtractorConfig:
    """The ``extractor`` config node (conf/extractor/*.yaml)."""

    name: str = "alexnet_random"   # alexnet_random | rotnet | supervised
    layer: str = "conv3"           # intermediate layer whose feature map is used: alexnet conv1..conv5, others conv1..conv4
    weights: Optional[str] = None  # checkpoint of a trained extractor (rotnet / supervised; required for those)
    seed: int = 0                  # alexnet_random: seed of the random weights
    input_size: Optional[int] = None  # images are resized to this before E; None = the extractor's own (alexnet 64, trained: their training size)
    pool: Optional[int] = None     # average-pool the feature map to pool×pool before flattening (None = full map)
    pca_dim: Optional[int] = None  # project features onto their top principal components (fit on the training split)
    cache: bool = True             # precompute training-split features into the on-disk cache (False: compute in memory)
    cache_dir: Optional[str] = None  # feature cache folder; None = $LSGAN_CACHE/features or ~/.cache/lsgan/features
    batch_size: int = 256          # images per forward pass when extracting
    device: Optional[str] = None   # extraction device; None = cuda when available, else cpu
    width: int = 16                # rotnet / supervised backbone: channels of the first block (then 2w, 4w, 4w)
    train_steps: int = 1000        # lsgan.train_extractor: optimizer steps
    train_batch_size: int = 64     # lsgan.train_extractor: images per step (rotnet: ×4 rotations)
    train_lr: float = 1e-3         # lsgan.train_extractor: Adam learning rate


EXTRACTORS = ("alexnet_random", "rotnet", "supervised")
TRAINED = ("rotnet", "supervised")
ALEXNET_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
BACKBONE_LAYERS = ("conv1", "conv2", "conv3", "conv4")
ALEXNET_INPUT_SIZE = 64
# index just past the ReLU of each conv in torchvision's AlexNet.features
_ALEXNET_CUT = {"conv1": 2, "conv2": 5, "conv3": 8, "conv4": 10, "conv5": 12}
CHECKPOINT_FORMAT = "lsgan-extractor-v1"


def layers_of(name: str) -> Tuple[str, ...]:
    check_choice("extractor", name, EXTRACTORS)
    return ALEXNET_LAYERS if name == "alexnet_random" else BACKBONE_LAYERS


def extractor_config(node):
    """``node`` (a DictConfig, dict or ExtractorConfig) merged onto the ExtractorConfig schema: every field present."""
    return merge_node(ExtractorConfig, node, "extractor")


def check_extractor_config(ext, need_weights: bool = True) -> None:
    """One-line ConfigError for a bad extractor node (called by build_extractor and by methods' check_config).

    ``need_weights=False`` skips the weights-file requirement (lsgan.train_extractor writes it).
    """
    check_choice("extractor", ext.name, EXTRACTORS)
    check_choice(f"extractor.layer (for extractor={ext.name})", ext.layer, layers_of(ext.name))
    for field, low in (("input_size", 8), ("pool", 1), ("pca_dim", 1)):
        value = getattr(ext, field)
        if value is not None and int(value) < low:
            raise ConfigError(f"extractor.{field}={value}: must be >= {low} or null")
    if int(ext.batch_size) < 1:
        raise ConfigError(f"extractor.batch_size={ext.batch_size}: must be >= 1")
    if need_weights and ext.name in TRAINED and not ext.weights:  # "auto": lsgan.run trains or finds it
        raise ConfigError(f"extractor.weights is required for extractor={ext.name}: train one with "
                          f"`python -m lsgan.train_extractor extractor={ext.name} dataset=<D>` and pass the printed path")


# --------------------------------------------------------------------------- nets
class ConvBackbone(nn.Module):
    """Blocks conv1..conv4 of widths w, 2w, 4w, 4w; each two conv3×3-BN-ReLU, max-pool after 1–3."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        widths = (width, 2 * width, 4 * width, 4 * width)
        blocks, cin = [], in_channels
        for i, cout in enumerate(widths):
            layers = [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                      nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
            blocks.append(nn.Sequential(*layers))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = cin

    def forward(self, x: torch.Tensor, upto: int = 4) -> torch.Tensor:
        for block in self.blocks[:upto]:
            x = block(x)
        return x


class BackboneClassifier(nn.Module):
    """Backbone → global average pool → linear head (rotation classes for rotnet, labels for supervised)."""

    def __init__(self, in_channels: int, width: int, num_outputs: int):
        super().__init__()
        self.backbone = ConvBackbone(in_channels, width)
        self.head = nn.Linear(self.backbone.out_channels, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x).mean(dim=(2, 3)))


class FeatureExtractor(nn.Module):
    """Frozen E: images in [-1, 1], B×C×H×W → B×out_dim float features.

    Pipeline: channel adaptation (gray→3 by repetition, RGB→gray by averaging) → resize to
    ``input_size`` → input normalisation → trunk (up to the chosen layer) → optional adaptive
    average pool to pool×pool → flatten → optional PCA projection.
    It stays in eval mode even when a parent module calls ``.train()``: BatchNorm statistics of
    a trained extractor must not drift while a GAN trains around it.
    """

    def __init__(self, trunk: nn.Module, in_shape: Sequence[int], needs_channels: int, input_size: int,
                 pool: Optional[int], mean: Sequence[float], std: Sequence[float], description: Dict[str, object]):
        super().__init__()
        self.trunk = trunk
        self.in_shape = tuple(int(s) for s in in_shape)
        self.needs_channels = int(needs_channels)
        self.input_size = int(input_size)
        self.pool = None if pool is None else int(pool)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.projection: Optional[nn.Module] = None
        self.description = dict(description)
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)
        self.map_shape = self._probe_map_shape()
        self.raw_dim = int(torch.tensor(self.map_shape).prod())

    @property
    def out_dim(self) -> int:
        return self.raw_dim if self.projection is None else int(self.projection.out_dim)

    def train(self, mode: bool = True) -> "FeatureExtractor":
        return super().train(False)

    def set_projection(self, projection: Optional[nn.Module]) -> None:
        """Append (or remove, with None) a fitted projection such as :class:`lsgan.features.PCAProjection`."""
        if projection is not None:
            for p in projection.parameters():
                p.requires_grad_(False)
        self.projection = projection

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"images: expected B×C×H×W, got shape {tuple(x.shape)}")
        x = x.float()
        if x.shape[1] != self.needs_channels:
            if x.shape[1] == 1 and self.needs_channels == 3:
                x = x.expand(-1, 3, -1, -1)
            elif x.shape[1] == 3 and self.needs_channels == 1:
                x = x.mean(dim=1, keepdim=True)
            else:
                raise ValueError(f"images: {x.shape[1]} channels; this extractor reads 1 or 3")
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.input_size)
        return ((x + 1) * 0.5 - self.mean) / self.std

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(self._prepare(x))
        if self.pool is not None:
            h = F.adaptive_avg_pool2d(h, self.pool)
        return h

    def raw_features(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened feature map, before any projection (what the cache stores)."""
        return self.feature_map(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.raw_features(x)
        return h if self.projection is None else self.projection(h)

    def _probe_map_shape(self) -> Tuple[int, ...]:
        try:
            with torch.no_grad():
                return tuple(self.feature_map(torch.zeros(1, *self.in_shape)).shape[1:])
        except RuntimeError as exc:
            raise ConfigError(f"extractor.input_size={self.input_size}: too small for extractor="
                              f"{self.description.get('name')} layer={self.description.get('layer')} "
                              f"({' '.join(str(exc).split())[:120]})") from None


# --------------------------------------------------------------------------- registry
def build_extractor(ext, in_shape: Sequence[int]) -> FeatureExtractor:
    """The frozen extractor ``ext`` (an ExtractorConfig / its DictConfig) for images of shape ``in_shape`` (C, H, W)."""
    ext = extractor_config(ext)
    check_extractor_config(ext)
    in_shape = tuple(int(s) for s in in_shape)
    if len(in_shape) != 3 or in_shape[0] not in (1, 3):
        raise ConfigError(f"extractor={ext.name}: needs image data (C×H×W with C in 1, 3), got shape {in_shape}")
    if ext.name == "alexnet_random":
        return _alexnet_random(ext, in_shape)
    return _trained(ext, in_shape)


@functools.lru_cache(maxsize=4)
def _alexnet_conv_stack(seed: int) -> nn.Sequential:
    """torchvision AlexNet's conv stack with seeded random weights (memoised: building the whole
    net initialises its 58M-parameter classifier, about a second; callers get deep copies)."""
    from torchvision.models import alexnet

    with torch.random.fork_rng(devices=[]):  # seeded weights without moving the caller's RNG stream
        torch.manual_seed(int(seed))
        return alexnet(weights=None).features


def _alexnet_random(ext, in_shape) -> FeatureExtractor:
    trunk = copy.deepcopy(_alexnet_conv_stack(int(ext.seed))[:_ALEXNET_CUT[ext.layer]])
    size = int(ext.input_size or ALEXNET_INPUT_SIZE)
    return FeatureExtractor(trunk, in_shape, 3, size, ext.pool, IMAGENET_MEAN, IMAGENET_STD,
                            {"name": ext.name, "layer": ext.layer, "seed": int(ext.seed)})


def _trained(ext, in_shape) -> FeatureExtractor:
    ckpt = load_extractor_checkpoint(ext.weights)
    if ckpt["kind"] != ext.name:
        raise ConfigError(f"extractor.weights={ext.weights}: is a {ckpt['kind']} checkpoint, "
                          f"but extractor={ext.name}; use extractor={ckpt['kind']}")
    net = BackboneClassifier(int(ckpt["in_channels"]), int(ckpt["width"]), int(ckpt["num_outputs"]))
    net.load_state_dict(ckpt["state_dict"])
    upto = BACKBONE_LAYERS.index(ext.layer) + 1
    trunk = nn.Sequential(*net.backbone.blocks[:upto])
    size = int(ext.input_size or ckpt["input_size"])
    # trained nets read [-1, 1] directly: undo _prepare's [0, 1] shift with mean 0.5, std 0.5
    c = int(ckpt["in_channels"])
    return FeatureExtractor(trunk, in_shape, c, size, ext.pool, (0.5,) * c, (0.5,) * c,
                            {"name": ext.name, "layer": ext.layer, "weights": os.path.abspath(str(ext.weights))})


# --------------------------------------------------------------------------- weights
def weights_digest(module: nn.Module) -> str:
    """sha256 over a module's state (names, dtypes, shapes, bytes): the cache's weights hash."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_extractor_checkpoint(path: str, kind: str, net: BackboneClassifier, in_channels: int, width: int,
                              input_size: int, num_outputs: int, meta: Dict[str, object]) -> str:
    """Write a trained extractor atomically (temporary file + os.replace); returns the absolute path."""
    path = os.path.abspath(os.path.expanduser(str(path)))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, "kind": kind, "in_channels": int(in_channels), "width": int(width),
               "input_size": int(input_size), "num_outputs": int(num_outputs),
               "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}, "meta": dict(meta)}
    atomic_torch_save(payload, path)
    return path


def load_extractor_checkpoint(path) -> dict:
    path = os.path.expanduser(str(path))
    if not os.path.isfile(path):
        raise ConfigError(f"extractor.weights={path}: no such file; train one with "
                          f"`python -m lsgan.train_extractor extractor=<rotnet|supervised> dataset=<D>`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise ConfigError(f"extractor.weights={path}: cannot read it ({' '.join(str(exc).split())[:120]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"extractor.weights={path}: not an lsgan extractor checkpoint "
                          f"(write one with `python -m lsgan.train_extractor`)")
    return ckpt


# --------------------------------------------------------------------------- a whole split
def extract_split_features(extractor: FeatureExtractor, source, batch_size: int = 256, device=None, out=None,
                           label: str = "", verbose: bool = True, raw: bool = True):
    """Features of every example of ``source`` (an ArrayDataset or a float/uint8 image tensor), in batches.

    ``raw`` skips the projection (what the cache stores). ``out`` (an N×d array or tensor) is
    filled in place (the cache passes its memory-mapped file); otherwise a new tensor is returned.
    """
    n = len(source)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    extractor.to(device)
    fn = extractor.raw_features if raw else extractor
    dim = extractor.raw_dim if raw else extractor.out_dim
    if out is None:
        out = torch.empty(n, dim, dtype=torch.float32)
    to_out = (lambda f: f.numpy()) if isinstance(out, np.ndarray) else (lambda f: f)  # noqa: E731
    say = (lambda m: print(f"[lsgan.features] {m}", flush=True)) if verbose else (lambda m: None)  # noqa: E731
    desc = extractor.description
    say(f"extracting {label or 'images'}: {n} images -> {dim}-d features ({desc['name']} {desc['layer']}, "
        f"{extractor.input_size}px, pool={extractor.pool}) on {device}")
    t0 = last = time.perf_counter()
    with torch.no_grad():
        for start in range(0, n, int(batch_size)):
            stop = min(n, start + int(batch_size))
            x = _images(source, start, stop).to(device)
            out[start:stop] = to_out(fn(x).float().cpu())
            now = time.perf_counter()
            if now - last > 10 or stop == n:  # progress every 10 s, and at the end
                last = now
                say(f"  {stop}/{n} ({100 * stop // max(n, 1)}%) {stop / max(now - t0, 1e-9):.0f} img/s")
    return out


def _images(source, start: int, stop: int) -> torch.Tensor:
    if hasattr(source, "images"):
        return source.images(range(start, stop))
    x = torch.as_tensor(source[start:stop])
    return x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x.float()
