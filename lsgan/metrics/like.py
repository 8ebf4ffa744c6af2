"""How much "more like this image" a method's samples are, without labels.

For an exemplar x and the samples drawn like it, each sample's nearest real image r (in a reference set)
is located, and the score is the share of reference images that lie closer to x than r does: 0 when the
samples' nearest real images are x's own nearest neighbours, about 0.5 when the samples are unrelated to
x. The features must come from a network the generator was not trained against (Inception, or a
classifier of the evaluator), so G cannot game them. The same score with each exemplar's samples paired
to another exemplar (a random derangement) is the chance level a method must beat. Its Metric:
``lsgan.metrics.engine_exemplars.LikeScore``.
"""
from __future__ import annotations

from typing import Dict

import torch

LIKE_EXEMPLARS = 100        # metrics.like_exemplars' default
LIKE_FEATURES = "inception"  # metrics.like_features' default


def like_rank(exemplars: torch.Tensor, samples: torch.Tensor, owner: torch.Tensor, reference: torch.Tensor,
              chunk: int = 1024) -> float:
    """Mean over samples of the rank (share of ``reference``) of the sample's nearest reference row by
    distance to its exemplar. exemplars X×d, samples S×d with ``owner`` (S, values in 0..X−1), reference R×d."""
    ex, smp, ref = (torch.as_tensor(t).detach().double().cpu() for t in (exemplars, samples, reference))
    owner = torch.as_tensor(owner).long().cpu()
    if ex.ndim != 2 or smp.ndim != 2 or ref.ndim != 2 or len(owner) != len(smp):
        raise ValueError(f"like_rank: need X×d, S×d, S owners and R×d; got {tuple(ex.shape)}, {tuple(smp.shape)}, "
                         f"{tuple(owner.shape)}, {tuple(ref.shape)}")
    d_ex = torch.cdist(ex, ref)                              # X×R
    ranks = []
    for start in range(0, len(smp), chunk):
        part, who = smp[start:start + chunk], owner[start:start + chunk]
        nearest = torch.cdist(part, ref).argmin(dim=1)      # each sample's nearest real image
        to_own = d_ex[who]                                   # its exemplar's distances to every real image
        bar = to_own.gather(1, nearest[:, None])
        ranks.append((to_own < bar).double().mean(dim=1))
    return float(torch.cat(ranks).mean())


def like_score(exemplars: torch.Tensor, samples: torch.Tensor, owner: torch.Tensor, reference: torch.Tensor,
               seed: int = 0) -> Dict[str, float]:
    """{"value": like_rank, "chance": like_rank with samples paired to a random other exemplar}."""
    n = len(exemplars)
    g = torch.Generator().manual_seed(int(seed))
    shift = torch.randint(1, max(n, 2), (1,), generator=g).item() if n > 1 else 0
    perm = (torch.arange(n) + shift) % n                    # a derangement: no exemplar keeps its samples
    owner = torch.as_tensor(owner).long()
    return {"value": like_rank(exemplars, samples, owner, reference),
            "chance": like_rank(exemplars, samples, perm[owner], reference)}
