"""SNGAN's ResNet generator and discriminator (Miyato et al., 2018, after Gulrajani et al., 2017)
for 28, 32, 64 and 128 px, with the projection discriminator of Miyato & Koyama (2018).

Widths are base widths with StudioGAN's channel plans: at 32 px (and 28) G runs 4·g_width
channels throughout and D 2·d_width, i.e. the paper's CIFAR nets (256 / 128) at width 64;
at 64 / 128 px G goes 16·g_width → g_width and D d_width → 16·d_width, as the SNGAN
ImageNet / STL models. Init follows the SNGAN code: xavier-uniform, gain √2 on residual
convs and 1 on shortcuts, the first linear, the last conv and the heads.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lsgan.nets.layers import (Discriminator, Encoder, GeneratorBase, base_and_doublings,
                               check_image_shape, init_layer_)

ARCH = "resnet"
RESIDUAL_GAIN = math.sqrt(2.0)
# Channel multipliers of width per resolution (StudioGAN's plans). G: the first map's, then each
# up-block's output. D: each block's output, and whether it halves the resolution; the 32 px plan
# is the paper's CIFAR D and sum-pools an 8×8 map (7×7 at 28 px), the larger plans a 4×4 one.
G_CHANNELS = {28: (4, 4, 4), 32: (4, 4, 4, 4), 64: (16, 8, 4, 2, 1), 128: (16, 16, 8, 4, 2, 1)}
D_CHANNELS = {28: (2, 2, 2, 2), 32: (2, 2, 2, 2), 64: (1, 2, 4, 8, 16), 128: (1, 2, 4, 8, 16, 16)}
D_DOWNSAMPLE = {28: (True, True, False, False), 32: (True, True, False, False),
                64: (True, True, True, True, False), 128: (True, True, True, True, True, False)}


def _conv(cin: int, cout: int, kernel: int, gain: float) -> nn.Conv2d:
    return init_layer_(nn.Conv2d(cin, cout, kernel, 1, kernel // 2), "xavier", gain)


class GenBlock(nn.Module):
    """SNGAN G block: BN-ReLU-up2-conv3×3-BN-ReLU-conv3×3, plus an up2-conv1×1 shortcut."""

    def __init__(self, cin: int, cout: int, make_norm):
        super().__init__()
        self.norm1 = make_norm(cin)
        self.conv1 = _conv(cin, cout, 3, RESIDUAL_GAIN)
        self.norm2 = make_norm(cout)
        self.conv2 = _conv(cout, cout, 3, RESIDUAL_GAIN)
        self.shortcut = _conv(cin, cout, 1, 1.0)

    def forward(self, x: torch.Tensor, code: Optional[torch.Tensor]) -> torch.Tensor:
        h = F.interpolate(F.relu(self.norm1(x, code)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.norm2(self.conv1(h), code)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DisBlock(nn.Module):
    """SNGAN D block: ReLU-conv3×3-ReLU-conv3×3 [-avgpool2]; the shortcut is conv1×1 [-avgpool2]
    when channels change or it downsamples, else identity."""

    def __init__(self, cin: int, cout: int, downsample: bool):
        super().__init__()
        self.downsample = downsample
        self.conv1 = _conv(cin, cin, 3, RESIDUAL_GAIN)
        self.conv2 = _conv(cin, cout, 3, RESIDUAL_GAIN)
        self.shortcut = _conv(cin, cout, 1, 1.0) if (cin != cout or downsample) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(F.relu(x))))
        skip = x if self.shortcut is None else self.shortcut(x)
        if self.downsample:
            h, skip = F.avg_pool2d(h, 2), F.avg_pool2d(skip, 2)
        return h + skip


class OptimizedDisBlock(nn.Module):
    """SNGAN's first D block: conv3×3-ReLU-conv3×3-avgpool2 with an avgpool2-conv1×1 shortcut
    (no ReLU on the raw image)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = _conv(cin, cout, 3, RESIDUAL_GAIN)
        self.conv2 = _conv(cout, cout, 3, RESIDUAL_GAIN)
        self.shortcut = _conv(cin, cout, 1, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(x))), 2)
        return h + self.shortcut(F.avg_pool2d(x, 2))


class ResNetGenerator(GeneratorBase):
    """SNGAN ResNet G (Miyato et al., 2018): z → linear → base×base map, one up-block per doubling
    (3 to 32 px, 4 to 64, 5 to 128; 2 from 7×7 to 28), then BN-ReLU-conv3×3-tanh.
    BNs are conditional (BigGAN-style shared embedding) when num_classes > 0."""

    def __init__(self, z_dim: int, out_shape: Sequence[int], width: int = 64, num_classes: int = 0,
                 batchnorm: bool = True):
        super().__init__(z_dim, num_classes, batchnorm)
        channels_out, size = check_image_shape(ARCH, out_shape)
        self.base, _ = base_and_doublings(size)
        chans = [width * m for m in G_CHANNELS[size]]
        self.fc = init_layer_(nn.Linear(self.in_dim, chans[0] * self.base ** 2), "xavier")
        self.blocks = nn.ModuleList(GenBlock(a, b, self.make_norm) for a, b in zip(chans[:-1], chans[1:]))
        self.norm_out = self.make_norm(chans[-1])
        self.out = _conv(chans[-1], channels_out, 3, 1.0)

    def forward(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        h, code = self.condition(z, y)
        h = self.fc(h).view(h.shape[0], -1, self.base, self.base)
        for block in self.blocks:
            h = block(h, code)
        return torch.tanh(self.out(F.relu(self.norm_out(h, code))))


class ResNetTrunk(nn.Module):
    """SNGAN ResNet D body (Miyato et al., 2018): optimized first block, residual blocks, ReLU and
    global sum pooling. 32 px (and 28): 4 blocks, the first two downsampling; 64 / 128 px: 5 / 6
    blocks, all but the last downsampling (see D_CHANNELS, D_DOWNSAMPLE)."""

    def __init__(self, in_shape: Sequence[int], width: int = 64):
        super().__init__()
        channels_in, size = check_image_shape(ARCH, in_shape)
        chans = [width * m for m in D_CHANNELS[size]]
        down = D_DOWNSAMPLE[size]
        blocks = [OptimizedDisBlock(channels_in, chans[0])]
        blocks += [DisBlock(a, b, d) for a, b, d in zip(chans[:-1], chans[1:], down[1:])]
        self.blocks = nn.Sequential(*blocks)
        self.feat_dim = chans[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.blocks(x)).sum(dim=(2, 3))


class ResNetDiscriminator(Discriminator):
    """SNGAN ResNet D (Miyato et al., 2018) with the projection term of Miyato & Koyama (2018);
    spectral norm on every layer when ``spectral_norm``."""

    def __init__(self, in_shape: Sequence[int], width: int = 64, num_classes: int = 0,
                 spectral_norm: bool = True):
        super().__init__(ResNetTrunk(in_shape, width), num_classes, "xavier", spectral_norm)


class ResNetEncoder(Encoder):
    """The ResNet D body with a linear head to ``out_dim`` (e.g. slcGAN's clustering net)."""

    def __init__(self, in_shape: Sequence[int], out_dim: int, width: int = 64, spectral_norm: bool = False):
        super().__init__(ResNetTrunk(in_shape, width), out_dim, spectral_norm, leak=0.0)
