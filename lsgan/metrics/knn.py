"""k-nearest-neighbour label agreement of a feature space, and a t-SNE picture of it.

``knn_label_agreement`` asks, for each k: how often does a point's k-th nearest neighbour
(the point itself excluded) carry the same label? It measures how well a feature extractor
separates classes without training anything. The search is exact: squared distances
‖a‖² + ‖b‖² − 2ab come from one matmul per row chunk, then ``topk``; 60k × 256 runs in
about a minute on 2 cores.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


def knn_indices(features: ArrayLike, k: int, chunk: int = 2048) -> torch.Tensor:
    """N × k indices of each row's k nearest other rows, nearest first (exact, self excluded)."""
    x = torch.as_tensor(features).detach().cpu()
    x = x.double() if x.dtype == torch.float64 else x.float()
    if x.ndim != 2:
        raise ValueError(f"features: expected N×d, got shape {tuple(x.shape)}")
    if not 1 <= k < len(x):
        raise ValueError(f"k={k}: must be in [1, N-1={len(x) - 1}]")
    sq = (x * x).sum(dim=1)
    out = torch.empty(len(x), k, dtype=torch.int64)
    for start in range(0, len(x), chunk):
        a = x[start:start + chunk]
        # ‖a‖² is the same along a row, so it does not change the ranking and is left out
        d = sq[None, :] - 2 * a @ x.T
        rows = torch.arange(len(a))
        d[rows, rows + start] = float("inf")
        out[start:start + len(a)] = d.topk(k, dim=1, largest=False).indices
    return out


def knn_label_agreement(features: ArrayLike, labels: ArrayLike, ks: Sequence[int] = (1, 2, 5), chunk: int = 2048,
                        pca_dim: Optional[int] = None, seed: int = 0) -> Dict[Union[int, str], object]:
    """{k: fraction of points whose k-th nearest neighbour shares their label} for each k in ks,
    plus "pca_dim" (None or the dimension features were reduced to, at most 256), "dim" and "n".
    """
    x = torch.as_tensor(features).detach().cpu()
    y = torch.as_tensor(labels).detach().cpu().long()
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"features / labels: need N×d and N, got {tuple(x.shape)} and {tuple(y.shape)}")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks={ks}: must be positive integers")
    if pca_dim is not None:
        if not 1 <= pca_dim <= 256:
            raise ValueError(f"pca_dim={pca_dim}: must be in [1, 256] or None")
        if pca_dim < x.shape[1]:
            from sklearn.decomposition import PCA

            reduced = PCA(n_components=pca_dim, random_state=seed).fit_transform(x.double().numpy())
            x = torch.from_numpy(reduced).float()
        else:
            pca_dim = None  # already small enough: nothing reduced
    idx = knn_indices(x, ks[-1], chunk)
    out: Dict[Union[int, str], object] = {}
    for k in ks:
        out[k] = (y[idx[:, k - 1]] == y).double().mean().item()
    out.update(pca_dim=pca_dim, dim=int(x.shape[1]), n=int(len(x)))
    return out


def tsne_plot(features: ArrayLike, labels: ArrayLike, correct: Optional[ArrayLike] = None, path: str = "tsne.png",
              max_points: int = 5000, seed: int = 0, title: Optional[str] = None) -> str:
    """2-D t-SNE of features coloured by label; points with ``correct`` False are drawn as black ×.

    At most ``max_points`` (seeded subset) are embedded: t-SNE cost grows as N log N and a
    picture does not gain from more.
    """
    from sklearn.manifold import TSNE

    from lsgan.metrics.clustering import agg_figure

    x = np.asarray(torch.as_tensor(features).detach().cpu().float())
    y = np.asarray(torch.as_tensor(labels).detach().cpu())
    ok = None if correct is None else np.asarray(torch.as_tensor(correct).detach().cpu()).astype(bool)
    if len(x) > max_points:
        keep = np.random.default_rng(seed).permutation(len(x))[:max_points]
        x, y = x[keep], y[keep]
        ok = None if ok is None else ok[keep]
    emb = TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30.0, max(2.0, (len(x) - 1) / 3))
               ).fit_transform(x)
    fig = agg_figure(figsize=(6, 6))
    ax = fig.add_subplot()
    sc = ax.scatter(emb[:, 0], emb[:, 1], c=y, cmap="tab10" if y.max() < 10 else "tab20", s=4)
    if ok is not None and (~ok).any():
        ax.scatter(emb[~ok, 0], emb[~ok, 1], c="black", marker="x", s=10, linewidths=0.6, label="wrong")
        ax.legend(loc="upper right")
    fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
