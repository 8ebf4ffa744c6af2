"""Losses of method=clustergan (Mukherjee et al., "ClusterGAN", AAAI 2019), as pure functions.

G and the encoder E minimise L_GE = L_adv + β_n·‖z_n − ẑ_n‖² + β_c·CE(z_c, softmax(ẑ_c)), where
(ẑ_n, ẑ_c) = E(G(z)); the optional perceptual term β_p·Σ_l λ_l‖φ_l(x) − φ_l(G(E(x)))‖² compares
VGG feature maps of a real image and of its reconstruction.

Squared norms are *means* over coordinates (and over the batch), as in the authors' code
(``tf.reduce_mean(tf.square(z_gen - z_enc_gen))``), so β_n = 10 means what it meant there
whatever the latent size.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import torch
import torch.nn.functional as F

__all__ = ["latent_recovery_loss", "cluster_code_loss", "clustergan_ge_loss", "perceptual_loss"]


def latent_recovery_loss(z_n: torch.Tensor, z_n_hat: torch.Tensor) -> torch.Tensor:
    """Mean over batch and coordinates of (z_n − ẑ_n)², for B×d inputs."""
    if z_n.shape != z_n_hat.shape or z_n.dim() != 2:
        raise ValueError(f"z_n / z_n_hat: need equal B×d shapes, got {tuple(z_n.shape)} and {tuple(z_n_hat.shape)}")
    return (z_n - z_n_hat).pow(2).mean()


def cluster_code_loss(logits: torch.Tensor, modes: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy between the one-hot code of ``modes`` (B,) and softmax(``logits``) (B×K)."""
    if logits.dim() != 2 or modes.shape != logits.shape[:1]:
        raise ValueError(f"logits / modes: need B×K and (B,), got {tuple(logits.shape)} and {tuple(modes.shape)}")
    return F.cross_entropy(logits, modes.long())


def clustergan_ge_loss(adv: torch.Tensor, z_n: torch.Tensor, z_n_hat: torch.Tensor, modes: torch.Tensor,
                       logits: torch.Tensor, beta_n: float,
                       beta_c: float) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """(L_GE, its parts) with L_GE = adv + β_n·recovery + β_c·CE; parts are detached for logging."""
    recovery = latent_recovery_loss(z_n, z_n_hat)
    code = cluster_code_loss(logits, modes)
    total = adv + beta_n * recovery + beta_c * code
    return total, {"adv_g": adv.detach(), "zn_loss": recovery.detach(), "zc_loss": code.detach()}


def perceptual_loss(feats_real: Sequence[torch.Tensor], feats_rec: Sequence[torch.Tensor],
                    layer_weights: Sequence[float]) -> torch.Tensor:
    """Σ_l λ_l · mean((φ_l(x) − φ_l(x̂))²): one feature map per layer, mean over batch and map entries."""
    if not (len(feats_real) == len(feats_rec) == len(layer_weights)) or not feats_real:
        raise ValueError(f"perceptual_loss: need one real map, one reconstructed map and one weight per layer, "
                         f"got {len(feats_real)}, {len(feats_rec)} and {len(layer_weights)}")
    total = feats_real[0].new_zeros(())
    for a, b, w in zip(feats_real, feats_rec, layer_weights):
        if a.shape != b.shape:
            raise ValueError(f"perceptual_loss: feature maps differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
        total = total + float(w) * (a - b).pow(2).mean()
    return total
