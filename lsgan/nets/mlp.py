"""Fully connected generator and discriminator for low-dimensional data (the 2-D mixture
benchmarks of Metz et al., 2017 and Srivastava et al., 2017), also usable on flattened images.
Weights keep torch's default init.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lsgan.nets.layers import Discriminator, Encoder, GeneratorBase

LEAK = 0.2


class MLPGenerator(GeneratorBase):
    """MLP G: ``depth`` × (linear - BN - ReLU) then a linear output reshaped to ``out_shape``.
    Vector outputs (e.g. B×2 points) are left unbounded; image shapes (C,H,W) get a tanh.
    BNs are 1-D and conditional when num_classes > 0 (Brock et al., 2019)."""

    def __init__(self, z_dim: int, out_shape: Sequence[int], width: int = 256, depth: int = 3,
                 num_classes: int = 0, batchnorm: bool = True):
        super().__init__(z_dim, num_classes, batchnorm)
        if depth < 1:
            raise ValueError(f"model.mlp_depth={depth}: must be >= 1")
        self.out_shape = tuple(int(s) for s in out_shape)
        self.linears = nn.ModuleList(nn.Linear(self.in_dim if i == 0 else width, width) for i in range(depth))
        self.norms = nn.ModuleList(self.make_norm(width, dims=1) for _ in range(depth))
        self.out = nn.Linear(width, math.prod(self.out_shape))

    def forward(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        h, code = self.condition(z, y)
        for linear, norm in zip(self.linears, self.norms):
            h = F.relu(norm(linear(h), code))
        out = self.out(h).view(h.shape[0], *self.out_shape)
        return torch.tanh(out) if len(self.out_shape) == 3 else out


class MLPTrunk(nn.Module):
    """MLP D body: flatten, then ``depth`` × (linear - leaky ReLU 0.2); features are the last hidden layer."""

    def __init__(self, in_shape: Sequence[int], width: int = 256, depth: int = 3):
        super().__init__()
        if depth < 1:
            raise ValueError(f"model.mlp_depth={depth}: must be >= 1")
        layers, prev = [], math.prod(int(s) for s in in_shape)
        for _ in range(depth):
            layers += [nn.Linear(prev, width), nn.LeakyReLU(LEAK)]
            prev = width
        self.body = nn.Sequential(*layers)
        self.feat_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))


class MLPDiscriminator(Discriminator):
    """MLP D with an optional projection term (Miyato & Koyama, 2018) and spectral norm
    (Miyato et al., 2018)."""

    def __init__(self, in_shape: Sequence[int], width: int = 256, depth: int = 3, num_classes: int = 0,
                 spectral_norm: bool = True):
        super().__init__(MLPTrunk(in_shape, width, depth), num_classes, "default", spectral_norm)


class MLPEncoder(Encoder):
    """The MLP D body with a linear head to ``out_dim``."""

    def __init__(self, in_shape: Sequence[int], out_dim: int, width: int = 256, depth: int = 3,
                 spectral_norm: bool = False):
        super().__init__(MLPTrunk(in_shape, width, depth), out_dim, spectral_norm, leak=LEAK)
