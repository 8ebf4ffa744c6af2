"""The clustering term on real images that clustergan's E and nemgan's h can add (not in either paper).

Two random views T(x) of a real batch must get the same confident cluster while the batch's cluster
marginal matches the prior's cluster masses (``lsgan.losses.clustering.invariant_clustering_loss``).
It gives the encoder a reason of its own to cluster *real* images; the methods' inversion terms then
make G draw from cluster k what the encoder puts in cluster k. One component, so both methods check,
build and apply it the same way; each passes the function that maps images to its cluster logits.

``method.assign=sinkhorn`` replaces the soft targets by SeLa's self-labelling (Asano et al., 2020): the
term keeps the last ``sinkhorn_pool`` real images; every ``sinkhorn_every`` steps it labels them by the
Sinkhorn transport of their logits onto the prior's masses (so a share π_k of them is *assigned* to
cluster k, where the KL balance was met by soft predictions and left a 2 % cluster empty), and in between
two views of labelled pool images predict their labels. Labels fixed for ``sinkhorn_every`` steps keep it
stable; a per-batch transport against a pool of stale logits oscillated and, inside a GAN run, never found
the 0s at 02:98 (docs/nemgan.md, session 10).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from lsgan.augment import MultiViewAugment, check_augment_config
from lsgan.errors import ConfigError, check_choice
from lsgan.losses import assignment_loss, invariant_clustering_loss, marginal_kl, sinkhorn_assignments


# forward: KL(batch marginal ‖ prior masses); reverse: KL(prior masses ‖ batch marginal), which keeps a
# small cluster of a skewed prior alive (see lsgan.losses.clustering.marginal_kl)
BALANCE_KL = ("forward", "reverse")
# soft: each view's prediction is the other's target (balanced by the KL term); sinkhorn: the targets are
# assignments balanced to the prior's masses by Sinkhorn-Knopp (SeLa / SwAV)
ASSIGN = ("soft", "sinkhorn")
SINKHORN_ITERS = 100  # enough to meet a 02:98 marginal at eps 0.05 (3, SwAV's count, left it at 0.1-0.3)


def check_clustering_term_config(m) -> None:
    """One-line errors for ``method.{consistency_weight, balance_weight, balance_kl, augment, assign,
    sinkhorn_pool, sinkhorn_every, sinkhorn_eps}``."""
    check_augment_config(m.augment)
    check_choice("method.balance_kl", m.balance_kl, BALANCE_KL)
    check_choice("method.assign", m.assign, ASSIGN)
    for key in ("consistency_weight", "balance_weight"):
        if float(m[key]) < 0:
            raise ConfigError(f"method.{key}={m[key]}: must be >= 0")
    for key in ("sinkhorn_pool", "sinkhorn_every"):
        if int(m[key]) < 1:
            raise ConfigError(f"method.{key}={m[key]}: must be >= 1")
    if not float(m.sinkhorn_eps) > 0:
        raise ConfigError(f"method.sinkhorn_eps={m.sinkhorn_eps}: must be > 0 (the transport's temperature)")


class RealClusteringTerm(nn.Module):
    """``consistency_weight`` × the clustering loss of ``logits_of`` on two views of x: soft targets
    balanced by KL (``assign=soft``), or Sinkhorn-balanced assignments (``assign=sinkhorn``) plus the KL
    term when ``balance_weight`` > 0."""

    def __init__(self, weight: float, balance_weight: float, augment_cfg, image_shape: Sequence[int],
                 prior_weights: Optional[torch.Tensor] = None, balance_kl: str = "forward",
                 assign: str = "soft", sinkhorn_eps: float = 0.05, sinkhorn_pool: int = 4096,
                 sinkhorn_every: int = 100):
        super().__init__()
        self.weight = float(weight)
        self.balance_weight = float(balance_weight)
        self.reverse_kl = balance_kl == "reverse"
        self.augment = MultiViewAugment(augment_cfg, image_shape)
        self.prior_weights = prior_weights  # the cluster masses the batch marginal must match; None = uniform
        self.sinkhorn = assign == "sinkhorn"
        self.eps = float(sinkhorn_eps)
        self.every = int(sinkhorn_every)
        pool = int(sinkhorn_pool) if self.sinkhorn else 0
        # state (saved under assign=sinkhorn, so a resumed run continues bit-exactly; not in the state
        # otherwise, so checkpoints from before the option still load): a ring of the last `pool` real
        # images seen (ring_at: next slot, ring_n: filled), the labelled set (a copy of the ring at the
        # last labelling, fixed in between: pool_n images, labels pool_y) and the count of steps since
        # the ring filled
        for name in ("ring_x", "pool_x"):
            self.register_buffer(name, torch.zeros(pool, *image_shape), persistent=self.sinkhorn)
        self.register_buffer("pool_y", torch.zeros(pool, dtype=torch.long), persistent=self.sinkhorn)
        for name in ("ring_at", "ring_n", "pool_n", "steps"):
            self.register_buffer(name, torch.zeros((), dtype=torch.long), persistent=self.sinkhorn)

    @classmethod
    def build(cls, m, image_shape: Sequence[int], dataset: str,
              prior_weights: Optional[torch.Tensor] = None) -> Optional["RealClusteringTerm"]:
        """The term from a method config; None when ``method.consistency_weight`` is 0 (off)."""
        if float(m.consistency_weight) <= 0:
            return None
        if len(tuple(image_shape)) != 3:
            raise ConfigError(f"method.consistency_weight={m.consistency_weight}: the views T need image data, "
                              f"dataset={dataset} is {len(tuple(image_shape))}-D; set it to 0")
        return cls(m.consistency_weight, m.balance_weight, m.augment, image_shape, prior_weights, m.balance_kl,
                   m.assign, m.sinkhorn_eps, m.sinkhorn_pool, m.sinkhorn_every)

    def forward(self, x: torch.Tensor, logits_of: Callable[[torch.Tensor], torch.Tensor]
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """(weighted loss, detached parts); gradient flows through both views."""
        if not self.sinkhorn:
            loss, parts = invariant_clustering_loss(logits_of(self.augment(x)), logits_of(self.augment(x)),
                                                    self.balance_weight, self.prior_weights, self.reverse_kl)
            return self.weight * loss, parts
        self._push(x)
        if int(self.ring_n) < len(self.ring_x):
            # off until the ring is full: a first labelling of one batch gives a 2 % cluster one image, and
            # the net memorises it (measured: balanced ACC 0.51 after 800 steps, against 0.96 from a full pool)
            zero = x.new_zeros(())
            return zero, {"assign_ce": zero, "view_agreement": zero, "min_label_share": zero}
        if int(self.steps) % self.every == 0:
            self._label(logits_of)
        self.steps += 1
        # both views of a batch of labelled images predict their labels
        pick = torch.randint(int(self.pool_n), (len(x),), device=x.device)
        images, labels = self.pool_x[pick], self.pool_y[pick]
        la, lb = logits_of(self.augment(images)), logits_of(self.augment(images))
        loss, parts = assignment_loss(la, lb, labels)
        counts = torch.bincount(self.pool_y[:int(self.pool_n)], minlength=la.shape[1])
        parts["min_label_share"] = counts.min() / counts.sum()
        if self.balance_weight > 0:
            kl = marginal_kl(torch.cat([la, lb]).softmax(dim=1), self.prior_weights, reverse=self.reverse_kl)
            loss = loss + self.balance_weight * kl
            parts["marginal_kl"] = kl.detach()
        return self.weight * loss, parts

    @torch.no_grad()
    def _push(self, x: torch.Tensor) -> None:
        """The batch's images replace the oldest in the ring."""
        size = len(self.ring_x)
        at = (int(self.ring_at) + torch.arange(min(len(x), size), device=x.device)) % size
        self.ring_x[at] = x[:len(at)].to(self.ring_x)
        self.ring_at.fill_(int(at[-1] + 1) % size)
        self.ring_n.fill_(min(int(self.ring_n) + len(at), size))

    @torch.no_grad()
    def _label(self, logits_of: Callable[[torch.Tensor], torch.Tensor], batch: int = 512) -> None:
        """The ring's images become the labelled set, each with the hard label of the transport of its
        logits onto the prior's masses."""
        n = int(self.ring_n)
        self.pool_x[:n] = self.ring_x[:n]
        logits = torch.cat([logits_of(self.pool_x[i:min(i + batch, n)]).float() for i in range(0, n, batch)])
        self.pool_y[:n] = sinkhorn_assignments(logits, self.prior_weights, self.eps, SINKHORN_ITERS).argmax(dim=1)
        self.pool_n.fill_(n)
