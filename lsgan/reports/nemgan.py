"""Evaluation and mode-matching reports of a trained NEMGAN (``lsgan.methods.nemgan``):

* class_mean_distances / nearest_mean_agreement / plot_distance_histograms — the paper's
  Fig. 2: per mode, histograms of the distances of its samples to every mode's mean, in the
  latent space (z) and in the generated space (g(z): pixels or evaluator features). Mode
  matching works when the generated histograms separate like the latent ones.
* mode_matching_report — draws the samples, writes that figure and, given real data, the
  generated-mode × real-class k-NN KL matrix (lsgan.metrics.classwise_knn_kl_matrix).
* evaluate_nemgan — the numbers of the benchmark and the experiment collectors: the metric suite's
  (``lsgan.metrics.suite.MetricSuite``), flattened to their columns.
* mnist_evaluator — the 10-class MNIST evaluator those numbers read, through the shared
  ``train_and_cache`` (trained once if absent, at the one evaluator cache path).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch
from omegaconf import OmegaConf

from lsgan.compose import compose_config
from lsgan.metrics.clustering import agg_figure
from lsgan.metrics.evaluator import load_evaluator
from lsgan.metrics.modes import classwise_knn_kl_matrix
from lsgan.metrics.resolve import ClassSubsetEvaluator, StackedMNISTEvaluator
from lsgan.metrics.suite import MetricSuite
from lsgan.reports import matrix_picture
from lsgan.toys import TOY_DATASETS
from lsgan.train_evaluator import train_and_cache


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
        labels = torch.as_tensor(real_labels).long()
        C = int(labels.max()) + 1
        kl = classwise_knn_kl_matrix(feats, y, real_features, labels, K=k, C=C, seed=seed)
        kl_png = matrix_picture(kl, Path(out_dir) / "mode_class_kl.png", "KL(generated mode ‖ real class)")
        figures.append(str(kl_png))
        out["kl_matrix"] = kl
    out["figures"] = figures
    return out


# --------------------------------------------------------------------------- numbers
def mnist_evaluator(data_root: str, cache_dir: Optional[str] = None, epochs: float = 1.0, log=print):
    """The 10-class MNIST evaluator at 32 px that nemgan's numbers read (on a class subset too, through
    ``class_ids``): the one ``train_and_cache`` trains once and keeps at its cache path
    (``lsgan.metrics.resolve.evaluator_path``; ``cache_dir`` None: the config's ``metrics.cache_dir``).
    Its test accuracy is in ``meta["test_acc"]``; ``epochs`` applies only when it is trained here."""
    overrides = ["dataset=mnist", f"data.root={data_root}", f"metrics.evaluator_epochs={epochs}"]
    if cache_dir is not None:
        overrides.append(f"metrics.cache_dir={cache_dir}")
    ev = load_evaluator(train_and_cache(compose_config(overrides), log=log)["path"])
    if ev.meta.get("n_classes") != 10:
        raise ValueError(f"{ev.meta}: not the 10-class MNIST evaluator the nemgan numbers need")
    return ev


def evaluate_nemgan(method, datamodule, evaluator=None, class_ids: Optional[Sequence[int]] = None,
                    n_gen: int = 2000, seed: int = 0) -> Dict[str, float]:
    """The numbers of the nemgan benchmark and collector: the metric suite's (``MetricSuite``) on the
    datamodule's evaluation split, flattened to the columns they tabulate.

    - h_acc / h_bal_acc / h_nmi / h_ari: ``cluster`` — ``condition_of`` on the real evaluation images
      (Hungarian ACC; balanced = mean per-class recall, which matters on imbalanced splits).
    - images with an evaluator: cond_acc (``cond_acc`` on n_gen samples spread evenly over the modes,
      so a 2 % mode weighs as much as a 98 % one; modes mapped to classes as in
      ``cluster_conditional_accuracy``) and variety (the suite reports it beside cond_acc);
      classifier_fid (``classifier_fid``: n_gen samples drawn by P_Y vs n_gen real images of the
      evaluation split, on evaluator features).
    - 2-D toys (ring8 / grid25): modes, n_modes, high_quality, reverse_kl of n_gen samples (``modes``).
    - stacked_mnist with the MNIST evaluator: modes (of 1000) and stacked_kl of n_gen samples (``modes``).

    ``evaluator``: an evaluator (``lsgan.metrics.evaluator.Evaluator``), "auto" (the dataset's cached one,
    ``lsgan.metrics.resolve.resolve_evaluator``) or None (no evaluator numbers). ``class_ids``: a given
    evaluator's class ids of the dataset's classes 0..C−1 (data.classes), e.g. [0, 4]; predictions are
    restricted to them (``ClassSubsetEvaluator``). A number that does not apply is left out. The suite
    samples with its own RNG seeded by ``seed``: the caller's RNG is left as it was.
    """
    name = method.cfg.data.name
    cfg = OmegaConf.merge(method.cfg, {"metrics": {"seed": int(seed), "modes_n": int(n_gen), "ref_n": int(n_gen),
                                                   "ref_split": str(method.cfg.data.eval_split)}})
    if evaluator is not None and not isinstance(evaluator, str) and name not in TOY_DATASETS:
        if name == "stacked_mnist":
            evaluator = StackedMNISTEvaluator(evaluator)
        else:
            ids = list(range(datamodule.eval_set.num_classes)) if class_ids is None else [int(c) for c in class_ids]
            if ids != list(range(int(evaluator.meta["n_classes"]))):
                evaluator = ClassSubsetEvaluator(evaluator, ids)
    suite = MetricSuite(method, datamodule, cfg, evaluator=evaluator, log=None)
    out: Dict[str, float] = {}
    if name == "stacked_mnist":  # h(x) against 1000 stack labels with k modes says little
        res = suite.compute(["modes"], n_gen)["modes"]
        if "skipped" not in res:
            out.update(modes=res["value"], n_modes=res["n_modes"], stacked_kl=res["kl"])
        return out
    toy = name in TOY_DATASETS
    res = suite.compute(["cluster", "modes" if toy else "classifier_fid"], n_gen)
    if "skipped" not in res["cluster"]:
        out.update({key: res["cluster"][src] for key, src in
                    (("h_acc", "acc"), ("h_bal_acc", "balanced_acc"), ("h_nmi", "nmi"), ("h_ari", "ari"))})
    if toy:
        modes = res["modes"]
        out.update(modes=modes["value"], n_modes=modes["n_modes"], high_quality=modes["high_quality"],
                   reverse_kl=modes["reverse_kl"])
        return out
    cond = suite.compute(["cond_acc"], n_gen, spread="even")
    if "skipped" not in cond["cond_acc"]:
        out["cond_acc"] = cond["cond_acc"]["value"]
    if "skipped" not in cond["variety"]:
        out["variety"] = cond["variety"]["value"]
    if "skipped" not in res["classifier_fid"]:
        out["classifier_fid"] = res["classifier_fid"]["value"]
    return out
