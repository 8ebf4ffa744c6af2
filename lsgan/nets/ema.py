"""Exponential moving average of a generator (Yazıcı et al., 2019), as in BigGAN / StudioGAN."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """A frozen copy of a network whose parameters track an exponential moving average of it.

    ``update(model, decay)`` sets p_ema ← decay·p_ema + (1 − decay)·p for every parameter and
    copies every buffer (BN running statistics, spectral-norm u / v): averaged running stats
    would not match the averaged weights, so StudioGAN copies them too. The copy stays in eval
    mode even when the owning module calls ``train()``. As a submodule it is part of the owner's
    state_dict, so checkpoints restore it.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.module.eval()

    def train(self, mode: bool = True) -> "EMA":
        super().train(mode)
        self.module.eval()  # sampling uses running stats and no power iteration
        return self

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"ema decay={decay}: must be in [0, 1]")
        params, buffers = dict(model.named_parameters()), dict(model.named_buffers())
        own_params, own_buffers = dict(self.module.named_parameters()), dict(self.module.named_buffers())
        if params.keys() != own_params.keys() or buffers.keys() != own_buffers.keys():
            raise ValueError("EMA.update: the model's parameters / buffers differ from the tracked copy's")
        for name, p in own_params.items():
            p.lerp_(params[name].detach(), 1.0 - decay)
        for name, b in own_buffers.items():
            b.copy_(buffers[name])

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def ema_decay_at(iteration: int, start: int, decay: float) -> float:
    """EMA decay used at ``iteration``: 0 (a plain copy) before ``start``, then the warm-up
    min(decay, (1 + t) / (10 + t)) with t = iteration − start (TensorFlow's num_updates rule), so
    the average never holds on to the untrained weights of the first iterations."""
    if iteration < start:
        return 0.0
    t = iteration - start
    return min(decay, (1.0 + t) / (10.0 + t))
