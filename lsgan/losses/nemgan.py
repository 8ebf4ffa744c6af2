"""Losses of method=nemgan (Mishra et al., "Unsupervised conditional generation using noise
engineered mode matching GAN"), as pure functions of network outputs.

* ``latent_norm_loss`` — the norm ("activity") loss ‖z − h1(g(z))‖_p that makes h1 invert g;
* ``mode_matching_loss`` — D_KL(P_Y ‖ P_Ŷ) written per sample as the cross-entropy between the
  sampled mode y and h's prediction Ŷ = h2(h1(g(z))), optionally with an additive
  (AM-softmax) margin on cosine logits, as in the authors' code;
* ``predicted_mode_kl`` — the batch estimate of D_KL(P_Y ‖ P_Ŷ) itself (a diagnostic).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["latent_norm_loss", "mode_matching_loss", "predicted_mode_kl"]


def latent_norm_loss(z: torch.Tensor, z_hat: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    """Batch mean of the per-sample p-norm ‖z − ẑ‖_p divided by d^{1/p} (d = latent size).

    The d^{1/p} normalisation turns the norm into a power mean, (mean_j |z_j − ẑ_j|^p)^{1/p}
    (for p = 1 the mean absolute error), so the term's weight does not depend on the latent
    size. z, z_hat: B×d.
    """
    if z.shape != z_hat.shape or z.dim() != 2:
        raise ValueError(f"z / z_hat: need equal B×d shapes, got {tuple(z.shape)} and {tuple(z_hat.shape)}")
    if p <= 0:
        raise ValueError(f"p={p}: must be > 0")
    diff = (z - z_hat).abs()
    if p == 1:
        return diff.mean()
    # clamp: the root's gradient is infinite at an exact zero (z_hat == z)
    return diff.pow(p).mean(dim=1).clamp_min(1e-12).pow(1.0 / p).mean()


def mode_matching_loss(logits: torch.Tensor, modes: torch.Tensor, margin: float = 0.0,
                       scale: float = 1.0) -> torch.Tensor:
    """Mean cross-entropy of ``scale · (logits − margin · onehot(modes))`` against ``modes``.

    margin = 0, scale = 1: the plain cross-entropy, a per-sample estimate of D_KL(P_Y ‖ P_Ŷ)
    up to the constant entropy of P_Y (y is drawn from P_Y). margin > 0: the additive-margin
    softmax (AM-softmax, Wang et al. 2018); ``logits`` must then be cosine similarities in
    [−1, 1] and ``scale`` is AM-softmax's s. logits: B×k, modes: int64 B.
    """
    if logits.dim() != 2 or modes.shape != logits.shape[:1]:
        raise ValueError(f"logits / modes: need B×k and B, got {tuple(logits.shape)} and {tuple(modes.shape)}")
    if margin:
        logits = logits - margin * F.one_hot(modes, logits.shape[1]).to(logits.dtype)
    return F.cross_entropy(scale * logits, modes)


def predicted_mode_kl(prior_weights: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """D_KL(P_Y ‖ P_Ŷ) with P_Ŷ the batch mean of softmax(logits): 0 when h predicts the modes
    in the prior's proportions. prior_weights: k (sums to 1), logits: B×k."""
    p_hat = logits.softmax(dim=1).mean(dim=0)
    w = prior_weights.to(p_hat)
    nz = w > 0  # 0 · log 0 = 0
    return (w[nz] * (w[nz].log() - p_hat[nz].clamp_min(1e-12).log())).sum()
