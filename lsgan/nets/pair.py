"""The pair discriminator of the coupled method (Durall et al., 2021).

D judges a *pair* of images stacked along channels: the arch's ordinary discriminator
(``build_discriminator``: SNGAN standard CNN or ResNet, spectral norm as configured) built on
2·C input channels. Which image goes first is drawn per sample in training, so D cannot
learn "the real anchor is always in front" and must judge the pair itself; in eval mode it
averages both orders, which is deterministic and symmetric.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from lsgan.errors import ConfigError


class PairDiscriminator(nn.Module):
    """``D(a, b)`` → logits (B,) for pairs (a_i, b_i) of C×H×W images; with ``single``, ``D.judge(x)``
    → logits (B,) of one image being real."""

    def __init__(self, model_cfg, in_shape: Sequence[int], randomize_order: bool = True, single: bool = False):
        super().__init__()
        from lsgan.nets import build_discriminator  # late import: lsgan.nets imports the arch modules

        in_shape = tuple(int(s) for s in in_shape)
        if len(in_shape) != 3:
            raise ConfigError(f"data: the pair discriminator needs images shaped (C,H,W), got {in_shape}")
        self.in_shape = in_shape
        self.randomize_order = bool(randomize_order)
        self.net = build_discriminator(model_cfg, (2 * in_shape[0],) + in_shape[1:])
        # ``single``: the arch's ordinary D on one image, for a realism term beside the pair game
        self.single = build_discriminator(model_cfg, in_shape) if single else None

    def stack(self, first: torch.Tensor, second: torch.Tensor, swap: Optional[torch.Tensor] = None) -> torch.Tensor:
        """B×2C×H×W pairs; where ``swap[i]`` is True, b_i goes first."""
        if first.shape != second.shape or tuple(first.shape[1:]) != self.in_shape:
            raise ValueError(f"pair: both images must be B×{'×'.join(map(str, self.in_shape))}, "
                             f"got {tuple(first.shape)} and {tuple(second.shape)}")
        if swap is None:
            return torch.cat([first, second], dim=1)
        m = swap.to(first.device).view(-1, 1, 1, 1)
        return torch.cat([torch.where(m, second, first), torch.where(m, first, second)], dim=1)

    def judge(self, x: torch.Tensor) -> torch.Tensor:
        if self.single is None:
            raise RuntimeError("judge: this pair discriminator was built without single=True")
        return self.single(x)

    def forward(self, a: torch.Tensor, b: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if self.training and self.randomize_order:
            swap = torch.rand(len(a), generator=generator, device="cpu" if generator is not None else a.device) < 0.5
            return self.net(self.stack(a, b, swap))
        if self.randomize_order:  # eval: both orders, averaged
            return 0.5 * (self.net(self.stack(a, b)) + self.net(self.stack(b, a)))
        return self.net(self.stack(a, b))
