"""The clustering term on real images that clustergan's E and nemgan's h can add (not in either paper).

Two random views T(x) of a real batch must get the same confident cluster while the batch's cluster
marginal matches the prior's cluster masses (``lsgan.losses.clustering.invariant_clustering_loss``).
It gives the encoder a reason of its own to cluster *real* images; the methods' inversion terms then
make G draw from cluster k what the encoder puts in cluster k. One component, so both methods check,
build and apply it the same way; each passes the function that maps images to its cluster logits.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from lsgan.augment import MultiViewAugment, check_augment_config
from lsgan.config import ConfigError, check_choice
from lsgan.losses import invariant_clustering_loss


# forward: KL(batch marginal ‖ prior masses); reverse: KL(prior masses ‖ batch marginal), which keeps a
# small cluster of a skewed prior alive (see lsgan.losses.clustering.marginal_kl)
BALANCE_KL = ("forward", "reverse")


def check_clustering_term_config(m) -> None:
    """One-line errors for ``method.{consistency_weight, balance_weight, balance_kl, augment}``."""
    check_augment_config(m.augment)
    check_choice("method.balance_kl", m.balance_kl, BALANCE_KL)
    for key in ("consistency_weight", "balance_weight"):
        if float(m[key]) < 0:
            raise ConfigError(f"method.{key}={m[key]}: must be >= 0")


class RealClusteringTerm(nn.Module):
    """``consistency_weight`` × the invariant clustering loss of ``logits_of`` on two views of x."""

    def __init__(self, weight: float, balance_weight: float, augment_cfg, image_shape: Sequence[int],
                 prior_weights: Optional[torch.Tensor] = None, balance_kl: str = "forward"):
        super().__init__()
        self.weight = float(weight)
        self.balance_weight = float(balance_weight)
        self.reverse_kl = balance_kl == "reverse"
        self.augment = MultiViewAugment(augment_cfg, image_shape)
        self.prior_weights = prior_weights  # the cluster masses the batch marginal must match; None = uniform

    @classmethod
    def build(cls, m, image_shape: Sequence[int], dataset: str,
              prior_weights: Optional[torch.Tensor] = None) -> Optional["RealClusteringTerm"]:
        """The term from a method config; None when ``method.consistency_weight`` is 0 (off)."""
        if float(m.consistency_weight) <= 0:
            return None
        if len(tuple(image_shape)) != 3:
            raise ConfigError(f"method.consistency_weight={m.consistency_weight}: the views T need image data, "
                              f"dataset={dataset} is {len(tuple(image_shape))}-D; set it to 0")
        return cls(m.consistency_weight, m.balance_weight, m.augment, image_shape, prior_weights, m.balance_kl)

    def forward(self, x: torch.Tensor, logits_of: Callable[[torch.Tensor], torch.Tensor]
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """(weighted loss, detached parts {consistency, marginal_kl}); gradient flows through both views."""
        loss, parts = invariant_clustering_loss(logits_of(self.augment(x)), logits_of(self.augment(x)),
                                                self.balance_weight, self.prior_weights, self.reverse_kl)
        return self.weight * loss, parts
