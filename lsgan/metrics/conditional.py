"""How well a conditional generator's conditions correspond to real classes, judged by an
evaluator classifier, and how varied the samples within one condition are.

- cluster-conditioned methods (condition = one of K learned clusters): the conditions are
  mapped to the C classes (Hungarian when K == C, else majority, see
  ``map_conditions_to_classes``) and accuracy is the fraction of generated samples whose
  predicted class is their condition's class — Hungarian ACC when K == C, purity otherwise.
- exemplar-conditioned methods (condition = a real image): accuracy is the fraction of
  generated samples classified as their source image's label.

Variety compares spreads: ``within_condition_variety`` a condition's samples against its class,
``z_variety`` one exemplar's samples (only z differs) against the exemplar's class. Their Metrics:
``lsgan.metrics.engine`` and ``lsgan.metrics.engine_exemplars``.
"""
from __future__ import annotations

from typing import Dict, Optional, Union

import numpy as np
import torch
from scipy.spatial.distance import pdist

from lsgan.metrics.clustering import _ids, contingency, map_conditions_to_classes

ArrayLike = Union[np.ndarray, torch.Tensor]


def cluster_conditional_accuracy(cond: ArrayLike, pred_class: ArrayLike, K: int, C: int) -> Dict[str, object]:
    """{"accuracy", "rule" ("hungarian" | "purity"), "mapping" (K,), "confusion" (K × C)}."""
    c, p = _ids(cond, "cond"), _ids(pred_class, "pred_class")
    if len(c) != len(p) or len(c) == 0:
        raise ValueError(f"cond / pred_class: need equal non-zero lengths, got {len(c)} and {len(p)}")
    mapping, confusion = map_conditions_to_classes(c, p, K, C)
    accuracy = float(np.mean(mapping[c] == p))
    return {"accuracy": accuracy, "rule": "hungarian" if K == C else "purity",
            "mapping": mapping, "confusion": confusion}


def exemplar_conditional_accuracy(source_labels: ArrayLike, pred_class: ArrayLike,
                                  C: Optional[int] = None) -> Dict[str, object]:
    """{"accuracy", "confusion" (C × C: source label × predicted class)} for exemplar conditioning."""
    s, p = _ids(source_labels, "source_labels"), _ids(pred_class, "pred_class")
    if len(s) != len(p) or len(s) == 0:
        raise ValueError(f"source_labels / pred_class: need equal non-zero lengths, got {len(s)} and {len(p)}")
    C = int(max(s.max(), p.max())) + 1 if C is None else C
    return {"accuracy": float(np.mean(s == p)), "confusion": contingency(s, p, C, C)}


def mean_pairwise_distance(features: ArrayLike, max_samples: int = 2000, seed: int = 0) -> float:
    """Mean Euclidean distance over distinct pairs (a seeded subset of ``max_samples`` rows if larger)."""
    x = torch.as_tensor(features).detach().cpu().double()
    if len(x) < 2:
        return float("nan")
    if len(x) > max_samples:
        gen = torch.Generator().manual_seed(seed)
        x = x[torch.randperm(len(x), generator=gen)[:max_samples]]
    return float(pdist(x.numpy()).mean())


def within_condition_variety(gen_feats: ArrayLike, cond: ArrayLike, real_feats: ArrayLike, real_labels: ArrayLike,
                             mapping: ArrayLike, max_samples: int = 2000, seed: int = 0) -> Dict[str, object]:
    """Per condition k: mean pairwise distance of its generated samples divided by that of the
    real images of class ``mapping[k]``. 1.0 = as varied as real, ≈ 0 = collapsed to a point.

    Returns {"per_condition": {k: ratio}, "mean": mean over conditions with a ratio, "min": the
    least varied condition's ratio (a condition collapsed to one image, e.g. blank, hides in the
    mean and in conditional accuracy, not here)}. Conditions
    with fewer than 2 samples, or mapped to −1 / a class with fewer than 2 real images, get NaN
    and are left out of the mean.
    """
    g, r = torch.as_tensor(gen_feats), torch.as_tensor(real_feats)
    c, y = _ids(cond, "cond"), _ids(real_labels, "real_labels")
    # mapping may hold −1 (condition without a class), so it is not checked as non-negative ids
    mapping = np.asarray(mapping.detach().cpu() if isinstance(mapping, torch.Tensor) else mapping, dtype=np.int64)
    if len(g) != len(c) or len(r) != len(y):
        raise ValueError("gen_feats/cond and real_feats/real_labels must have matching lengths")
    per: Dict[int, float] = {}
    real_spread: Dict[int, float] = {}
    for k in range(len(mapping)):
        cls = int(mapping[k])
        gen_k = g[torch.as_tensor(c == k)]
        if cls < 0 or len(gen_k) < 2:
            per[k] = float("nan")
            continue
        if cls not in real_spread:
            real_spread[cls] = mean_pairwise_distance(r[torch.as_tensor(y == cls)], max_samples, seed)
        denom = real_spread[cls]
        per[k] = mean_pairwise_distance(gen_k, max_samples, seed) / denom if denom > 0 else float("nan")
    valid = [v for v in per.values() if np.isfinite(v)]
    return {"per_condition": per, "mean": float(np.mean(valid)) if valid else float("nan"),
            "min": float(np.min(valid)) if valid else float("nan")}


def z_variety(gen_feats: ArrayLike, owner: ArrayLike, exemplar_classes: ArrayLike, real_feats: ArrayLike,
              real_labels: ArrayLike, max_samples: int = 2000, seed: int = 0) -> Dict[str, object]:
    """Does an exemplar-conditioned G use z? Per exemplar i (its samples: ``owner == i``, all drawn for the
    one exemplar with different z): mean pairwise distance of its samples divided by that of the real
    images of its class ``exemplar_classes[i]``. 1.0 = z alone spans the class, ≈ 0 = G ignores z.

    Returns {"per_exemplar": {i: ratio}, "mean": mean over exemplars with a finite ratio}. An exemplar with
    fewer than 2 samples, or whose class has fewer than 2 real images (or no spread), gets NaN."""
    g, r = torch.as_tensor(gen_feats), torch.as_tensor(real_feats)
    o, e, y = _ids(owner, "owner"), _ids(exemplar_classes, "exemplar_classes"), _ids(real_labels, "real_labels")
    if len(g) != len(o) or len(r) != len(y):
        raise ValueError("gen_feats/owner and real_feats/real_labels must have matching lengths")
    if o.size and o.max() >= len(e):
        raise ValueError(f"owner: ids must be below the number of exemplars ({len(e)}), got {o.max()}")
    real_spread: Dict[int, float] = {}
    per: Dict[int, float] = {}
    for i, cls in enumerate(e.tolist()):
        if cls not in real_spread:
            real_spread[cls] = mean_pairwise_distance(r[torch.as_tensor(y == cls)], max_samples, seed)
        denom = real_spread[cls]
        per[i] = mean_pairwise_distance(g[torch.as_tensor(o == i)], max_samples, seed) / denom if denom > 0 \
            else float("nan")
    valid = [v for v in per.values() if np.isfinite(v)]
    return {"per_exemplar": per, "mean": float(np.mean(valid)) if valid else float("nan")}


def intra_fid(gen_feats: ArrayLike, cond: ArrayLike, real_feats: ArrayLike, real_labels: ArrayLike,
              mapping: ArrayLike, min_samples: int = 2) -> Dict[str, object]:
    """Intra-cluster FID (SLOGAN, Hwang et al., ICLR 2022): per condition k, the FID between its generated
    samples and the real images of class ``mapping[k]``; the mean over conditions. It asks of each condition
    what FID asks of the whole: the right images (its class), as varied as real ones. Conditions with fewer than
    ``min_samples`` samples, or mapped to −1 / a class with fewer real images, get NaN and stay out of the mean;
    ``max`` is the worst condition's. Few samples per condition bias FID upwards: compare equal ``n`` only."""
    from lsgan.metrics.fid import fid_from_features

    g, r = torch.as_tensor(gen_feats).double(), torch.as_tensor(real_feats).double()
    c, y = _ids(cond, "cond"), _ids(real_labels, "real_labels")
    mapping = np.asarray(mapping.detach().cpu() if isinstance(mapping, torch.Tensor) else mapping, dtype=np.int64)
    if len(g) != len(c) or len(r) != len(y):
        raise ValueError("gen_feats/cond and real_feats/real_labels must have matching lengths")
    per: Dict[int, float] = {}
    for k in range(len(mapping)):
        cls = int(mapping[k])
        gen_k, real_k = g[torch.as_tensor(c == k)], r[torch.as_tensor(y == cls)] if cls >= 0 else r[:0]
        per[k] = (fid_from_features(gen_k.numpy(), real_k.numpy())
                  if min(len(gen_k), len(real_k)) >= max(2, min_samples) else float("nan"))
    valid = [v for v in per.values() if np.isfinite(v)]
    return {"per_condition": per, "mean": float(np.mean(valid)) if valid else float("nan"),
            "max": float(np.max(valid)) if valid else float("nan")}
