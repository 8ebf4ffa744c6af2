"""Evaluation and mode-matching reports of a trained NEMGAN (``lsgan.methods.nemgan``):

* class_mean_distances / nearest_mean_agreement / plot_distance_histograms — the paper's
  Fig. 2: per mode, histograms of the distances of its samples to every mode's mean, in the
  latent space (z) and in the generated space (g(z): pixels or evaluator features). Mode
  matching works when the generated histograms separate like the latent ones.
* mode_matching_report — draws the samples, writes that figure and, given real data, the
  generated-mode × real-class k-NN KL matrix (lsgan.metrics.classwise_knn_kl_matrix).
* evaluate_nemgan — the numbers of the benchmark and the experiment collectors.
* mnist_evaluator — the cached MNIST evaluator those numbers use (trained once if absent).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch

from lsgan.toys import toy_centers


# --------------------------------------------------------------------------- Fig. 2
def class_mean_distances(features, labels, k: int) -> np.ndarray:
    """N × k Euclidean distances of every sample to the mean of each class 0..k−1 (NaN columns
    for classes without samples). features: N×d (flattened if more dims), labels: N ints."""
    f = torch.as_tensor(features).detach().cpu().double().flatten(1)
    y = torch.as_tensor(labels).detach().cpu().long()
    means = torch.full((k, f.shape[1]), float("nan"), dtype=torch.float64)
    for c in range(k):
        if (y == c).any():
            means[c] = f[y == c].mean(0)
    return torch.cdist(f, means).numpy()


def nearest_mean_agreement(distances: np.ndarray, labels) -> float:
    """Fraction of samples whose nearest class mean is their own class's (1.0 = separated modes)."""
    d = np.where(np.isnan(distances), np.inf, distances)
    return float(np.mean(d.argmin(axis=1) == np.asarray(torch.as_tensor(labels).cpu())))


def plot_distance_histograms(latent_dist: np.ndarray, latent_y, gen_dist: np.ndarray, gen_y, path: str,
                             bins: int = 40, max_cols: int = 10) -> str:
    """Two rows (latent, generated) × one panel per class mean; each panel overlays one
    histogram per mode of the distances of that mode's samples to the panel's mean."""
    from lsgan.metrics.clustering import agg_figure

    k = min(latent_dist.shape[1], max_cols)
    fig = agg_figure(figsize=(2.2 * k + 1, 4.6))
    rows = (("latent z", latent_dist, np.asarray(latent_y)), ("generated g(z)", gen_dist, np.asarray(gen_y)))
    for r, (name, dist, y) in enumerate(rows):
        for j in range(k):
            ax = fig.add_subplot(2, k, r * k + j + 1)
            finite = dist[:, j][np.isfinite(dist[:, j])]
            if len(finite) == 0:
                continue
            edges = np.linspace(finite.min(), finite.max() + 1e-9, bins + 1)
            for i in range(dist.shape[1]):
                if (y == i).any():
                    ax.hist(dist[y == i, j], bins=edges, alpha=0.5, label=f"mode {i}")
            ax.set_title(f"{name}: to mean {j}", fontsize=8)
            ax.tick_params(labelsize=6)
    handles, names = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="center right", fontsize=7)
    fig.tight_layout(rect=(0, 0, 1 - 0.9 / (2.2 * k + 1), 1))
    fig.savefig(path, dpi=110)
    return path


@torch.no_grad()
def mode_matching_report(method, out_dir: str, n_per_mode: int = 200,
                         feature_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                         real_features=None, real_labels=None, seed: int = 0) -> Dict[str, object]:
    """Fig. 2 (and, with real data, the mode × class KL matrix) for a trained nemgan.

    ``feature_fn`` maps generated samples to the space the generated-side distances are taken
    in (default: the flattened samples); ``real_features`` must live in the same space.
    Returns {"latent_agreement", "generated_agreement", "kl_matrix" (or None), "figures"}.
    """
    os.makedirs(out_dir, exist_ok=True)
    k = method.num_conditions
    modes = torch.arange(k).repeat_interleave(n_per_mode)
    gen = torch.Generator().manual_seed(seed)  # own RNG: a report never moves the training RNG
    z, y = method.prior.sample(len(modes), modes=modes, generator=gen)
    x = torch.cat([method.generator(c.to(method.device)).cpu() for c in z.split(500)])
    feats = feature_fn(x) if feature_fn is not None else x.flatten(1)
    d_lat, d_gen = class_mean_distances(z, y, k), class_mean_distances(feats, y, k)
    figures = [plot_distance_histograms(d_lat, y, d_gen, y, str(Path(out_dir) / "mode_distances.png"))]
    out: Dict[str, object] = {"latent_agreement": nearest_mean_agreement(d_lat, y),
                              "generated_agreement": nearest_mean_agreement(d_gen, y), "kl_matrix": None}
    if real_features is not None and real_labels is not None:
        from lsgan.metrics import classwise_knn_kl_matrix
        from lsgan.reports import matrix_picture

        labels = torch.as_tensor(real_labels).long()
        C = int(labels.max()) + 1
        kl = classwise_knn_kl_matrix(feats, y, real_features, labels, K=k, C=C, seed=seed)
        kl_png = matrix_picture(kl, Path(out_dir) / "mode_class_kl.png", "KL(generated mode ‖ real class)")
        figures.append(str(kl_png))
        out["kl_matrix"] = kl
    out["figures"] = figures
    return out


# --------------------------------------------------------------------------- numbers
def mnist_evaluator(data_root: str, cache_dir: str = "~/.cache/lsgan", epochs: float = 1.0, log=print):
    """The cached 10-class MNIST evaluator at 32 px: ``lsgan.train_evaluator``'s (trained once and
    cached when absent; its test accuracy is in ``meta["test_acc"]``)."""
    from lsgan.metrics import load_evaluator
    from lsgan.compose import compose_config
    from lsgan.train_evaluator import train_and_cache

    cfg = compose_config(["dataset=mnist", f"data.root={data_root}", f"metrics.cache_dir={cache_dir}",
                          f"metrics.evaluator_epochs={epochs}"])
    ev = load_evaluator(train_and_cache(cfg, log=log)["path"])
    if ev.meta.get("n_classes") != 10:
        raise ValueError(f"{ev.meta}: not the 10-class MNIST evaluator the nemgan numbers need")
    return ev


@torch.no_grad()
def evaluate_nemgan(method, datamodule, evaluator=None, class_ids: Optional[Sequence[int]] = None,
                    n_gen: int = 2000, seed: int = 0) -> Dict[str, float]:
    """Numbers for a trained nemgan on the datamodule's evaluation split.

    - h_acc / h_bal_acc / h_nmi / h_ari: clustering of real eval images by ``condition_of``
      (Hungarian ACC; balanced = mean per-class recall, which matters on imbalanced splits).
    - images with an ``evaluator``: cond_acc (generated samples of each mode, classified, modes
      mapped to classes as in ``cluster_conditional_accuracy``), classifier_fid (n_gen samples
      drawn from P_Y vs n_gen real eval images, on evaluator features). ``class_ids``: the
      evaluator's class ids of the dataset's classes 0..C−1 (data.classes), e.g. [0, 4];
      predictions are restricted to them.
    - 2-D toys (ring8 / grid25): modes, high_quality, reverse_kl of n_gen samples (metrics.modes).
    - stacked_mnist with the MNIST evaluator: modes (of 1000) and stacked_kl of n_gen samples.
    """
    from lsgan.metrics import (balanced_cluster_acc, classifier_fid, cluster_conditional_accuracy, clustering_report,
                               stacked_mnist_modes, toy_mode_stats)

    method.eval()
    torch.manual_seed(seed)  # sampling below uses the global RNG; make the numbers repeatable
    ev_set = datamodule.eval_set
    out: Dict[str, float] = {}
    name = method.cfg.data.name
    if name == "stacked_mnist":
        if evaluator is not None:  # each channel read by the MNIST evaluator: 1000 possible modes
            fake = torch.cat([method.sample(min(500, n_gen - s)).cpu() for s in range(0, n_gen, 500)])
            digits = torch.stack([evaluator.predict(fake[:, c:c + 1]) for c in range(3)], dim=1)
            stats = stacked_mnist_modes(digits)
            out.update(modes=stats["modes"], n_modes=1000, stacked_kl=stats["kl"])
        return out  # h(x) against 1000 stack labels with k modes says little
    x_real, y_real = ev_set.images(), ev_set.clean_labels
    if method.terms:
        pred = method.condition_of(x_real).cpu()
        rep = clustering_report(y_real, pred)
        out.update(h_acc=rep["acc"], h_bal_acc=balanced_cluster_acc(y_real, pred, method.num_conditions,
                                                                     ev_set.num_classes),
                   h_nmi=rep["nmi"], h_ari=rep["ari"])
    centers = toy_centers(name)
    if centers is not None:
        samples = method.sample(n_gen).cpu()
        stats = toy_mode_stats(samples, centers, float(method.cfg.data.std))
        out.update(modes=stats["modes"], n_modes=stats["n_modes"], high_quality=stats["high_quality"],
                   reverse_kl=stats["reverse_kl"])
    elif evaluator is not None:
        k, C = method.num_conditions, ev_set.num_classes
        ids = list(range(C)) if class_ids is None else list(class_ids)
        modes = torch.arange(k).repeat_interleave(max(1, n_gen // k))
        fake = torch.cat([method.sample(len(m), condition=m.to(method.device)).cpu() for m in modes.split(500)])
        pred = evaluator.logits(fake)[:, ids].argmax(1)
        out["cond_acc"] = cluster_conditional_accuracy(modes, pred, k, C)["accuracy"]
        n = min(n_gen, len(x_real))
        real = x_real[torch.randperm(len(x_real))[:n]]
        fake = torch.cat([method.sample(min(500, n - s)).cpu() for s in range(0, n, 500)])
        out["classifier_fid"] = classifier_fid(evaluator, fake, real)
    return out
