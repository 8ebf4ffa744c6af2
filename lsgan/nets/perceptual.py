"""Frozen VGG16 feature maps for perceptual losses (Johnson et al., 2016), laid out as torchvision's
``vgg16().features`` so its ImageNet weights load unchanged (used by ClusterGAN's perceptual term)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from lsgan.errors import ConfigError

# VGG16 "D" configuration (Simonyan & Zisserman, 2015) laid out exactly as torchvision's
# ``vgg16().features`` (conv, ReLU, ..., max-pool), so its state_dict keys load unchanged.
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
VGG16_LAYERS = {  # ReLU outputs by name -> index in vgg16().features
    "relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8, "relu3_1": 11, "relu3_2": 13, "relu3_3": 15,
    "relu4_1": 18, "relu4_2": 20, "relu4_3": 22, "relu5_1": 25, "relu5_2": 27, "relu5_3": 29,
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FeatureMaps(nn.Module):
    """Frozen feature maps φ_l(x) of chosen layers of a sequential conv net (VGG16 features).

    Images in [-1, 1] are mapped to [0, 1], gray is repeated to RGB and ImageNet normalisation
    applied, because that is the input the VGG weights were trained on. The net is cut after the
    deepest layer used, so unused VGG blocks cost nothing.
    """

    def __init__(self, features: nn.Sequential, layer_ids: Sequence[int], imagenet_input: bool = True):
        super().__init__()
        self.layer_ids = [int(i) for i in layer_ids]
        self.body = nn.Sequential(*list(features.children())[:max(self.layer_ids) + 1])
        for m in self.body.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = False  # a captured ReLU output must not be overwritten later
        self.body.requires_grad_(False)
        self.imagenet_input = imagenet_input
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        if self.imagenet_input:
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            x = ((x + 1) / 2 - self.mean) / self.std
        out, wanted = [], set(self.layer_ids)
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i in wanted:
                out.append(x)
        return out


def vgg16_features() -> nn.Sequential:
    """An untrained VGG16 feature stack with torchvision's layer indices."""
    layers: List[nn.Module] = []
    c = 3
    for v in VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
            c = v
    return nn.Sequential(*layers)


def _vgg16_state_dict(path: Optional[str]) -> Dict[str, torch.Tensor]:
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"method.perceptual_checkpoint={path}: no such file (a VGG16 state_dict .pth); "
                              f"or set method.perceptual_weight=0")
        try:
            return torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # a corrupt or non-state_dict file
            raise ConfigError(f"method.perceptual_checkpoint={path}: not a loadable VGG16 state_dict "
                              f"({' '.join(str(exc).split())[:160]})") from None
    try:
        from torchvision.models import VGG16_Weights

        # Reads torch hub's cache first; downloads only when it is not there.
        return VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    except Exception as exc:
        raise ConfigError(f"method.perceptual_weight>0 needs VGG16 weights: method.perceptual_checkpoint is not set and "
                          f"torchvision's download failed ({' '.join(str(exc).split())[:160]}); "
                          f"set method.perceptual_checkpoint=<vgg16 .pth> or method.perceptual_weight=0") from None


def load_vgg16_features(path: Optional[str], upto: int) -> nn.Sequential:
    """VGG16 features up to layer ``upto`` with ImageNet weights from ``path`` or torchvision.

    Accepts a full torchvision VGG16 state_dict ("features.N.weight" keys) or one of the
    feature stack alone ("N.weight"); layers past ``upto`` may be missing.
    """
    state = _vgg16_state_dict(path)
    state = {k[len("features."):] if k.startswith("features.") else k: v for k, v in state.items()}
    net = nn.Sequential(*list(vgg16_features().children())[:upto + 1])
    wanted = net.state_dict()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise ConfigError(f"method.perceptual_checkpoint={path}: not a VGG16 state_dict (missing {missing[0]})")
    bad = [k for k in wanted if tuple(state[k].shape) != tuple(wanted[k].shape)]
    if bad:
        raise ConfigError(f"method.perceptual_checkpoint={path}: {bad[0]} has shape {tuple(state[bad[0]].shape)}, "
                          f"VGG16 has {tuple(wanted[bad[0]].shape)}")
    net.load_state_dict({k: state[k] for k in wanted})
    return net
