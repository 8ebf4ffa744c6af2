"""slcGAN's figures (the paper's Fig. 1 and Fig. 4), drawn from a trained ``lsgan.methods.slcgan.SLCGAN``.

- ``plot_cluster_sizes`` / ``sorted_cluster_sizes``: sorted cluster sizes, C's argmax beside k-means on C's
  features (Fig. 4);
- ``real_vs_generated_grid`` / ``save_real_vs_generated``: per cluster, real images C puts there beside
  samples G generates for it (Fig. 1);
- ``write_figures(method, images, out_dir)``: both, for a set of real images (``benchmarks/slcgan_mnist.py``).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Dict, Optional, Sequence, Union

import numpy as np
import torch
from torchvision.utils import save_image

from lsgan.metrics.clustering import agg_figure, kmeans_labels
from lsgan.nets.modes import eval_mode

if TYPE_CHECKING:
    from lsgan.methods.slcgan import SLCGAN


def sorted_cluster_sizes(ids: Union[np.ndarray, torch.Tensor], k: int) -> np.ndarray:
    """Sizes of clusters 0..k−1 (empty ones included), largest first."""
    ids = ids.detach().cpu().numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
    return np.sort(np.bincount(ids.astype(np.int64), minlength=k))[::-1]


def plot_cluster_sizes(c_ids, kmeans_ids, k: int, path: str, title: Optional[str] = None) -> str:
    """Bar chart of sorted cluster sizes, C's argmax next to k-means on C's features (Fig. 4)."""
    ours, base = sorted_cluster_sizes(c_ids, k), sorted_cluster_sizes(kmeans_ids, k)
    fig = agg_figure(figsize=(max(4.0, 0.25 * k + 2), 3))
    ax = fig.add_subplot()
    pos = np.arange(k)
    ax.bar(pos - 0.2, ours, width=0.4, label="C (argmax)")
    ax.bar(pos + 0.2, base, width=0.4, label="k-means on C's features")
    ax.set_xlabel("cluster (sorted by size)")
    ax.set_ylabel("images")
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


@torch.no_grad()
def real_vs_generated_grid(method: SLCGAN, real: torch.Tensor, clusters: Optional[Sequence[int]] = None,
                           per_side: int = 8) -> torch.Tensor:
    """Rows of [per_side real images C puts in cluster k | per_side samples of G(·, k)] (Fig. 1).

    Clusters default to the 10 largest on ``real``; a cluster with fewer real members is
    padded with blank (−1) tiles. Returns (rows·2·per_side)×C×H×W in [-1, 1].
    """
    ids = method.condition_of(real.to(method.device)).cpu()
    if clusters is None:
        sizes = torch.bincount(ids, minlength=method.num_conditions)
        clusters = sizes.argsort(descending=True)[: min(10, method.num_conditions)].tolist()
    tiles = []
    for k in clusters:
        members = real[ids == k][:per_side].cpu()
        blank = -torch.ones((per_side - len(members),) + tuple(real.shape[1:]))
        tiles += [members, blank, method.sample(per_side, condition=int(k)).cpu()]
    return torch.cat(tiles)


def save_real_vs_generated(method: SLCGAN, real: torch.Tensor, path: str,
                           clusters: Optional[Sequence[int]] = None, per_side: int = 8) -> str:
    """PNG of :func:`real_vs_generated_grid`, one cluster per row."""
    grid = real_vs_generated_grid(method, real, clusters, per_side)
    save_image((grid + 1) / 2, path, nrow=2 * per_side, padding=1, pad_value=1.0)
    return path


def write_figures(method: SLCGAN, images: torch.Tensor, out_dir: str, n_kmeans: int = 2000, seed: int = 0) -> Dict[str, str]:
    """Both figures for ``images`` (real, in [-1, 1]): ``cluster_sizes.png`` (C against k-means on
    C's features, over a seeded subset of ``n_kmeans`` images) and ``real_vs_generated.png``."""
    os.makedirs(out_dir, exist_ok=True)
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n_kmeans]
    x = images[idx]
    with eval_mode(method):
        k = method.num_conditions
        ids = method.condition_of(x.to(method.device)).cpu()
        km = kmeans_labels(method.clusterer.embed(x), k, seed)
        return {"cluster_sizes": plot_cluster_sizes(ids, km, k, os.path.join(out_dir, "cluster_sizes.png"),
                                                    title=f"cluster sizes, K={k}, {len(x)} images"),
                "real_vs_generated": save_real_vs_generated(method, x, os.path.join(out_dir, "real_vs_generated.png"))}
