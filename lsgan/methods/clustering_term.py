"""The clustering term on real images that clustergan's E and nemgan's h can add (not in either paper),
and its options (``method.clustering.*``, shared with slcgan's balance term).

Two random views T(x) of a real batch must get the same confident cluster while the batch's cluster
marginal matches the prior's cluster masses (``lsgan.losses.clustering.invariant_clustering_loss``).
It gives the encoder a reason of its own to cluster *real* images; the methods' inversion terms then
make G draw from cluster k what the encoder puts in cluster k. One component, so both methods check,
build and apply it the same way; each passes the function that maps images to its cluster logits.

``method.clustering.assign=sinkhorn`` replaces the soft targets by SeLa's self-labelling (Asano et al., 2020):
the term keeps the last ``SINKHORN_POOL`` real images; every ``SINKHORN_EVERY`` steps it labels them by the
Sinkhorn transport of their logits onto the prior's masses (so a share π_k of them is *assigned* to
cluster k, where the KL balance was met by soft predictions and left a 2 % cluster empty), and in between
two views of labelled pool images predict their labels. Labels fixed for ``SINKHORN_EVERY`` steps keep it
stable; a per-batch transport against a pool of stale logits oscillated and, inside a GAN run, never found
the 0s at 02:98 (docs/nemgan.md).

``method.clustering.heads`` > 1 (sinkhorn only) is SeLa's multi-head form: ``logits_of`` returns heads × K logits, each head is
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

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from sklearn.metrics import adjusted_rand_score
from torch import nn

from lsgan.augment import AugmentConfig, MultiViewAugment, check_augment_config
from lsgan.errors import ConfigError, check_choice
from lsgan.losses import assignment_loss, invariant_clustering_loss, marginal_kl, sinkhorn_assignments


# forward: KL(batch marginal ‖ prior masses); reverse: KL(prior masses ‖ batch marginal), which keeps a
# small cluster of a skewed prior alive (see lsgan.losses.clustering.marginal_kl)
BALANCE_KL = ("forward", "reverse")
# soft: each view's prediction is the other's target (balanced by the KL term); sinkhorn: the targets are
# assignments balanced to the prior's masses by Sinkhorn-Knopp (SeLa / SwAV)
ASSIGN = ("soft", "sinkhorn")
SINKHORN_ITERS = 100  # enough to meet a 02:98 marginal at eps 0.05 (3, SwAV's count, left it at 0.1-0.3)
SINKHORN_EPS = 0.05   # the transport's temperature (SeLa's)
SINKHORN_POOL = 4096  # real images held and labelled
SINKHORN_EVERY = 100  # steps between labellings


@dataclass
class BalanceConfig:
    """The balance term and the views T (slcgan's ``method.clustering``: its views term is the paper's L_aug)."""

    balance_weight: float = 0.0  # weight of KL(batch marginal of the clusters ‖ the prior's masses); 0 = off
    balance_kl: str = "forward"  # forward: KL(marginal ‖ masses) | reverse: KL(masses ‖ marginal), which keeps a gradient at collapse
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # the random views T
    neighbours: int = 0          # SCAN: the second view is of one of the image's k nearest training images in the extractor's features; 0 = of the image itself


@dataclass
class ClusteringConfig(BalanceConfig):
    """clustergan's and nemgan's ``method.clustering``: the term on real images this module builds."""

    weight: float = 0.0          # weight of the whole term (two views agree, clusters balanced); 0 = off (the papers)
    balance_weight: float = 2.0  # weight of its balance part (1 let a probe collapse to one cluster)
    assign: str = "soft"         # soft: the views are each other's targets | sinkhorn: SeLa labels balanced to the masses
    heads: int = 1               # assign=sinkhorn: SeLa heads, each its own transport; the one the others agree with is read


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


def mine_neighbours(features: torch.Tensor, k: int) -> torch.Tensor:
    """N × k indices of each row's k nearest other rows by cosine similarity of ``features`` (N×d): the
    neighbours SCAN pairs an image with (exact; about 100 s for 50,000 × 512 on one CPU thread)."""
    from lsgan.metrics.knn import knn_indices  # exact, chunked: the same search the evaluation uses

    f = torch.as_tensor(features).float()
    return knn_indices(f / f.norm(dim=1, keepdim=True).clamp_min(1e-12), int(k))


class MinedNeighbours:
    """SCAN's partners for a method whose ``method.clustering.neighbours`` is k > 0: at fit start the
    training split's features from the frozen extractor (``cfg.extractor``, cached) and each image's k
    nearest neighbours in them; during training one random neighbour of each batch image. Not saved:
    a resumed run mines the same table again from the same features."""

    def __init__(self, k: int):
        self.k = int(k)
        self.table: Optional[torch.Tensor] = None  # N×k training-split indices
        self.features: Optional[torch.Tensor] = None  # N×d extractor features of the training split
        self.train_set = None

    def fit(self, cfg, datamodule) -> None:
        from lsgan.features import features_for_datamodule

        self.train_set = datamodule.train_set
        self.features = torch.as_tensor(features_for_datamodule(cfg, datamodule)).float()
        self.table = mine_neighbours(self.features, self.k)

    def pick(self, index: torch.Tensor) -> torch.Tensor:
        """One random mined neighbour (its training-split index) of each training image ``index``."""
        rows = self.table[index.cpu()]
        return rows[torch.arange(len(rows)), torch.randint(self.k, (len(rows),))]

    def images(self, index: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.train_set.images(index.cpu()).to(like)

    def features_at(self, index: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.features[index.cpu()].to(like.device)


def fit_method_neighbours(method) -> None:
    """At a method's fit start: mine ``method.neighbours`` (a ``MinedNeighbours``, or None when the method pairs
    views of the image itself) on its trainer's training split; nothing without a data module."""
    dm = getattr(method.trainer, "datamodule", None)
    if method.neighbours is not None and dm is not None:
        method.neighbours.fit(method.cfg, dm)


def reads_mined_features(method, logits_of_features: Optional[Callable]) -> bool:
    """Whether ``method``'s clusterer reads real images from the features its neighbours were mined in: it has
    fitted mined neighbours and its logits come from a head on that extractor (``logits_of_features``)."""
    nb = method.neighbours
    return nb is not None and nb.table is not None and logits_of_features is not None


def clustering_inputs(method, batch, logits_of: Callable, logits_of_features: Optional[Callable] = None) -> Tuple:
    """What ``RealClusteringTerm`` reads for ``batch``'s real images: (x, logits_of, partner, views).

    Without mined neighbours (``method.neighbours`` None, or not fitted): two views of the images themselves.
    With them: each image and one random neighbour. Where the cluster logits come from a ``FeatureHead`` on
    the extractor the neighbours were mined in (``logits_of_features``: the same logits from that extractor's
    features), the pair is read from the features mined there, unaugmented: the extractor is frozen, so they are
    the numbers its pass would give, without two extractor passes per iteration (slcgan on CIFAR-10: 7,001
    iterations in an hour against 6,460)."""
    nb = method.neighbours
    if nb is None or nb.table is None:
        return batch.x, logits_of, None, True
    pick = nb.pick(batch.index)
    if reads_mined_features(method, logits_of_features):
        return nb.features_at(batch.index, batch.x), logits_of_features, nb.features_at(pick, batch.x), False
    return batch.x, logits_of, nb.images(pick, batch.x), True


def check_balance_config(c, path: str = "method.clustering") -> None:
    """One-line errors for ``method.clustering.{balance_weight, balance_kl, augment}``."""
    check_augment_config(c.augment, f"{path}.augment")
    check_choice(f"{path}.balance_kl", c.balance_kl, BALANCE_KL)
    if float(c.balance_weight) < 0:
        raise ConfigError(f"{path}.balance_weight={c.balance_weight}: must be >= 0")
    if int(c.neighbours) < 0:
        raise ConfigError(f"{path}.neighbours={c.neighbours}: must be >= 0 (0 = two views of the image itself)")


def check_clustering_config(c, path: str = "method.clustering") -> None:
    """One-line errors for ``method.clustering.*`` (``ClusteringConfig``)."""
    check_balance_config(c, path)
    check_choice(f"{path}.assign", c.assign, ASSIGN)
    if float(c.weight) < 0:
        raise ConfigError(f"{path}.weight={c.weight}: must be >= 0")
    heads = int(c.heads)
    if heads < 1:
        raise ConfigError(f"{path}.heads={heads}: must be >= 1")
    if int(c.neighbours) > 0 and c.assign != "soft":
        raise ConfigError(f"{path}.neighbours={c.neighbours} pairs an image with a neighbour for the soft targets; "
                          f"it needs {path}.assign=soft (got {c.assign}), or neighbours=0")
    if heads > 1 and c.assign != "sinkhorn":
        raise ConfigError(f"{path}.heads={heads} labels each head by its own transport; it needs "
                          f"{path}.assign=sinkhorn (got {c.assign}), or heads=1")


class RealClusteringTerm(nn.Module):
    """``weight`` × the clustering loss of ``logits_of`` on two views of x: soft targets
    balanced by KL (``assign=soft``), or Sinkhorn-balanced assignments (``assign=sinkhorn``, on each of
    ``heads`` heads) plus the KL term when ``balance_weight`` > 0."""

    def __init__(self, weight: float, balance_weight: float, augment_cfg, image_shape: Sequence[int],
                 prior_weights: Optional[torch.Tensor] = None, balance_kl: str = "forward",
                 assign: str = "soft", heads: int = 1, sinkhorn_pool: Optional[int] = None,
                 sinkhorn_every: Optional[int] = None):
        super().__init__()
        self.weight = float(weight)
        self.balance_weight = float(balance_weight)
        self.reverse_kl = balance_kl == "reverse"
        self.augment = MultiViewAugment(augment_cfg, image_shape)
        self.prior_weights = prior_weights  # the cluster masses the batch marginal must match; None = uniform
        self.sinkhorn = assign == "sinkhorn"
        self.eps = SINKHORN_EPS
        self.every = int(SINKHORN_EVERY if sinkhorn_every is None else sinkhorn_every)
        self.heads = int(heads)
        pool = int(SINKHORN_POOL if sinkhorn_pool is None else sinkhorn_pool) if self.sinkhorn else 0
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
        # checkpoints from before the SeLa heads: pool_y was 1-D and there was no head / head_scores
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
    def build(cls, c, image_shape: Sequence[int], dataset: str,
              prior_weights: Optional[torch.Tensor] = None) -> Optional["RealClusteringTerm"]:
        """The term from ``method.clustering`` (``c``); None when its weight is 0 (off)."""
        if float(c.weight) <= 0:
            return None
        if len(tuple(image_shape)) != 3:
            raise ConfigError(f"method.clustering.weight={c.weight}: the views T need image data, "
                              f"dataset={dataset} is {len(tuple(image_shape))}-D; set it to 0")
        return cls(c.weight, c.balance_weight, c.augment, image_shape, prior_weights, c.balance_kl, c.assign, int(c.heads))

    def forward(self, x: torch.Tensor, logits_of: Callable[[torch.Tensor], torch.Tensor],
                partner: Optional[torch.Tensor] = None,
                views: bool = True) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """(weighted loss, detached parts); gradient flows through both views. ``partner`` (assign=soft):
        the images whose views are the second views (each image's mined neighbour); None = x itself.
        ``views=False``: x and partner are read as they are (``clustering_inputs``: cached features)."""
        if not self.sinkhorn:
            other = x if partner is None else partner
            view = self.augment if views else (lambda t: t)
            loss, parts = invariant_clustering_loss(logits_of(view(x)), logits_of(view(other)),
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
