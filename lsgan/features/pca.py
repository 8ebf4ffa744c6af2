"""PCA projection of extractor features, fitted on the training split (``extractor.pca_dim``).

A conv map flattened is thousands of dimensions; the coupled generator reads z ⊕ f, so a few
hundred principal directions keep its input layer small while keeping the feature geometry
(the nearest/farthest pair search uses L1 distances on the same f).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from lsgan.errors import ConfigError


class PCAProjection(nn.Module):
    """f ↦ (f − mean) · componentsᵀ, with components d×D orthonormal rows (largest variance first)."""

    def __init__(self, mean: torch.Tensor, components: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.detach().float().reshape(1, -1).clone())
        self.register_buffer("components", components.detach().float().clone())
        self.out_dim = int(components.shape[0])

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return (h.float() - self.mean) @ self.components.T

    def as_array(self) -> torch.Tensor:
        """(d+1)×D: the mean row, then the components (how the feature cache stores it)."""
        return torch.cat([self.mean, self.components], dim=0)

    @classmethod
    def from_array(cls, arr) -> "PCAProjection":
        arr = torch.as_tensor(arr)
        return cls(arr[0], arr[1:])


def fit_pca(features: torch.Tensor, dim: int, max_rows: int = 20000, seed: int = 0) -> PCAProjection:
    """Top-``dim`` principal directions of ``features`` (N×D), from at most ``max_rows`` seeded rows.

    Randomised SVD (torch.pca_lowrank) under a fixed seed: deterministic for given inputs and
    seconds for 20k × 4k. Each component's sign is fixed (largest-magnitude entry positive) so
    refits give identical projections.
    """
    x = torch.as_tensor(features)
    n, d_in = x.shape
    if not 1 <= dim <= min(n, d_in):
        raise ConfigError(f"extractor.pca_dim={dim}: must be in [1, min(N={n}, feature dim={d_in})]")
    g = torch.Generator().manual_seed(int(seed))
    rows = torch.randperm(n, generator=g)[:max_rows].sort().values if n > max_rows else torch.arange(n)
    sample = x[rows].double()
    mean = sample.mean(dim=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        _, _, v = torch.pca_lowrank(sample - mean, q=min(dim + 10, min(sample.shape)), center=False, niter=6)
    comps = v[:, :dim].T
    signs = torch.sign(comps.gather(1, comps.abs().argmax(dim=1, keepdim=True)))
    return PCAProjection(mean, comps * signs)
