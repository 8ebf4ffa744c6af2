"""Mode-coverage metrics: stacked MNIST (1000 modes), 2-D toy mixtures (ring8 / grid25), and a
class-wise nearest-neighbour KL matrix between generated modes and real classes.

Conventions (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018):

- stacked MNIST: a sample's mode is the triple of digits an MNIST classifier reads in its
  three channels (100·d0 + 10·d1 + d2). Modes hit = distinct modes with at least one sample.
  KL = KL(p_gen ‖ uniform over 1000) = Σ p log(1000 p).
- 2-D toys: each sample is assigned to its nearest mode centre (the centres: ``lsgan.toys``, the
  same copy the dataset readers draw around); it is *high quality* if it
  lies within 3σ of that centre. A mode is *covered* when at least ``min_count`` high-quality
  samples are assigned to it (VEEGAN: ``min_count=1``). Reverse KL = KL(p_gen ‖ uniform),
  p_gen being the distribution of high-quality samples over modes.
- class masses: the share of each class among generated samples against the data's shares.

Their Metrics (counts summed across processes): ``lsgan.metrics.engine_modes``; the class-wise KL
matrix's: ``lsgan.metrics.engine.ClasswiseKL``. The k-NN KL estimator is written here because
neither SciPy nor scikit-learn has one.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Union

import numpy as np
import scipy.stats
import torch

from lsgan.toys import TOY_DATASETS, grid_centers, ring_centers, toy_centers  # noqa: F401  (re-exported: the toys' centres)

ArrayLike = Union[np.ndarray, torch.Tensor]


def _np(a: ArrayLike) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def kl_to_uniform(counts: np.ndarray) -> float:
    """KL(p ‖ uniform) for p = counts / counts.sum() over len(counts) outcomes (0 log 0 = 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() <= 0:
        return float("nan")
    return float(scipy.stats.entropy(counts, np.ones(len(counts))))


def stacked_mnist_modes(digits: ArrayLike, n_modes: int = 1000) -> Dict[str, object]:
    """digits: N × 3 predicted digit per channel → {"modes", "kl", "n", "counts" (1000,)}."""
    d = _np(digits).astype(np.int64)
    if d.ndim != 2 or d.shape[1] != 3 or d.size == 0 or d.min() < 0 or d.max() > 9:
        raise ValueError(f"digits: expected N×3 ints in 0..9, got shape {d.shape}")
    mode = d[:, 0] * 100 + d[:, 1] * 10 + d[:, 2]
    counts = np.bincount(mode, minlength=n_modes)
    return {"modes": int((counts > 0).sum()), "kl": kl_to_uniform(counts), "n": int(len(d)), "counts": counts}


def toy_mode_stats(samples: ArrayLike, centers: ArrayLike, std: float, min_count: int = 1) -> Dict[str, object]:
    """2-D mode coverage: {"modes", "n_modes", "high_quality" (fraction), "reverse_kl", "counts"}.

    ``std`` is the per-mode standard deviation of the real mixture (must match the data module).
    """
    x, c = _np(samples).astype(np.float64), _np(centers).astype(np.float64)
    if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1] or len(x) == 0:
        raise ValueError(f"samples / centers: need N×D and M×D, got {x.shape} and {c.shape}")
    if std <= 0 or min_count < 1:
        raise ValueError(f"std={std}, min_count={min_count}: need std > 0 and min_count >= 1")
    d = np.linalg.norm(x[:, None, :] - c[None, :, :], axis=2)
    nearest = d.argmin(axis=1)
    good = d[np.arange(len(x)), nearest] <= 3 * std
    counts = np.bincount(nearest[good], minlength=len(c))
    return {"modes": int((counts >= min_count).sum()), "n_modes": int(len(c)),
            "high_quality": float(good.mean()), "reverse_kl": kl_to_uniform(counts), "counts": counts}


def class_masses(generated_classes: ArrayLike, data_classes: ArrayLike, num_classes: int) -> Dict[str, object]:
    """{"value": max over classes |generated share − data share|, "generated": shares (C,), "data": shares (C,)}:
    does a model draw its classes in the data's proportions (NEMGAN's 02:98 claim)? Class ids at or
    above ``num_classes`` are not counted in any share."""
    C = int(num_classes)
    g, d = (torch.as_tensor(a).detach().cpu().long() for a in (generated_classes, data_classes))
    generated = torch.bincount(g, minlength=C)[:C].double() / max(1, len(g))
    data = torch.bincount(d, minlength=C)[:C].double() / max(1, len(d))
    return {"value": float((generated - data).abs().max()), "generated": generated.tolist(), "data": data.tolist()}


def knn_kl_divergence(p_samples: ArrayLike, q_samples: ArrayLike, k: int = 1) -> float:
    """k-NN estimate of KL(P ‖ Q) from samples (Wang, Kulkarni & Verdú 2009):

        D̂ = (d / n) Σ_i log(ν_k(i) / ρ_k(i)) + log(m / (n − 1)),

    ρ_k(i): distance from P-sample i to its k-th nearest other P-sample; ν_k(i): to its k-th
    nearest Q-sample; n, m the sample counts; d the dimension. Consistent but biased at small
    n, so it can come out slightly negative for equal distributions.
    """
    p = torch.as_tensor(p_samples).detach().cpu().double()
    q = torch.as_tensor(q_samples).detach().cpu().double()
    n, m, dim = len(p), len(q), p.shape[1]
    if n <= k or m < k:
        raise ValueError(f"knn_kl_divergence: need more than k={k} samples in P and at least k in Q, got {n}, {m}")
    dpp = torch.cdist(p, p)
    dpp.fill_diagonal_(float("inf"))
    rho = dpp.topk(k, dim=1, largest=False).values[:, -1]
    nu = torch.cdist(p, q).topk(k, dim=1, largest=False).values[:, -1]
    tiny = torch.finfo(torch.float64).tiny  # duplicates give 0 distances; keep the logs finite
    return float(dim / n * torch.log(nu.clamp_min(tiny) / rho.clamp_min(tiny)).sum() + math.log(m / (n - 1)))


def classwise_knn_kl_matrix(gen_feats: ArrayLike, cond: ArrayLike, real_feats: ArrayLike, real_labels: ArrayLike,
                            K: int, C: int, k: int = 1, max_per_group: int = 500,
                            pca_dim: Optional[int] = 10, seed: int = 0) -> np.ndarray:
    """K × C matrix M[i, j] = k-NN estimate of KL(generated samples of mode i ‖ real images of class j)
    (NEMGAN, Fig. 7): a good label-free conditional GAN shows one low entry per row, in a
    different column per row.

    Features are first projected jointly (real and generated) onto ``pca_dim`` principal
    components fitted on the real features, because the estimator's d/n factor makes raw
    2048-d values meaningless at a few hundred samples; each group is subsampled (seeded) to
    ``max_per_group``. Rows of modes or columns of classes with ≤ k samples are NaN.
    """
    g, r = _np(gen_feats).astype(np.float64), _np(real_feats).astype(np.float64)
    c, y = _np(cond).astype(np.int64), _np(real_labels).astype(np.int64)
    if pca_dim is not None and pca_dim < g.shape[1]:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=pca_dim, random_state=seed).fit(r)
        g, r = pca.transform(g), pca.transform(r)
    rng = np.random.default_rng(seed)

    def group(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        idx = np.flatnonzero(mask)
        if len(idx) > max_per_group:
            idx = rng.choice(idx, max_per_group, replace=False)
        return x[idx]

    gens = [group(g, c == i) for i in range(K)]
    reals = [group(r, y == j) for j in range(C)]
    out = np.full((K, C), np.nan)
    for i, gi in enumerate(gens):
        for j, rj in enumerate(reals):
            if len(gi) > k and len(rj) >= k:
                out[i, j] = knn_kl_divergence(gi, rj, k)
    return out
