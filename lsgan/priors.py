"""Latent distributions with discrete modes: what "generate from condition k" samples from.

Every prior draws ``(z, y)``: ``z`` the generator input (B×dim), ``y`` the mode of each row
(B, int64). Mode proportions follow ``weights`` (uniform when None) unless ``modes`` are given.

* ``onehot_gaussian`` — ClusterGAN (Mukherjee et al. 2019): z = [z_n, onehot(y)], z_n ~ N(0, σ²I)
  with small σ (0.10 in the authors' code) so the cluster code dominates.
* ``gmm`` — a continuous Gaussian mixture: z ~ N(μ_y, σ²I), the means fixed by ``seed``
  (the "ClusterGAN (GMM)" variant).
* ``engineered`` — NEMGAN's engineered latent: each mode owns a block of coordinates set to 1,
  plus uniform noise in ±noise_width on every coordinate; with noise_width < 0.5 the modes'
  supports do not overlap.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

from lsgan.errors import ConfigError, check_choice

PRIORS = ("none", "onehot_gaussian", "gmm", "engineered")


@dataclass
class PriorConfig:
    name: str = "none"
    k: int = 10                         # number of modes / clusters
    dim: int = 30                       # continuous dimensions (z_n for onehot_gaussian; total for gmm/engineered)
    sigma: float = 0.10                 # std of z_n (onehot_gaussian) or of each component (gmm)
    weights: Optional[List[float]] = None  # mode prior P_Y; None = uniform
    noise_width: float = 0.3            # engineered: uniform noise in ±noise_width
    mean_scale: float = 1.0             # gmm: component means drawn as mean_scale·N(0, I)
    seed: int = 0                       # gmm: seed of the component means


class Prior:
    def __init__(self, cfg: PriorConfig):
        self.cfg = cfg
        self.k = int(cfg.k)
        if self.k < 1:
            raise ConfigError(f"prior.k={cfg.k}: must be >= 1")
        w = torch.ones(self.k) if cfg.weights is None else torch.tensor(list(cfg.weights), dtype=torch.float)
        bad_sum = cfg.weights is not None and abs(float(w.sum()) - 1.0) > 1e-4
        if w.numel() != self.k or (w < 0).any() or bad_sum:
            raise ConfigError(f"prior.weights={list(cfg.weights)}: need {self.k} non-negative numbers summing to 1")
        self.weights = w / w.sum()

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def modes(self, n: int, generator=None, device=None) -> torch.Tensor:
        return torch.multinomial(self.weights, n, replacement=True, generator=generator).to(device)

    def sample(self, n: int, modes: Optional[torch.Tensor] = None, generator=None,
               device=None) -> Tuple[torch.Tensor, torch.Tensor]:
        if modes is None:
            y = self.modes(n, generator)
        else:  # one mode for all n, or one per sample
            y = torch.as_tensor(modes).long().reshape(-1).cpu()
            if y.numel() not in (1, n):
                raise ValueError(f"condition: give one mode or {n} (one per sample), got {y.numel()}")
            y = y.expand(n)
        if ((y < 0) | (y >= self.k)).any():
            raise ValueError(f"condition: modes must be in 0..{self.k - 1}")
        z = self._z(y, generator)
        return z.to(device), y.to(device)

    def _z(self, y: torch.Tensor, generator) -> torch.Tensor:
        raise NotImplementedError


class OneHotGaussian(Prior):
    @property
    def dim(self) -> int:
        return self.cfg.dim + self.k

    def _z(self, y, generator):
        z_n = torch.randn(len(y), self.cfg.dim, generator=generator) * self.cfg.sigma
        return torch.cat([z_n, torch.nn.functional.one_hot(y, self.k).float()], dim=1)


class GaussianMixture(Prior):
    def __init__(self, cfg: PriorConfig):
        super().__init__(cfg)
        g = torch.Generator().manual_seed(int(cfg.seed))
        self.means = torch.randn(self.k, cfg.dim, generator=g) * cfg.mean_scale

    @property
    def dim(self) -> int:
        return self.cfg.dim

    def _z(self, y, generator):
        return self.means[y] + torch.randn(len(y), self.cfg.dim, generator=generator) * self.cfg.sigma


class Engineered(Prior):
    def __init__(self, cfg: PriorConfig):
        super().__init__(cfg)
        if cfg.dim < self.k:
            raise ConfigError(f"prior.dim={cfg.dim}: the engineered prior needs dim >= prior.k={self.k}")
        if not 0 <= cfg.noise_width < 0.5:
            raise ConfigError(f"prior.noise_width={cfg.noise_width}: must be in [0, 0.5) for the modes not to overlap")
        self.block = cfg.dim // self.k  # coordinates owned by each mode

    @property
    def dim(self) -> int:
        return self.cfg.dim

    def codes(self) -> torch.Tensor:
        c = torch.zeros(self.k, self.cfg.dim)
        for m in range(self.k):
            c[m, m * self.block:(m + 1) * self.block] = 1.0
        return c

    def _z(self, y, generator):
        noise = (torch.rand(len(y), self.cfg.dim, generator=generator) * 2 - 1) * self.cfg.noise_width
        return self.codes()[y] + noise


def build_prior(cfg) -> Prior:
    check_choice("prior", cfg.name, PRIORS)
    if cfg.name == "none":
        raise ConfigError("prior=none: this method needs a prior; accepted: onehot_gaussian, gmm, engineered")
    return {"onehot_gaussian": OneHotGaussian, "gmm": GaussianMixture, "engineered": Engineered}[cfg.name](cfg)
