"""Clustering quality against ground-truth labels: ACC (Hungarian), purity, NMI, ARI, and the
mapping from a model's conditions (clusters) to classes.

Clusters and classes are integer ids; the numbers of clusters K and classes C may differ.
``contingency`` is not scikit-learn's ``contingency_matrix``: that one keeps only the ids that occur,
where the mappings here index a fixed K × C matrix by id (empty rows and columns included).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

ArrayLike = Union[np.ndarray, torch.Tensor, list]


def _ids(a: ArrayLike, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of integer ids, got shape {a.shape}")
    if a.size and (not np.issubdtype(a.dtype, np.integer) or a.min() < 0):
        raise ValueError(f"{name}: expected non-negative integer ids, got dtype {a.dtype}")
    return a.astype(np.int64)


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    t, p = _ids(y_true, "y_true"), _ids(y_pred, "y_pred")
    if len(t) != len(p) or len(t) == 0:
        raise ValueError(f"y_true / y_pred: need equal non-zero lengths, got {len(t)} and {len(p)}")
    return t, p


def contingency(rows: ArrayLike, cols: ArrayLike, n_rows: Optional[int] = None,
                n_cols: Optional[int] = None) -> np.ndarray:
    """Counts matrix M[r, c] = #{i : rows_i = r and cols_i = c}, shape n_rows × n_cols."""
    r, c = _ids(rows, "rows"), _ids(cols, "cols")
    n_rows = int(r.max()) + 1 if n_rows is None else n_rows
    n_cols = int(c.max()) + 1 if n_cols is None else n_cols
    if r.size and (r.max() >= n_rows or c.max() >= n_cols):
        raise ValueError(f"ids exceed the declared sizes ({n_rows} rows, {n_cols} columns)")
    m = np.zeros((n_rows, n_cols), dtype=np.int64)
    np.add.at(m, (r, c), 1)
    return m


def cluster_acc(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Best accuracy over one-to-one cluster→class maps (Hungarian on the contingency table).

    With K ≠ C the map is a partial matching: at most min(K, C) clusters get a class, the
    samples of unmatched clusters count as wrong.
    """
    t, p = _pair(y_true, y_pred)
    return hungarian_accuracy(contingency(p, t))


def purity(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of samples whose cluster's majority class is their class (many-to-one map)."""
    t, p = _pair(y_true, y_pred)
    return purity_of(contingency(p, t))


# The scores below read a cluster × class count matrix (``contingency(y_pred, y_true)``): what the
# torchmetrics Metrics of lsgan.metrics.engine accumulate and sum across processes.
def hungarian_accuracy(confusion: np.ndarray) -> float:
    """Best one-to-one accuracy of a cluster × class count matrix (Hungarian); unmatched rows count as wrong."""
    m = np.asarray(confusion)
    rows, cols = linear_sum_assignment(m, maximize=True)
    return float(m[rows, cols].sum() / m.sum())


def purity_of(confusion: np.ndarray) -> float:
    """Share of samples in their cluster's majority class, from a cluster × class count matrix."""
    m = np.asarray(confusion)
    return float(m.max(axis=1).sum() / m.sum())


def balanced_accuracy_of(confusion: np.ndarray) -> float:
    """Mean per-class recall under the best one-to-one map, from a cluster × class count matrix
    (see :func:`balanced_cluster_acc`)."""
    m = np.asarray(confusion, dtype=np.float64)
    recall = m / np.clip(m.sum(axis=0, keepdims=True), 1, None)
    rows, cols = linear_sum_assignment(recall, maximize=True)
    present = m.sum(axis=0) > 0
    return float(recall[rows, cols].sum() / max(1, present.sum()))


def mapping_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """Each row's (condition's) class from a K × C count matrix: one-to-one Hungarian when K == C, else
    each row's majority class; int64 of length K, −1 for a row with no samples when K ≠ C."""
    conf = np.asarray(confusion)
    K, C = conf.shape
    if K == C:
        rows, cols = linear_sum_assignment(conf, maximize=True)
        mapping = np.empty(K, dtype=np.int64)
        mapping[rows] = cols
    else:
        mapping = conf.argmax(axis=1).astype(np.int64)
        mapping[conf.sum(axis=1) == 0] = -1
    return mapping


def nmi(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Normalised mutual information (arithmetic normalisation, sklearn's default)."""
    t, p = _pair(y_true, y_pred)
    return float(normalized_mutual_info_score(t, p))


def ari(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Adjusted Rand index."""
    t, p = _pair(y_true, y_pred)
    return float(adjusted_rand_score(t, p))


def kmeans_labels(features: ArrayLike, k: int, seed: int = 0) -> np.ndarray:
    """k-means (k-means++, 10 restarts, float64) cluster ids (int64) of N×d features: the one
    k-means every metric, figure and method's authors' protocol uses."""
    from sklearn.cluster import KMeans

    x = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    return KMeans(n_clusters=int(k), n_init=10, random_state=int(seed)).fit_predict(x.astype(np.float64)).astype(np.int64)


def kmeans_ids(features: ArrayLike, k: int, seed: int = 0) -> torch.Tensor:
    """:func:`kmeans_labels` as an int64 CPU tensor (what the metric suite and clustergan's protocol compare)."""
    return torch.from_numpy(kmeans_labels(features, k, seed))


def balanced_cluster_acc(y_true, y_pred, K: int, C: int) -> float:
    """Mean per-class recall under the best one-to-one cluster → class map (Hungarian on the
    recall matrix); classes left unmatched (K < C) count 0. Unlike plain ACC it does not reward
    putting everything in the majority class: at 02:98 that scores 0.98 ACC but 0.5 here."""
    return balanced_accuracy_of(contingency(y_pred, y_true, K, C))  # K × C


def clustering_report(y_true: ArrayLike, y_pred: ArrayLike) -> Dict[str, float]:
    """{"acc", "balanced_acc", "purity", "nmi", "ari", "n", "n_clusters", "n_classes"}."""
    t, p = _pair(y_true, y_pred)
    return {"acc": cluster_acc(t, p), "balanced_acc": balanced_cluster_acc(t, p, int(p.max()) + 1, int(t.max()) + 1),
            "purity": purity(t, p), "nmi": nmi(t, p), "ari": ari(t, p),
            "n": int(len(t)), "n_clusters": int(len(np.unique(p))), "n_classes": int(len(np.unique(t)))}


def map_conditions_to_classes(cond: ArrayLike, pred_class: ArrayLike, K: int, C: int) -> Tuple[np.ndarray, np.ndarray]:
    """Map each of K conditions to one of C classes from samples' (condition, predicted class).

    K == C: one-to-one Hungarian matching maximising agreement. K ≠ C: each condition goes to
    its most frequent class (several conditions may share a class). Returns (mapping, confusion)
    where mapping is int64 of length K (−1 for a condition with no samples) and confusion is the
    K × C count matrix.
    """
    if K < 1 or C < 1:
        raise ValueError(f"K={K}, C={C}: both must be >= 1")
    conf = contingency(cond, pred_class, K, C)
    return mapping_from_confusion(conf), conf


def plot_confusion(matrix: np.ndarray, path: str, row_label: str = "condition", col_label: str = "class",
                   title: Optional[str] = None) -> str:
    """Save a row-normalised heat map of a count matrix (counts written in cells when small)."""
    m = np.asarray(matrix, dtype=np.float64)
    norm = m / np.clip(m.sum(axis=1, keepdims=True), 1, None)
    fig = agg_figure(figsize=(1.5 + 0.45 * m.shape[1], 1 + 0.45 * m.shape[0]))
    ax = fig.add_subplot()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if m.shape[0] * m.shape[1] <= 400:
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{int(v)}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    ax.set_xticks(range(m.shape[1]))
    ax.set_yticks(range(m.shape[0]))
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def agg_figure(**kwargs):
    """A matplotlib Figure on the Agg canvas: headless, and leaves pyplot's global state alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig
