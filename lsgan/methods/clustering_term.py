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
the 0s at 02:98 (docs/nemgan.md).

``heads`` > 1 (sinkhorn only) is SeLa's multi-head form: ``logits_of`` returns heads × K logits, each head is
labelled by its own transport and trained on its own labels (the net's body serves all of them), and at each
labelling the *selected* head becomes the one whose labels agree most with the other heads' (mean adjusted
Rand index over the pool). Why: a single head can lock its 2 % cluster onto a style of the majority class
(nemgan 0/4 at 02:98, seed 1, docs/nemgan.md). Heads that find the real split find the *same* one
(their 2 % sets of 0s overlap by 70-80 %), while heads that lock onto a style each lock onto a different one
(overlap ~0 with every other head) — measured on 5 heads in two runs, where the view-stability of a head's
split could not tell them apart. The choice needs no labels. ``select`` gives the selected head's logits:
what the method reads as its clusters.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from sklearn.metrics import adjusted_rand_score
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


def head_consensus(labels: torch.Tensor) -> torch.Tensor:
    """For N × H hard labels from H heads: each head's mean adjusted Rand index with the other heads'
    labels (permutation-free, 0 for chance agreement, 1 for the same partition)."""
    cols = labels.cpu().numpy().T
    h = len(cols)
    ari = torch.zeros(h, h)
    for i in range(h):
        for j in range(i + 1, h):
            ari[i, j] = ari[j, i] = float(adjusted_rand_score(cols[i], cols[j]))
    return ari.sum(1) / max(1, h - 1)


def check_clustering_term_config(m) -> None:
    """One-line errors for ``method.{consistency_weight, balance_weight, balance_kl, augment, assign,
    sinkhorn_pool, sinkhorn_every, sinkhorn_eps, sinkhorn_heads}``."""
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
    heads = int(getattr(m, "sinkhorn_heads", 1))
    if heads < 1:
        raise ConfigError(f"method.sinkhorn_heads={heads}: must be >= 1")
    if heads > 1 and m.assign != "sinkhorn":
        raise ConfigError(f"method.sinkhorn_heads={heads} labels each head by its own transport; it needs "
                          f"method.assign=sinkhorn (got {m.assign}), or sinkhorn_heads=1")


class RealClusteringTerm(nn.Module):
    """``consistency_weight`` × the clustering loss of ``logits_of`` on two views of x: soft targets
    balanced by KL (``assign=soft``), or Sinkhorn-balanced assignments (``assign=sinkhorn``, on each of
    ``heads`` heads) plus the KL term when ``balance_weight`` > 0."""

    def __init__(self, weight: float, balance_weight: float, augment_cfg, image_shape: Sequence[int],
                 prior_weights: Optional[torch.Tensor] = None, balance_kl: str = "forward",
                 assign: str = "soft", sinkhorn_eps: float = 0.05, sinkhorn_pool: int = 4096,
                 sinkhorn_every: int = 100, heads: int = 1):
        super().__init__()
        self.weight = float(weight)
        self.balance_weight = float(balance_weight)
        self.reverse_kl = balance_kl == "reverse"
        self.augment = MultiViewAugment(augment_cfg, image_shape)
        self.prior_weights = prior_weights  # the cluster masses the batch marginal must match; None = uniform
        self.sinkhorn = assign == "sinkhorn"
        self.eps = float(sinkhorn_eps)
        self.every = int(sinkhorn_every)
        self.heads = int(heads)
        pool = int(sinkhorn_pool) if self.sinkhorn else 0
        # state (saved under assign=sinkhorn, so a resumed run continues bit-exactly; not in the state
        # otherwise, so checkpoints from before the option still load): a ring of the last `pool` real
        # images seen (ring_at: next slot, ring_n: filled), the labelled set (a copy of the ring at the
        # last labelling, fixed in between: pool_n images, labels pool_y, one column per head), the count of
        # steps since the ring filled, and the selected head with every head's score at the last labelling
        for name in ("ring_x", "pool_x"):
            self.register_buffer(name, torch.zeros(pool, *image_shape), persistent=self.sinkhorn)
        self.register_buffer("pool_y", torch.zeros(pool, self.heads, dtype=torch.long), persistent=self.sinkhorn)
        for name in ("ring_at", "ring_n", "pool_n", "steps", "head"):
            self.register_buffer(name, torch.zeros((), dtype=torch.long), persistent=self.sinkhorn)
        self.register_buffer("head_scores", torch.zeros(self.heads), persistent=self.sinkhorn)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints from before sinkhorn_heads: pool_y was 1-D and there was no head / head_scores
        if self.sinkhorn and prefix + "pool_y" in state_dict:
            if state_dict[prefix + "pool_y"].dim() == 1:
                state_dict[prefix + "pool_y"] = state_dict[prefix + "pool_y"][:, None]
            state_dict.setdefault(prefix + "head", torch.zeros((), dtype=torch.long))
            state_dict.setdefault(prefix + "head_scores", torch.zeros(self.heads))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def select(self, logits: torch.Tensor) -> torch.Tensor:
        """The selected head's K logits out of ``logits_of``'s heads × K (all of them when heads = 1)."""
        if self.heads == 1:
            return logits
        k = logits.shape[1] // self.heads
        at = int(self.head) * k
        return logits[:, at:at + k]

    def _split(self, logits: torch.Tensor) -> torch.Tensor:
        """B × (heads·K) → B × heads × K, with a one-line error when the width does not divide."""
        if logits.shape[1] % self.heads:
            raise ValueError(f"logits: {logits.shape[1]} columns do not split into {self.heads} heads")
        return logits.view(len(logits), self.heads, -1)

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
                   m.assign, m.sinkhorn_eps, m.sinkhorn_pool, m.sinkhorn_every, getattr(m, "sinkhorn_heads", 1))

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
        # both views of a batch of labelled images predict their labels (every head its own; the loss is
        # the heads' mean, so the net's body learns for all of them; logged parts are the selected head's)
        pick = torch.randint(int(self.pool_n), (len(x),), device=x.device)
        images, labels = self.pool_x[pick], self.pool_y[pick]
        la, lb = self._split(logits_of(self.augment(images))), self._split(logits_of(self.augment(images)))
        sel, k = int(self.head), la.shape[2]
        losses, kls = [], []
        for h in range(self.heads):
            head_loss, head_parts = assignment_loss(la[:, h], lb[:, h], labels[:, h])
            losses.append(head_loss)
            if h == sel:
                parts = head_parts
            if self.balance_weight > 0:
                kls.append(marginal_kl(torch.cat([la[:, h], lb[:, h]]).softmax(dim=1), self.prior_weights,
                                       reverse=self.reverse_kl))
        loss = torch.stack(losses).mean()
        counts = torch.bincount(self.pool_y[:int(self.pool_n), sel], minlength=k)
        parts["min_label_share"] = counts.min() / counts.sum()
        if self.heads > 1:
            parts["head"] = self.head.float()
            parts["head_score"] = self.head_scores[sel]
        if kls:
            kl = torch.stack(kls).mean()
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
        """The ring's images become the labelled set, each with (per head) the hard label of the transport of
        its logits onto the prior's masses; with several heads, the one whose labels agree most with the other
        heads' (``head_consensus``) is selected."""
        n = int(self.ring_n)
        self.pool_x[:n] = self.ring_x[:n]
        logits = self._split(torch.cat([logits_of(self.pool_x[i:min(i + batch, n)]).float()
                                        for i in range(0, n, batch)]))
        for h in range(self.heads):
            self.pool_y[:n, h] = sinkhorn_assignments(logits[:, h], self.prior_weights, self.eps,
                                                      SINKHORN_ITERS).argmax(dim=1)
        if self.heads > 1:
            self.head_scores.copy_(head_consensus(self.pool_y[:n]))
            self.head.fill_(int(self.head_scores.argmax()))
        self.pool_n.fill_(n)
