"""The clustering term on real images that clustergan's E and nemgan's h can add (not in either paper).

Two random views T(x) of a real batch must get the same confident cluster while the batch's cluster
marginal matches the prior's cluster masses (``lsgan.losses.clustering.invariant_clustering_loss``).
It gives the encoder a reason of its own to cluster *real* images; the methods' inversion terms then
make G draw from cluster k what the encoder puts in cluster k. One component, so both methods check,
build and apply it the same way; each passes the function that maps images to its cluster logits.

``method.assign=sinkhorn`` replaces the soft targets by Sinkhorn-balanced assignments
(``lsgan.losses.clustering.swapped_assignment_loss``): a share π_k of the images is *assigned* to
cluster k, where the KL balance is met by soft predictions (at 02:98 it left the small cluster empty).
The transport runs over the batch plus a pool of the last ``sinkhorn_pool`` images' detached logits,
so a 2 % cluster gets ~10 images of a 512 pool, not ~1 of a batch of 64 (docs/nemgan.md, session 10).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from lsgan.augment import MultiViewAugment, check_augment_config
from lsgan.errors import ConfigError, check_choice
from lsgan.losses import invariant_clustering_loss, marginal_kl, swapped_assignment_loss


# forward: KL(batch marginal ‖ prior masses); reverse: KL(prior masses ‖ batch marginal), which keeps a
# small cluster of a skewed prior alive (see lsgan.losses.clustering.marginal_kl)
BALANCE_KL = ("forward", "reverse")
# soft: each view's prediction is the other's target (balanced by the KL term); sinkhorn: the targets are
# assignments balanced to the prior's masses by Sinkhorn-Knopp (SeLa / SwAV)
ASSIGN = ("soft", "sinkhorn")
SINKHORN_ITERS = 100  # enough to meet a 02:98 marginal at eps 0.05 (3, SwAV's count, left it at 0.1-0.3)


def check_clustering_term_config(m) -> None:
    """One-line errors for ``method.{consistency_weight, balance_weight, balance_kl, augment}``."""
    check_augment_config(m.augment)
    check_choice("method.balance_kl", m.balance_kl, BALANCE_KL)
    check_choice("method.assign", m.assign, ASSIGN)
    for key in ("consistency_weight", "balance_weight", "sinkhorn_pool"):
        if float(m[key]) < 0:
            raise ConfigError(f"method.{key}={m[key]}: must be >= 0")
    if not float(m.sinkhorn_eps) > 0:
        raise ConfigError(f"method.sinkhorn_eps={m.sinkhorn_eps}: must be > 0 (the transport's temperature)")


class RealClusteringTerm(nn.Module):
    """``consistency_weight`` × the clustering loss of ``logits_of`` on two views of x: soft targets
    balanced by KL (``assign=soft``), or Sinkhorn-balanced assignments (``assign=sinkhorn``) plus the KL
    term when ``balance_weight`` > 0."""

    def __init__(self, weight: float, balance_weight: float, augment_cfg, image_shape: Sequence[int],
                 prior_weights: Optional[torch.Tensor] = None, balance_kl: str = "forward",
                 assign: str = "soft", sinkhorn_eps: float = 0.05, sinkhorn_pool: int = 0, k: int = 0):
        super().__init__()
        self.weight = float(weight)
        self.balance_weight = float(balance_weight)
        self.reverse_kl = balance_kl == "reverse"
        self.augment = MultiViewAugment(augment_cfg, image_shape)
        self.prior_weights = prior_weights  # the cluster masses the batch marginal must match; None = uniform
        self.sinkhorn = assign == "sinkhorn"
        self.eps = float(sinkhorn_eps)
        pool = int(sinkhorn_pool) if self.sinkhorn else 0
        # the pool is state (saved, so a resumed run continues bit-exactly): the last `pool` rows of
        # each view's detached logits, newest first; pool_n counts the filled rows. Not in the state
        # unless assign=sinkhorn, so checkpoints from before the option still load
        for name, shape in (("pool_a", (pool, k)), ("pool_b", (pool, k))):
            self.register_buffer(name, torch.zeros(shape), persistent=self.sinkhorn)
        self.register_buffer("pool_n", torch.zeros((), dtype=torch.long), persistent=self.sinkhorn)

    @classmethod
    def build(cls, m, image_shape: Sequence[int], dataset: str, k: int,
              prior_weights: Optional[torch.Tensor] = None) -> Optional["RealClusteringTerm"]:
        """The term over k clusters from a method config; None when ``method.consistency_weight`` is 0 (off)."""
        if float(m.consistency_weight) <= 0:
            return None
        if len(tuple(image_shape)) != 3:
            raise ConfigError(f"method.consistency_weight={m.consistency_weight}: the views T need image data, "
                              f"dataset={dataset} is {len(tuple(image_shape))}-D; set it to 0")
        return cls(m.consistency_weight, m.balance_weight, m.augment, image_shape, prior_weights, m.balance_kl,
                   m.assign, m.sinkhorn_eps, m.sinkhorn_pool, k)

    def forward(self, x: torch.Tensor, logits_of: Callable[[torch.Tensor], torch.Tensor]
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """(weighted loss, detached parts); gradient flows through both views."""
        la, lb = logits_of(self.augment(x)), logits_of(self.augment(x))
        if not self.sinkhorn:
            loss, parts = invariant_clustering_loss(la, lb, self.balance_weight, self.prior_weights, self.reverse_kl)
            return self.weight * loss, parts
        n = int(self.pool_n)
        loss, parts = swapped_assignment_loss(la, lb, self.prior_weights, self.eps, SINKHORN_ITERS,
                                              self.pool_a[:n], self.pool_b[:n])
        if self.balance_weight > 0:
            kl = marginal_kl(torch.cat([la, lb]).softmax(dim=1), self.prior_weights, reverse=self.reverse_kl)
            loss = loss + self.balance_weight * kl
            parts["marginal_kl"] = kl.detach()
        self._push(la.detach(), lb.detach())
        return self.weight * loss, parts

    @torch.no_grad()
    def _push(self, la: torch.Tensor, lb: torch.Tensor) -> None:
        """The batch's logits enter the pool at the front; the oldest rows drop off the end."""
        size = len(self.pool_a)
        if size == 0:
            return
        m = min(len(la), size)
        for pool, new in ((self.pool_a, la), (self.pool_b, lb)):
            pool.copy_(torch.cat([new[:m].to(pool), pool[:size - m]]))
        self.pool_n.fill_(min(int(self.pool_n) + m, size))
