"""Losses of method=coupled (pure functions of network outputs).

The pair discriminator D judges pairs of images (Durall et al., 2021, Eq. 1):
  L_adv  = E[log(1 − D([x_i, G(z, f_i)]))]   a generated partner: false,
  L_same = E[log D([x_i, nearest(x_i)])]      the feature-space nearest real image: true,
  L_diff = E[log(1 − D([x_i, farthest(x_i)]))] the farthest real image: false.
D maximises λa·L_adv + λs·L_same + λd·L_diff; the functions here return the negation, the
scalar D minimises, as BCE-with-logits on raw logits (no sigmoid), shape (B,).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ["triple_coupled_d_loss", "triple_coupled_g_loss", "coupled_terms"]


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def coupled_terms(d_adv: torch.Tensor, d_same: Optional[torch.Tensor] = None,
                  d_diff: Optional[torch.Tensor] = None) -> dict:
    """The three objective terms as D sees them (log-likelihoods, ≤ 0): {"adv", "same", "diff"}.

    A missing input gives no entry. ``−term`` is the BCE of that pair type against its target.
    """
    out = {"adv": -_bce(d_adv, 0.0)}
    if d_same is not None:
        out["same"] = -_bce(d_same, 1.0)
    if d_diff is not None:
        out["diff"] = -_bce(d_diff, 0.0)
    return out


def triple_coupled_d_loss(d_adv: torch.Tensor, d_same: Optional[torch.Tensor] = None,
                          d_diff: Optional[torch.Tensor] = None, lambda_adv: float = 1.0,
                          lambda_same: float = 1.0, lambda_diff: float = 1.0) -> torch.Tensor:
    """−(λa·L_adv + λs·L_same + λd·L_diff): the scalar the pair discriminator minimises.

    Equals λa·BCE(d_adv, 0) + λs·BCE(d_same, 1) + λd·BCE(d_diff, 0). A term whose λ is 0 may
    be passed as None (the ablations skip computing it); a None term with λ ≠ 0 is an error.
    """
    for name, logits, lam in (("d_same", d_same, lambda_same), ("d_diff", d_diff, lambda_diff)):
        if logits is None and lam != 0:
            raise ValueError(f"{name} is None but its weight is {lam}; pass the logits or set the weight to 0")
    terms = coupled_terms(d_adv, d_same if lambda_same else None, d_diff if lambda_diff else None)
    loss = -lambda_adv * terms["adv"]
    if "same" in terms:
        loss = loss - lambda_same * terms["same"]
    if "diff" in terms:
        loss = loss - lambda_diff * terms["diff"]
    return loss


def triple_coupled_g_loss(d_adv: torch.Tensor, saturating: bool = False) -> torch.Tensor:
    """G's loss on the generated pairs: −E[log D(x_adv)] (non-saturating, default) or the
    saturating E[log(1 − D(x_adv))] that G minimises in the original minimax game."""
    if saturating:
        return -_bce(d_adv, 0.0)
    return _bce(d_adv, 1.0)
