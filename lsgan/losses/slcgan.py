"""Losses of method=slcgan (Noroozi, "Self-labeled Conditional GANs", 2020, Algorithm 1), as pure
functions of network outputs.

D(x, y) returns a unary score u (image only) and a joint score s (image with its label, by
projection). Real pairs are (x, p(y|x)) with p = softmax(C(x)); fake pairs are (G(z, c), c).
Every function returns the scalar its player *minimises*.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lsgan.losses.clustering import marginal_entropy

__all__ = ["slcgan_d_hinge", "slcgan_g_hinge", "slcgan_mi_loss", "slcgan_c_adversarial",
           "slcgan_aug_loss", "slcgan_marginal_entropy"]


def slcgan_d_hinge(u_real: torch.Tensor, s_real: torch.Tensor, u_fake: torch.Tensor,
                   s_fake: torch.Tensor) -> torch.Tensor:
    """D: mean[max(0, 1 − u_r) + max(0, 1 − s_r) + max(0, 1 + u_f) + max(0, 1 + s_f)]."""
    return (F.relu(1.0 - u_real) + F.relu(1.0 - s_real)).mean() + (F.relu(1.0 + u_fake) + F.relu(1.0 + s_fake)).mean()


def slcgan_g_hinge(u_fake: torch.Tensor, s_fake: torch.Tensor) -> torch.Tensor:
    """G's adversarial part: mean[−u_f − s_f]."""
    return -(u_fake + s_fake).mean()


def slcgan_mi_loss(c_logits_fake: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """L_mi: cross-entropy between the drawn condition c (int ids, B) and softmax(C(G(z, c))).

    A lower bound on the mutual information between c and G's output (InfoGAN). The caller
    steps only G's optimizer on it: C must not learn to read fakes.
    """
    return F.cross_entropy(c_logits_fake, c.long())


def slcgan_c_adversarial(s_real: torch.Tensor) -> torch.Tensor:
    """C's adversarial part: mean[s_r] — C plays with G against D, making real pairs
    (x, C(x)) look fake to the joint term (as BigBiGAN's encoder)."""
    return s_real.mean()


def slcgan_aug_loss(logits_clean: torch.Tensor, logits_view: torch.Tensor,
                    grad_through_target: bool = False) -> torch.Tensor:
    """L_aug = mean over the batch of Σ_c −q_c log p_c, p = softmax(C(x)), q = softmax(C(T(x))).

    By default q is a stop-gradient target and only p (the clean image's prediction) is trained:
    the gradient on the clean logits is then p − q, which pulls the two views' predictions
    together without the −Σ q log q entropy term that a gradient through q would add. That term
    rewards confident outputs on every view, and a constant, confident C (all images in one
    cluster) minimises it, so it feeds the collapse the adversarial term has to fight.
    ``grad_through_target=True`` lets both views get the gradient (the loss as written).
    """
    q = F.softmax(logits_view, dim=1)
    if not grad_through_target:
        q = q.detach()
    return -(q * F.log_softmax(logits_clean, dim=1)).sum(dim=1).mean()


# H(mean_b p_b) of B×K probabilities; one function for every method (lsgan.losses.clustering)
slcgan_marginal_entropy = marginal_entropy
