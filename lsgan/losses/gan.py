"""Adversarial losses as pure functions of discriminator logits (StudioGAN style).

Every D loss is the scalar the discriminator *minimises*; every G loss the scalar the
generator minimises. Inputs are raw logits (no sigmoid), shape (B,). D losses take optional per-sample weights
``fake_weight`` / ``real_weight`` (mean 1): importance weights for fakes drawn off their prior, or a
reweighting that gives every mode's region an equal share of D's objective.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def _mean(v: torch.Tensor, weight: Optional[torch.Tensor]) -> torch.Tensor:
    """mean(v), or the weighted mean(weight * v) (weight = p_target / p_drawn per sample: samples drawn
    from another distribution than the one D must judge)."""
    return v.mean() if weight is None else (weight * v).mean()


def d_hinge(d_real: torch.Tensor, d_fake: torch.Tensor, fake_weight: Optional[torch.Tensor] = None,
            real_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    return _mean(F.relu(1.0 - d_real), real_weight) + _mean(F.relu(1.0 + d_fake), fake_weight)


def g_hinge(d_fake: torch.Tensor) -> torch.Tensor:
    return -d_fake.mean()


def d_bce(d_real: torch.Tensor, d_fake: torch.Tensor, fake_weight: Optional[torch.Tensor] = None,
          real_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))], written with softplus for stability."""
    return _mean(F.softplus(-d_real), real_weight) + _mean(F.softplus(d_fake), fake_weight)


def g_nonsaturating(d_fake: torch.Tensor) -> torch.Tensor:
    """-E[log D(G(z))] (Goodfellow et al.'s practical G loss)."""
    return F.softplus(-d_fake).mean()


def g_minimax(d_fake: torch.Tensor) -> torch.Tensor:
    """E[log(1 - D(G(z)))], the saturating form of the original minimax game."""
    return -F.softplus(d_fake).mean()


def d_wasserstein(d_real: torch.Tensor, d_fake: torch.Tensor, fake_weight: Optional[torch.Tensor] = None,
                  real_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    return _mean(d_fake, fake_weight) - _mean(d_real, real_weight)


def g_wasserstein(d_fake: torch.Tensor) -> torch.Tensor:
    return -d_fake.mean()


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, **critic_kwargs) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al.): E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates."""
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = critic(x_hat, **critic_kwargs)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


# name -> (D loss, G loss). "ns" and "minimax" share the BCE discriminator loss.
ADV_FORMS = ("hinge", "ns", "minimax", "wgan_gp")  # the method.adv_loss values (each method accepts a subset)
ADVERSARIAL = {
    "hinge": (d_hinge, g_hinge),
    "ns": (d_bce, g_nonsaturating),
    "minimax": (d_bce, g_minimax),
    "wgan_gp": (d_wasserstein, g_wasserstein),
}
