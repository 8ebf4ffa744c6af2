"""Context managers that set a network's mode for a block and put it back: the one copy of each.

- ``frozen(module)``: no graph to the module's parameters (requires_grad off, restored per parameter);
  a net judged by another's loss moves only the other (slcGAN's C in L_mi, an encoder frozen for G's samples).
- ``eval_mode(*nets)``: eval mode (BatchNorm running statistics, no spectral-norm power iteration, no
  dropout) for sampling, measuring or steering, each net's training flag restored after.

``lsgan.methods.base.inference`` is the decorator form for a method's own generate / encode calls (it also
turns autograd off and restores each submodule's own flag).
"""
from __future__ import annotations

import contextlib
from typing import Optional

import torch
from torch import nn


@contextlib.contextmanager
def frozen(module: Optional[torch.nn.Module]):
    """Forward passes inside record no graph to ``module``'s parameters (they stay usable): a net
    judged by another's loss (slcGAN's C in L_mi, an encoder frozen for G's samples) moves only the other.
    ``None`` (a net a configuration leaves out) is accepted and does nothing."""
    if module is None:
        yield None
        return
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


@contextlib.contextmanager
def eval_mode(*nets):
    """Every ``nn.Module`` among ``nets`` in eval mode inside the block; after it, ``net.train(flag)`` with
    the flag the net had (so its submodules take that flag). Other callables (a plain function standing in
    for a generator or classifier) are passed over."""
    modes = [(net, net.training) for net in nets if isinstance(net, nn.Module)]
    for net, _ in modes:
        net.eval()
    try:
        yield
    finally:
        for net, mode in modes:
            net.train(mode)


__all__ = ["eval_mode", "frozen"]
