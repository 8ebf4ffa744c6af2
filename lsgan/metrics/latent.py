"""The coupled method's latent-space picture: where in feature space does generation fail?

Durall et al. (2021, the "border effect") observe that conditioning on a feature vector f = E(x)
goes wrong mostly for points near the border between classes in E's space: their neighbours
carry other labels, so the pairs D sees there teach G the wrong class. This module measures it
and draws it:

- ``border_statistics(features, labels, correct, k)`` — each point's neighbourhood purity (the
  fraction of its k nearest neighbours sharing its label, via ``lsgan.metrics.knn``), and the
  generation accuracy of interior points (purity 1) against border points (purity < 1);
- ``border_effect_figure(...)`` — one t-SNE of the features, drawn twice: coloured by class, and
  coloured by whether G(z, f) was classified as x's class;
- ``latent_report(method, dataset, evaluator, ...)`` — both for ``n`` exemplars of a split.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np
import torch

from lsgan.metrics.knn import knn_indices, knn_label_agreement
from lsgan.nets.modes import eval_mode

ArrayLike = Union[np.ndarray, torch.Tensor]


def _np(a: ArrayLike) -> np.ndarray:
    return np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a)


def neighbourhood_purity(features: ArrayLike, labels: ArrayLike, k: int = 10) -> np.ndarray:
    """Per point: fraction of its k nearest neighbours (self excluded) that share its label."""
    y = torch.as_tensor(_np(labels)).long()
    idx = knn_indices(features, k)
    return (y[idx] == y[:, None]).double().mean(dim=1).numpy()


def border_statistics(features: ArrayLike, labels: ArrayLike, correct: ArrayLike, k: int = 10,
                      bins: int = 4) -> Dict[str, object]:
    """Generation accuracy by position in feature space.

    Returns {"k", "n", "accuracy", "border_fraction" (purity < 1), "accuracy_interior",
    "accuracy_border", "accuracy_by_purity" [{"purity_range", "n", "accuracy"} per bin],
    "purity_accuracy_corr" (Pearson, point purity vs correct)}. A border effect shows as
    accuracy_border < accuracy_interior and a positive correlation.
    """
    ok = _np(correct).astype(bool)
    if len(ok) != len(_np(labels)):
        raise ValueError(f"correct / labels: need equal lengths, got {len(ok)} and {len(_np(labels))}")
    purity = neighbourhood_purity(features, labels, k)
    border = purity < 1.0

    def acc(mask: np.ndarray) -> Optional[float]:
        return float(ok[mask].mean()) if mask.any() else None

    edges = np.linspace(0.0, 1.0, bins + 1)
    by_bin = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        mask = (purity >= lo) & ((purity < hi) if i < bins - 1 else (purity <= hi))
        by_bin.append({"purity_range": [float(lo), float(hi)], "n": int(mask.sum()), "accuracy": acc(mask)})
    corr = None
    if purity.std() > 0 and ok.std() > 0:
        corr = float(np.corrcoef(purity, ok.astype(np.float64))[0, 1])
    return {"k": int(k), "n": int(len(ok)), "accuracy": float(ok.mean()), "border_fraction": float(border.mean()),
            "accuracy_interior": acc(~border), "accuracy_border": acc(border), "accuracy_by_purity": by_bin,
            "purity_accuracy_corr": corr}


def border_effect_figure(features: ArrayLike, labels: ArrayLike, correct: ArrayLike, path: str,
                         max_points: int = 3000, seed: int = 0, title: Optional[str] = None) -> str:
    """Two panels of one 2-D t-SNE of ``features``: coloured by class, and by correct (green) /
    wrong (red) generation. At most ``max_points`` (a seeded subset) are embedded; 2-D features
    are drawn without t-SNE."""
    from lsgan.metrics.clustering import agg_figure

    x = _np(features).astype(np.float32).reshape(len(_np(labels)), -1)
    y, ok = _np(labels).astype(np.int64), _np(correct).astype(bool)
    if len(x) > max_points:
        keep = np.random.default_rng(seed).permutation(len(x))[:max_points]
        x, y, ok = x[keep], y[keep], ok[keep]
    if x.shape[1] == 2:  # already a plane: draw it as it is
        emb = x
    else:
        from sklearn.manifold import TSNE

        emb = TSNE(n_components=2, init="pca" if x.shape[1] > 2 else "random", random_state=seed,
                   perplexity=min(30.0, max(2.0, (len(x) - 1) / 3))).fit_transform(x)
    fig = agg_figure(figsize=(11, 5.2))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    sc = left.scatter(emb[:, 0], emb[:, 1], c=y, cmap="tab10" if y.max() < 10 else "tab20", s=4)
    fig.colorbar(sc, ax=left, fraction=0.046, pad=0.04)
    left.set_title("feature space, coloured by class")
    right.scatter(emb[ok, 0], emb[ok, 1], c="tab:green", s=4, label=f"correct ({ok.mean():.0%})")
    right.scatter(emb[~ok, 0], emb[~ok, 1], c="tab:red", s=6, label="wrong")
    right.legend(loc="upper right", markerscale=3)
    right.set_title("generation from this feature: evaluator class == source class?")
    for ax in (left, right):
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return str(path)


@torch.no_grad()
def latent_report(method, dataset, evaluator, n: int = 2000, seed: int = 0, k: int = 10,
                  out_dir: Optional[str] = None, batch_size: int = 256, tsne_points: int = 3000) -> Dict[str, object]:
    """For ``n`` seeded exemplars x of ``dataset`` (an ArrayDataset with labels): f = condition_of(x),
    one sample G(z, f) each, correct = evaluator class == x's clean label. Returns the kNN label
    agreement of f (ks 1, 2, 5), ``border_statistics`` and, with ``out_dir``, writes
    ``border_effect.png`` and ``latent.json`` there."""
    labels_all = dataset.clean_labels
    if labels_all is None:
        raise ValueError("dataset: the latent report needs labels (clean_labels is None)")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(dataset), generator=gen)[:n]
    feats, preds = [], []
    with eval_mode(method):
        for chunk in idx.split(batch_size):
            x = dataset.images(chunk).to(method.device)
            f = method.condition_of(x)
            feats.append(f.float().cpu())
            preds.append(evaluator.predict(method.sample(len(x), condition=f).float().cpu()))
    f, pred, y = torch.cat(feats), torch.cat(preds), labels_all[idx].long()
    correct = pred == y
    out: Dict[str, object] = {"n": int(len(y)), "accuracy": float(correct.double().mean()),
                              "knn_label_agreement": knn_label_agreement(f, y, ks=(1, 2, 5)),
                              "border": border_statistics(f, y, correct, k=k)}
    if out_dir is not None:
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        out["figure"] = border_effect_figure(f, y, correct, str(folder / "border_effect.png"), tsne_points, seed)
        (folder / "latent.json").write_text(json.dumps(out, indent=2, default=str))
    return out
