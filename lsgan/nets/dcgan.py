"""The "standard CNN" generator and discriminator of SNGAN (Miyato et al., 2018, Table 3),
DCGAN-style (Radford et al., 2016), for 28, 32, 64 and 128 px. Weights init N(0, 0.02).

Widths are base widths as in StudioGAN: G starts at min(2ⁿ, 8)·g_width channels and halves per
upsampling down to g_width; D doubles from d_width to at most 8·d_width. At 32 px and width 64
this is exactly the paper's 512→256→128→64 G and 64…512 D.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lsgan.nets.layers import (Discriminator, Encoder, GeneratorBase, base_and_doublings,
                               check_image_shape, init_layer_)

ARCH = "dcgan"
LEAK = 0.1  # the paper's leaky-ReLU slope


class DCGANGenerator(GeneratorBase):
    """SNGAN standard-CNN G (Miyato et al., 2018): z → linear → base×base map, then per step
    deconv4×4/2 - BN - ReLU, and conv3×3 - tanh. BNs are conditional when num_classes > 0."""

    def __init__(self, z_dim: int, out_shape: Sequence[int], width: int = 64, num_classes: int = 0,
                 batchnorm: bool = True):
        super().__init__(z_dim, num_classes, batchnorm)
        channels_out, size = check_image_shape(ARCH, out_shape)
        self.base, n_up = base_and_doublings(size)
        chans = [width * min(2 ** (n_up - j), 8) for j in range(n_up + 1)]
        self.fc = init_layer_(nn.Linear(self.in_dim, chans[0] * self.base ** 2), "normal")
        self.norm0 = self.make_norm(chans[0])
        self.ups = nn.ModuleList(init_layer_(nn.ConvTranspose2d(a, b, 4, 2, 1), "normal")
                                 for a, b in zip(chans[:-1], chans[1:]))
        self.norms = nn.ModuleList(self.make_norm(b) for b in chans[1:])
        self.out = init_layer_(nn.Conv2d(chans[-1], channels_out, 3, 1, 1), "normal")

    def forward(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        h, code = self.condition(z, y)
        h = self.fc(h).view(h.shape[0], -1, self.base, self.base)
        h = F.relu(self.norm0(h, code))
        for up, norm in zip(self.ups, self.norms):
            h = F.relu(norm(up(h), code))
        return torch.tanh(self.out(h))


class DCGANTrunk(nn.Module):
    """SNGAN standard-CNN D body (Miyato et al., 2018): per step conv3×3/1 - lReLU - conv4×4/2 -
    lReLU, then conv3×3/1 - lReLU; features are the flattened last map (the paper pools nothing)."""

    def __init__(self, in_shape: Sequence[int], width: int = 64):
        super().__init__()
        channels_in, size = check_image_shape(ARCH, in_shape)
        base, n_down = base_and_doublings(size)
        chans = [width * min(2 ** i, 8) for i in range(n_down + 1)]
        layers = []
        prev = channels_in
        for c in chans[:-1]:
            layers += [nn.Conv2d(prev, c, 3, 1, 1), nn.LeakyReLU(LEAK),
                       nn.Conv2d(c, c, 4, 2, 1), nn.LeakyReLU(LEAK)]
            prev = c
        layers += [nn.Conv2d(prev, chans[-1], 3, 1, 1), nn.LeakyReLU(LEAK)]
        for layer in layers:
            if isinstance(layer, nn.Conv2d):
                init_layer_(layer, "normal")
        self.body = nn.Sequential(*layers)
        self.feat_dim = chans[-1] * base ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)


class DCGANDiscriminator(Discriminator):
    """SNGAN standard-CNN D (Miyato et al., 2018) with an optional projection term
    (Miyato & Koyama, 2018); spectral norm on every layer when ``spectral_norm``."""

    def __init__(self, in_shape: Sequence[int], width: int = 64, num_classes: int = 0,
                 spectral_norm: bool = True):
        super().__init__(DCGANTrunk(in_shape, width), num_classes, "normal", spectral_norm)


class DCGANEncoder(Encoder):
    """The standard-CNN D body with a linear head to ``out_dim`` (e.g. ClusterGAN's encoder)."""

    def __init__(self, in_shape: Sequence[int], out_dim: int, width: int = 64, spectral_norm: bool = False):
        super().__init__(DCGANTrunk(in_shape, width), out_dim, spectral_norm, leak=LEAK)
