"""Improved precision / recall (Kynkäänniemi et al. 2019) and density / coverage
(Naeem et al. 2020) on feature sets.

Both estimate each set's manifold as the union of balls around its points, the radius of a
point's ball being the distance to its k-th nearest neighbour within its own set (itself
excluded). With real set R (radii r_i), fake set F (radii f_j) and distance d:

- precision = fraction of fakes inside some real ball:      mean_j  1[∃i d(F_j, R_i) ≤ r_i]
- recall    = fraction of reals inside some fake ball:      mean_i  1[∃j d(R_i, F_j) ≤ f_j]
- density   = (1 / kM) Σ_j Σ_i 1[d(F_j, R_i) ≤ r_i]          (can exceed 1)
- coverage  = fraction of reals whose ball holds a fake:    mean_i  1[min_j d(R_i, F_j) ≤ r_i]

Distances are computed in row chunks with ``torch.cdist`` so memory stays O(chunk × N).
Neither torchmetrics nor scikit-learn has these; the authors' ``prdc`` package holds full N × N
distance matrices (its Metric: ``lsgan.metrics.engine.PRDC``).
"""
from __future__ import annotations

from typing import Dict, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


def _as_tensor(a: ArrayLike, name: str) -> torch.Tensor:
    t = torch.as_tensor(a).detach().cpu()
    if t.ndim != 2:
        raise ValueError(f"{name}: expected N×d features, got shape {tuple(t.shape)}")
    return t.double() if t.dtype == torch.float64 else t.float()


def kth_neighbour_distances(features: ArrayLike, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row (the point itself excluded)."""
    x = _as_tensor(features, "features")
    if not 1 <= k < len(x):
        raise ValueError(f"k={k}: must be in [1, N-1={len(x) - 1}]")
    out = torch.empty(len(x), dtype=x.dtype)
    for start in range(0, len(x), chunk):
        d = torch.cdist(x[start:start + chunk], x)
        rows = torch.arange(d.shape[0])
        d[rows, rows + start] = float("inf")  # exclude self, even for duplicated points
        out[start:start + chunk] = d.topk(k, dim=1, largest=False).values[:, -1]
    return out


def prdc(real_features: ArrayLike, fake_features: ArrayLike, k: int = 3, chunk: int = 2048) -> Dict[str, float]:
    """{"precision", "recall", "density", "coverage", "k"}; k=3 as in Kynkäänniemi et al.

    (Naeem et al. use k=5 for density/coverage; pass k=5 to reproduce their setting.)
    """
    real, fake = _as_tensor(real_features, "real_features"), _as_tensor(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"prdc: feature dims differ (real {real.shape[1]}, fake {fake.shape[1]})")
    dtype = torch.promote_types(real.dtype, fake.dtype)
    real, fake = real.to(dtype), fake.to(dtype)
    real_r = kth_neighbour_distances(real, k, chunk)
    fake_r = kth_neighbour_distances(fake, k, chunk)

    fake_in_real = torch.zeros(len(fake), dtype=torch.bool)
    real_in_fake = torch.zeros(len(real), dtype=torch.bool)
    density_count = 0.0
    nearest_fake = torch.full((len(real),), float("inf"), dtype=dtype)
    for start in range(0, len(fake), chunk):
        f = fake[start:start + chunk]
        d = torch.cdist(f, real)                                    # chunk × |R|
        inside_real = d <= real_r[None, :]
        fake_in_real[start:start + len(f)] = inside_real.any(dim=1)
        density_count += inside_real.sum().item()
        real_in_fake |= (d <= fake_r[start:start + len(f), None]).any(dim=0)
        nearest_fake = torch.minimum(nearest_fake, d.min(dim=0).values)
    return {
        "precision": fake_in_real.double().mean().item(),
        "recall": real_in_fake.double().mean().item(),
        "density": density_count / (k * len(fake)),
        "coverage": (nearest_fake <= real_r).double().mean().item(),
        "k": k,
    }
