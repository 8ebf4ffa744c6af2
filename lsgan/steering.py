"""Latent-space exploration: steer generation towards a class by gradient ascent on z.

Given a generator G and a classifier f (images → logits), ``steer_latent`` moves latents z to
maximise log softmax(f(G(z)))[target], optionally only along some coordinates (``mask``, e.g.
the continuous z_n of a ClusterGAN latent with the cluster code held fixed) and optionally
pulled back towards the start by λ‖z − z₀‖² (``anchor_weight``) so the walk stays where the
prior puts mass. Only z is optimised: the networks' parameters get no gradients and their
train/eval modes are restored afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Union

import torch

from lsgan.nets.modes import eval_mode

__all__ = ["SteeringResult", "steer_latent"]


@dataclass
class SteeringResult:
    z: torch.Tensor              # B×d steered latents
    images: torch.Tensor         # G(z) for the steered latents
    target_prob: List[torch.Tensor]  # per step (before each update, then final), B probabilities of target


def steer_latent(G: Callable[[torch.Tensor], torch.Tensor], classifier: Callable[[torch.Tensor], torch.Tensor],
                 z0: torch.Tensor, target: Union[int, torch.Tensor], steps: int = 100, lr: float = 0.05,
                 mask: Optional[torch.Tensor] = None, anchor_weight: float = 0.0) -> SteeringResult:
    """Gradient ascent (Adam) on z from ``z0`` towards class ``target`` (an id or B ids).

    mask: bool (d,) or B×d; True where z may change. anchor_weight: λ of the λ‖z − z₀‖² pull.
    """
    if z0.dim() != 2:
        raise ValueError(f"z0: expected B×d latents, got shape {tuple(z0.shape)}")
    if steps < 1 or lr <= 0 or anchor_weight < 0:
        raise ValueError(f"steps={steps}, lr={lr}, anchor_weight={anchor_weight}: need steps >= 1, lr > 0, "
                         f"anchor_weight >= 0")
    target = torch.as_tensor(target, device=z0.device).long().reshape(-1).expand(len(z0))
    keep = torch.ones_like(z0, dtype=torch.bool) if mask is None else torch.as_tensor(mask, device=z0.device).bool()
    keep = keep.expand_as(z0)
    z0 = z0.detach()
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    history: List[torch.Tensor] = []
    with eval_mode(G, classifier):
        for _ in range(steps):
            log_p = classifier(G(z)).log_softmax(dim=1).gather(1, target[:, None]).squeeze(1)
            history.append(log_p.detach().exp())
            objective = -log_p.sum() + anchor_weight * (z - z0).pow(2).sum()
            # autograd.grad w.r.t. z only: the networks' .grad fields stay untouched
            (grad,) = torch.autograd.grad(objective, z)
            z.grad = grad * keep
            opt.step()
            with torch.no_grad():
                z.copy_(torch.where(keep, z, z0))  # Adam's momentum must not move frozen coordinates
        with torch.no_grad():
            images = G(z)
            history.append(classifier(images).softmax(dim=1).gather(1, target[:, None]).squeeze(1))
    return SteeringResult(z=z.detach(), images=images.detach(), target_prob=history)
