"""The 2-D toy mixtures' geometry: where the modes of ring8 and grid25 sit, in the order their labels number them.

One copy, read by the dataset readers (``lsgan.data.datasets`` draws each point around its mode's centre)
and by the mode metrics (``lsgan.metrics.modes``, the suite's nearest-centre evaluator), so a point's label
and the centre it is scored against can never disagree. Imports only numpy: the data layer and the
metrics both sit above it.

- ring8: 8 centres evenly spaced on a circle of radius 2 (VEEGAN / PacGAN "2D ring"), mode i at angle 2πi/8;
- grid25: 25 centres on {-4,-2,0,2,4}² (VEEGAN / PacGAN "2D grid"), mode = 5·row + col, centre (2·row − 4, 2·col − 4).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

TOY_DATASETS = ("ring8", "grid25")  # the 2-D mixtures whose modes are known centres


def ring_centers(n: int = 8, radius: float = 2.0) -> np.ndarray:
    """n centres evenly spaced on a circle (ring8: n=8, radius 2 as in VEEGAN/Unrolled GAN), float64 n×2."""
    a = 2 * math.pi * np.arange(n) / n
    return np.stack([radius * np.cos(a), radius * np.sin(a)], axis=1)


def grid_centers(side: int = 5, spacing: float = 2.0) -> np.ndarray:
    """side² centres on a square grid centred at 0 (grid25: side 5, spacing 2 → −4..4), float64 side²×2;
    centre i is (row, col) = (i // side, i % side)."""
    coords = (np.arange(side) - (side - 1) / 2) * spacing
    gx, gy = np.meshgrid(coords, coords, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def toy_centers(name: str) -> Optional[np.ndarray]:
    """Mode centres of a 2-D toy dataset (float64 k×2, row i = mode i); None for any other dataset."""
    if name == "ring8":
        return ring_centers(8, 2.0)
    return grid_centers(5, 2.0) if name == "grid25" else None


__all__ = ["TOY_DATASETS", "grid_centers", "ring_centers", "toy_centers"]
