"""Fréchet distance (FID), kernel inception distance (KID), inception score, and a disk
cache of reference-set statistics.

Everything here works on features (any backbone): ``classifier_fid`` is the same
``fid_from_features`` applied to an evaluator classifier's penultimate features.
Every FID reported against a reference carries a ``protocol`` dict (how many generated
samples, which reference split and size, which backbone), because FID values are only
comparable under the same protocol. Not torchmetrics' ``FrechetInceptionDistance`` /
``KernelInceptionDistance`` / ``InceptionScore``: those run their own network on images, where lsgan
computes each feature set once and shares it (their Metrics on features: ``lsgan.metrics.engine``).
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
import zipfile
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Union

import numpy as np
import scipy.linalg
import scipy.special
import torch

from lsgan.io import atomic_file

ArrayLike = Union[np.ndarray, torch.Tensor]


def _as_f64(a: ArrayLike, name: str, ndim: int) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim}-D array, got shape {a.shape}")
    return a


# --------------------------------------------------------------------------- FID
def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike,
                     method: str = "eigh") -> float:
    """‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^{1/2}) in float64.

    method="eigh" (default) computes tr((Σ1Σ2)^{1/2}) as Σ √λ of the symmetric PSD matrix
    Σ1^{1/2} Σ2 Σ1^{1/2} (same eigenvalues as Σ1Σ2): no complex parts, and ~5× faster than
    sqrtm at d=2048. method="sqrtm" is the classic scipy route (pytorch-fid / torch-fidelity):
    a small ε·I is added when the product is singular and the real part is kept; an imaginary
    part larger than 1e-3 (numerically broken covariances) raises.
    """
    mu1, mu2 = _as_f64(mu1, "mu1", 1), _as_f64(mu2, "mu2", 1)
    s1, s2 = _as_f64(sigma1, "sigma1", 2), _as_f64(sigma2, "sigma2", 2)
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"frechet_distance: shape mismatch mu1 {mu1.shape}, sigma1 {s1.shape}, "
                         f"mu2 {mu2.shape}, sigma2 {s2.shape}")
    diff = mu1 - mu2
    if method == "eigh":
        w, v = np.linalg.eigh((s1 + s1.T) / 2)
        root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        m = root1 @ s2 @ root1
        lam = np.linalg.eigvalsh((m + m.T) / 2)
        tr_covmean = np.sqrt(np.clip(lam, 0, None)).sum()
    elif method == "sqrtm":
        covmean = scipy.linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            offset = np.eye(d) * 1e-6
            covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
        if np.iscomplexobj(covmean):
            imag = np.abs(covmean.imag).max()
            if imag > 1e-3:
                raise ValueError(f"frechet_distance: sqrtm has imaginary part {imag:.3g}; try method='eigh'")
            covmean = covmean.real
        tr_covmean = np.trace(covmean)
    else:
        raise ValueError(f"method={method!r} is not accepted; accepted values: eigh, sqrtm")
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def feature_stats(features: ArrayLike):
    """(mean, covariance) of N×d features in float64; covariance unbiased (N − 1), like np.cov."""
    f = _as_f64(features, "features", 2)
    if f.shape[0] < 2:
        raise ValueError(f"features: need at least 2 samples for a covariance, got {f.shape[0]}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def fid_from_features(features1: ArrayLike, features2: ArrayLike, method: str = "eigh") -> float:
    """FID between two N×d feature sets."""
    mu1, s1 = feature_stats(features1)
    mu2, s2 = feature_stats(features2)
    return frechet_distance(mu1, s1, mu2, s2, method=method)


# --------------------------------------------------------------------------- KID
def kid_from_features(features1: ArrayLike, features2: ArrayLike, subsets: int = 100, subset_size: int = 1000,
                      degree: int = 3, gamma: Optional[float] = None, coef0: float = 1.0,
                      seed: int = 0) -> Dict[str, float]:
    """Kernel inception distance (Bińkowski et al. 2018), as torch-fidelity / torchmetrics.

    Unbiased MMD² with the polynomial kernel k(x, y) = (γ xᵀy + c0)^degree, γ = 1/d, averaged
    over ``subsets`` random subsets of ``subset_size`` drawn without replacement from each set.
    Returns {"kid_mean", "kid_std"}.
    """
    f1, f2 = _as_f64(features1, "features1", 2), _as_f64(features2, "features2", 2)
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"kid: feature dims differ ({f1.shape[1]} vs {f2.shape[1]})")
    if subset_size < 2 or subset_size > min(len(f1), len(f2)):
        raise ValueError(f"subset_size={subset_size}: must be in [2, min(n1, n2)={min(len(f1), len(f2))}]")
    if subsets < 1:
        raise ValueError(f"subsets={subsets}: must be >= 1")
    gamma = 1.0 / f1.shape[1] if gamma is None else gamma
    rng = np.random.default_rng(seed)
    m = subset_size
    values = np.empty(subsets)
    for i in range(subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        kxx = (gamma * x @ x.T + coef0) ** degree
        kyy = (gamma * y @ y.T + coef0) ** degree
        kxy = (gamma * x @ y.T + coef0) ** degree
        # unbiased: drop the diagonal of the within-set kernels
        values[i] = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                     + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                     - 2 * kxy.mean())
    return {"kid_mean": float(values.mean()), "kid_std": float(values.std())}


# --------------------------------------------------------------------------- IS
NO_LOGITS_REASON = "the FID Inception network gives 2048-d pool features only, no class logits"


def inception_score(logits: Optional[ArrayLike], splits: int = 10,
                    reason: str = NO_LOGITS_REASON) -> Dict[str, object]:
    """Inception score exp(E_x KL(p(y|x) ‖ p(y))) over ``splits`` consecutive chunks.

    Returns {"is_mean", "is_std"}; when ``logits`` is None (the extractor has no classifier
    head) returns {"is_mean": None, "is_std": None, "skipped": reason} — never a made-up number.
    """
    if logits is None:
        return {"is_mean": None, "is_std": None, "skipped": reason}
    z = _as_f64(logits, "logits", 2)
    if splits < 1 or splits > len(z):
        raise ValueError(f"splits={splits}: must be in [1, number of samples={len(z)}]")
    log_p = z - scipy.special.logsumexp(z, axis=1, keepdims=True)
    scores = []
    for chunk in np.array_split(log_p, splits):
        log_py = scipy.special.logsumexp(chunk, axis=0) - np.log(len(chunk))
        kl = (np.exp(chunk) * (chunk - log_py)).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return {"is_mean": float(np.mean(scores)), "is_std": float(np.std(scores))}


# --------------------------------------------------------------------------- reference cache
def _slug(value) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", str(value)).strip("-") or "none"


@dataclass
class ReferenceStats:
    """Features and their (μ, Σ) for a reference split, tagged with what produced them.

    The cache file name is built from every field that changes the numbers (dataset, split,
    resolution, backbone, sample count; StudioGAN style), so a changed protocol never reads
    stale statistics. Files are written atomically (temp file + rename) and a file that fails
    to load is rebuilt.
    """

    mu: np.ndarray
    sigma: np.ndarray
    features: Optional[np.ndarray]
    dataset: str
    split: str
    resolution: int
    backbone: str
    n: int

    @classmethod
    def from_features(cls, features: ArrayLike, dataset: str, split: str, resolution: int,
                      backbone: str) -> "ReferenceStats":
        f = _as_f64(features, "features", 2)
        mu, sigma = feature_stats(f)
        return cls(mu, sigma, f.astype(np.float32), str(dataset), str(split), int(resolution),
                   str(backbone), int(len(f)))

    @staticmethod
    def cache_key(dataset: str, split: str, resolution: int, backbone: str, n: int) -> str:
        return "_".join(_slug(v) for v in (dataset, split, f"{int(resolution)}px", backbone, f"n{int(n)}"))

    @classmethod
    def cache_path(cls, cache_dir: str, dataset: str, split: str, resolution: int, backbone: str, n: int) -> str:
        folder = os.path.join(os.path.expanduser(str(cache_dir)), "reference_stats")
        return os.path.join(folder, cls.cache_key(dataset, split, resolution, backbone, n) + ".npz")

    def save(self, path: str) -> None:
        arrays = dict(mu=self.mu, sigma=self.sigma, dataset=self.dataset, split=self.split,
                      resolution=self.resolution, backbone=self.backbone, n=self.n)
        if self.features is not None:
            arrays["features"] = self.features
        with atomic_file(path) as fh:  # readers see the old file or the complete new one
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str) -> "ReferenceStats":
        with np.load(path, allow_pickle=False) as z:
            return cls(mu=z["mu"], sigma=z["sigma"],
                       features=z["features"] if "features" in z.files else None,
                       dataset=str(z["dataset"]), split=str(z["split"]), resolution=int(z["resolution"]),
                       backbone=str(z["backbone"]), n=int(z["n"]))

    @classmethod
    def load_or_compute(cls, cache_dir: str, dataset: str, split: str, resolution: int, backbone: str, n: int,
                        compute_features: Callable[[], ArrayLike]) -> "ReferenceStats":
        """Cached stats when present and readable, else ``compute_features()`` (N×d, N == n) then cache."""
        path = cls.cache_path(cache_dir, dataset, split, resolution, backbone, n)
        if os.path.isfile(path):
            try:
                stats = cls.load(path)
                if stats.n == n and stats.mu.shape[0] == stats.sigma.shape[0]:
                    return stats
                warnings.warn(f"reference stats {path}: content does not match its key; rebuilding")
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                warnings.warn(f"reference stats {path}: unreadable ({type(exc).__name__}); rebuilding")
        feats = compute_features()
        if len(feats) != n:
            raise ValueError(f"compute_features returned {len(feats)} rows, expected n={n}")
        stats = cls.from_features(feats, dataset, split, resolution, backbone)
        stats.save(path)
        return stats

    def protocol(self, n_generated: int) -> Dict[str, object]:
        """The settings an FID against this reference depends on; log it beside the value."""
        return {"n_generated": int(n_generated), "reference_dataset": self.dataset,
                "reference_split": self.split, "reference_n": self.n, "resolution": self.resolution,
                "backbone": self.backbone, "feature_dim": int(self.mu.shape[0])}

    def fingerprint(self) -> str:
        """Short hash of μ (tells apart two caches that share a key but not content)."""
        return hashlib.sha1(np.ascontiguousarray(self.mu).tobytes()).hexdigest()[:12]


def fid_against_reference(generated_features: ArrayLike, reference: ReferenceStats,
                          method: str = "eigh") -> Dict[str, object]:
    """{"fid": value, "protocol": reference.protocol(n_generated)}."""
    mu, sigma = feature_stats(generated_features)
    value = frechet_distance(mu, sigma, reference.mu, reference.sigma, method=method)
    return {"fid": value, "protocol": reference.protocol(len(generated_features))}


def kid_against_reference(generated_features: ArrayLike, reference: ReferenceStats, subsets: int = 100,
                          subset_size: int = 1000, seed: int = 0) -> Dict[str, object]:
    """KID against the cached reference features, with the same protocol dict as FID."""
    if reference.features is None:
        raise ValueError("reference: features were not stored; KID needs them")
    out = kid_from_features(generated_features, reference.features, subsets, subset_size, seed=seed)
    out["protocol"] = reference.protocol(len(generated_features))
    return out
