"""Pair sampling of the coupled method (Durall et al., 2021, Algorithm 1).

For each image x_i of a batch, its feature-space nearest neighbour is its "real correct" partner
and its farthest neighbour its "real wrong" partner. Distances are L_p between extractor
features (the paper uses L1). The search runs over the batch itself or over a larger pool
(e.g. the batch plus random cached training features), and never returns the query itself.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch


def pairwise_lp(a: torch.Tensor, b: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    """|a| × |b| matrix of L_p distances between rows (computed in float32 or wider)."""
    if p <= 0:
        raise ValueError(f"p={p}: must be > 0 (1 = L1, 2 = L2)")
    dtype = torch.float64 if torch.float64 in (a.dtype, b.dtype) else torch.float32
    return torch.cdist(a.to(dtype), b.to(dtype), p=float(p))


def nearest_farthest(features: torch.Tensor, p: float = 1.0, pool: Optional[torch.Tensor] = None,
                     query_ids: Optional[torch.Tensor] = None,
                     pool_ids: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(nearest_idx, farthest_idx): int64 tensors of length B, each query's nearest and farthest row.

    features: B×d query features. Without ``pool`` the search runs over the batch itself, the
    indices point into ``features`` and row i never returns i.
    pool:     optional P×d features to search instead; indices then point into ``pool``. A pool
              row is excluded for query i when ``pool_ids[j] == query_ids[i]`` (the same training
              example), so pass the examples' dataset indices as ids whenever queries may be in
              the pool. Without ids no pool row is excluded.
    Ties go to the lowest index (``argmin`` / ``argmax`` order), so the result is deterministic.
    """
    if features.dim() != 2:
        raise ValueError(f"features: expected B×d, got shape {tuple(features.shape)}")
    if pool is None:
        if len(features) < 2:
            raise ValueError(f"features: need at least 2 rows to pick a partner other than self, got {len(features)}")
        dist = pairwise_lp(features, features, p)
        exclude = torch.eye(len(features), dtype=torch.bool, device=features.device)
    else:
        if pool.dim() != 2 or pool.shape[1] != features.shape[1]:
            raise ValueError(f"pool: expected P×{features.shape[1]}, got shape {tuple(pool.shape)}")
        dist = pairwise_lp(features, pool, p)
        if (query_ids is None) != (pool_ids is None):
            raise ValueError("query_ids / pool_ids: pass both (to exclude each query from the pool) or neither")
        if query_ids is not None:
            if len(query_ids) != len(features) or len(pool_ids) != len(pool):
                raise ValueError(f"query_ids / pool_ids: need lengths {len(features)} and {len(pool)}, "
                                 f"got {len(query_ids)} and {len(pool_ids)}")
            exclude = query_ids.reshape(-1, 1).to(pool_ids.device) == pool_ids.reshape(1, -1)
        else:
            exclude = torch.zeros_like(dist, dtype=torch.bool)
        if exclude.all(dim=1).any():
            raise ValueError("pool: some query has no pool row other than itself")
    nearest = dist.masked_fill(exclude, float("inf")).argmin(dim=1)
    farthest = dist.masked_fill(exclude, float("-inf")).argmax(dim=1)
    return nearest.long(), farthest.long()
