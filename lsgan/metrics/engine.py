"""lsgan's measures as ``torchmetrics.Metric`` classes: ``update`` on batches, ``compute`` once.

Each declares its state with ``add_state`` (a count matrix or feature sums reduced by ``sum``, or
feature lists reduced by ``cat``), so under Lightning or ``torch.distributed`` every rank updates
its own share of the samples and ``compute()`` sees all of them. The numbers are the pure
functions' of ``clustering``, ``conditional``, ``fid``, ``prdc`` and ``modes``, applied to the gathered
state. NMI and ARI are torchmetrics' own (``torchmetrics.clustering``). Mode and class counts
(``engine_modes``) and samples grouped by their exemplar (``engine_exemplars``: the "like this" score,
the spread over z) have their own modules.

Conditions, clusters and classes are non-negative integer ids below the sizes given to the
constructor (a count-matrix state has one fixed shape on every rank). ``report()`` returns what
``compute()`` summarises (mapping, confusion, per-condition values), gathered the same way.

Metrics built with ``reset_real_features=False`` keep their real (reference) side across
``reset()``, as torchmetrics' ``FrechetInceptionDistance`` does: a fixed reference is fed once.
"""
from __future__ import annotations

from copy import deepcopy
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from lsgan.metrics.clustering import (balanced_accuracy_of, hungarian_accuracy, mapping_from_confusion,
                                      purity_of)
from lsgan.metrics.conditional import intra_fid, within_condition_variety
from lsgan.metrics.fid import frechet_distance, kid_from_features
from lsgan.metrics.modes import classwise_knn_kl_matrix
from lsgan.metrics.prdc import prdc


def _count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r}: must be a positive integer")
    return int(value)


def _ids(x: Any, name: str, size: int, device) -> Tensor:
    t = torch.as_tensor(x, device=device)
    if t.ndim != 1 or t.is_floating_point() or t.is_complex():
        raise ValueError(f"{name}: expected a 1-D tensor of integer ids, got dtype {t.dtype}, shape {tuple(t.shape)}")
    t = t.long()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= size):
        raise ValueError(f"{name}: ids must be in [0, {size - 1}], got {int(t.min())}..{int(t.max())}")
    return t


def _features(x: Any, name: str, device) -> Tensor:
    t = torch.as_tensor(x, device=device).detach()
    if t.ndim != 2:
        raise ValueError(f"{name}: expected N×d features, got shape {tuple(t.shape)}")
    return t


def _mapping(mapping: Optional[Sequence[int]], num_conditions: int) -> np.ndarray:
    m = np.arange(num_conditions) if mapping is None else np.asarray(
        mapping.detach().cpu() if isinstance(mapping, Tensor) else mapping, dtype=np.int64)
    if m.shape != (num_conditions,):
        raise ValueError(f"mapping: expected one class id (or -1) per condition, {num_conditions} in all, "
                         f"got shape {m.shape}")
    return m.astype(np.int64)


class _Synced:
    """``report()``: a Metric's full result from its gathered state (``compute()`` gives one number)."""

    def _synced(self, fn):
        with self.sync_context(dist_sync_fn=self.dist_sync_fn, should_sync=self.sync_on_compute,
                               distributed_available=self.distributed_available_fn):
            return fn()


# --------------------------------------------------------------------------- count matrices
class _Confusion(_Synced, Metric):
    """A rows × cols count matrix, summed across ranks."""

    is_differentiable = False
    full_state_update = False
    confusion: Tensor

    def __init__(self, num_rows: int, num_cols: int, names: Tuple[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_rows, self.num_cols = _count(num_rows, names[0]), _count(num_cols, names[1])
        self.add_state("confusion", default=torch.zeros(self.num_rows, self.num_cols, dtype=torch.long),
                       dist_reduce_fx="sum")

    def _add(self, rows: Any, cols: Any, names: Tuple[str, str]) -> None:
        r = _ids(rows, names[0], self.num_rows, self.confusion.device)
        c = _ids(cols, names[1], self.num_cols, self.confusion.device)
        if len(r) != len(c):
            raise ValueError(f"{names[0]} / {names[1]}: need equal lengths, got {len(r)} and {len(c)}")
        flat = torch.bincount(r * self.num_cols + c, minlength=self.num_rows * self.num_cols)
        self.confusion += flat.view(self.num_rows, self.num_cols)

    def _matrix(self) -> np.ndarray:
        m = self.confusion.detach().cpu().numpy()
        if m.sum() == 0:
            raise ValueError(f"{type(self).__name__}: no samples; call update() first")
        return m


class ClusteringAccuracy(_Confusion):
    """Hungarian clustering accuracy: the best one-to-one cluster → class map (K ≠ C: a partial
    matching, samples of unmatched clusters count as wrong). ``lsgan.metrics.clustering.cluster_acc``.

    Not torchmetrics' ``ClusterAccuracy``: that one needs the optional ``torch_linear_assignment``
    package and as many clusters as classes.

    ``update(preds, target)``: cluster ids (< ``num_clusters``) and true classes (< ``num_classes``).
    ``report()``: {"acc", "balanced_acc" (mean per-class recall), "purity", "n"}.
    """

    higher_is_better = True

    def __init__(self, num_clusters: int, num_classes: int, **kwargs: Any) -> None:
        super().__init__(num_clusters, num_classes, ("num_clusters", "num_classes"), **kwargs)

    def update(self, preds: Tensor, target: Tensor) -> None:
        self._add(preds, target, ("preds", "target"))

    def compute(self) -> Tensor:
        return torch.tensor(hungarian_accuracy(self._matrix()), dtype=torch.float64)

    def report(self) -> Dict[str, float]:
        m = self._synced(self._matrix)
        return {"acc": hungarian_accuracy(m), "balanced_acc": balanced_accuracy_of(m), "purity": purity_of(m),
                "n": int(m.sum())}


class ConditionalAccuracy(_Confusion):
    """Conditional generation accuracy: the share of generated samples whose class (an evaluator's
    prediction) is the class of their condition.

    ``rule="auto"``: conditions are learned clusters, mapped to classes from the samples themselves —
    one-to-one Hungarian when ``num_conditions == num_classes``, else each to its majority class (purity).
    ``rule="identity"``: condition k is class k (a label-conditioned GAN, or an exemplar's label).
    ``lsgan.metrics.conditional.cluster_conditional_accuracy`` / ``exemplar_conditional_accuracy``.

    ``update(conditions, predicted_classes)``. ``report()``: {"accuracy", "rule" (hungarian | purity |
    identity), "mapping" (condition → class, −1: a condition with no samples), "confusion" (K × C)}.
    """

    higher_is_better = True
    RULES = ("auto", "identity")

    def __init__(self, num_conditions: int, num_classes: int, rule: str = "auto", **kwargs: Any) -> None:
        super().__init__(num_conditions, num_classes, ("num_conditions", "num_classes"), **kwargs)
        if rule not in self.RULES:
            raise ValueError(f"rule={rule!r} is not accepted; accepted values: {', '.join(self.RULES)}")
        if rule == "identity" and num_conditions != num_classes:
            raise ValueError(f"rule='identity' needs num_conditions == num_classes, got {num_conditions} and "
                             f"{num_classes}")
        self.rule = rule

    def update(self, conditions: Tensor, predicted_classes: Tensor) -> None:
        self._add(conditions, predicted_classes, ("conditions", "predicted_classes"))

    def _result(self, m: np.ndarray) -> Dict[str, object]:
        K, C = m.shape
        if self.rule == "identity":
            mapping, rule = np.arange(K), "identity"
        else:
            mapping, rule = mapping_from_confusion(m), "hungarian" if K == C else "purity"
        hit = mapping >= 0
        accuracy = float(m[np.arange(K)[hit], mapping[hit]].sum() / m.sum())
        return {"accuracy": accuracy, "rule": rule, "mapping": mapping, "confusion": m}

    def compute(self) -> Tensor:
        return torch.tensor(self._result(self._matrix())["accuracy"], dtype=torch.float64)

    def report(self) -> Dict[str, object]:
        return self._result(self._synced(self._matrix))


# --------------------------------------------------------------------------- real vs generated features
class _RealFake(_Synced, Metric):
    """``update(features, real)``: features of real (reference) or generated samples; with
    ``reset_real_features=False`` the real side survives ``reset()``."""

    is_differentiable = False
    full_state_update = False
    _real_states: Tuple[str, ...] = ()

    def __init__(self, reset_real_features: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(reset_real_features, bool):
            raise ValueError(f"reset_real_features={reset_real_features!r}: must be true or false")
        self.reset_real_features = reset_real_features

    def reset(self) -> None:
        if self.reset_real_features:
            super().reset()
            return
        kept = {name: deepcopy(getattr(self, name)) for name in self._real_states}
        super().reset()
        for name, value in kept.items():
            setattr(self, name, value)


class _FeatureLists(_RealFake):
    """Real and generated features (with optional ids) kept whole and concatenated across ranks."""

    _real_states = ("real_features",)

    def __init__(self, reset_real_features: bool = True, with_ids: bool = False, **kwargs: Any) -> None:
        super().__init__(reset_real_features, **kwargs)
        if with_ids:
            self._real_states = ("real_features", "real_ids")
        for name in ("real_features", "fake_features") + (("real_ids", "fake_ids") if with_ids else ()):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def _append(self, features: Any, real: bool, ids: Any = None, size: int = 0) -> None:
        f = _features(features, "features", self.device)
        side = "real" if real else "fake"
        getattr(self, f"{side}_features").append(f)
        if ids is not None:
            i = _ids(ids, "ids", size, self.device)
            if len(i) != len(f):
                raise ValueError(f"features / ids: need equal lengths, got {len(f)} and {len(i)}")
            getattr(self, f"{side}_ids").append(i)

    def _gathered(self, *names: str):
        out = []
        for name in names:
            value = getattr(self, name)
            if isinstance(value, list) and not value:
                raise ValueError(f"{type(self).__name__}: no {name.replace('_', ' ')}; call update() first")
            out.append(dim_zero_cat(value).cpu())
        return out


class FeatureFID(_RealFake):
    """FID between two sets of precomputed features (``lsgan.metrics.fid.fid_from_features``).

    Not torchmetrics' ``FrechetInceptionDistance`` with a custom ``feature`` network: lsgan computes
    each feature set once and shares it between metrics and caches (the reference's on disk), so this
    Metric takes features, and keeps their sums and summed outer products (float64) as states.

    ``update(features, real)``; ``compute()``: FID of the generated (``real=False``) against the real set.
    """

    higher_is_better = False
    _real_states = ("real_sum", "real_outer", "real_n")

    def __init__(self, num_features: int, reset_real_features: bool = True, method: str = "eigh",
                 **kwargs: Any) -> None:
        super().__init__(reset_real_features, **kwargs)
        d = self.num_features = _count(num_features, "num_features")
        self.method = method
        for side in ("real", "fake"):
            self.add_state(f"{side}_sum", default=torch.zeros(d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", default=torch.zeros(d, d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_n", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, features: Tensor, real: bool) -> None:
        f = _features(features, "features", self.real_sum.device).double()
        if f.shape[1] != self.num_features:
            raise ValueError(f"features: expected {self.num_features} columns (num_features), got {f.shape[1]}")
        side = "real" if real else "fake"
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + f.sum(dim=0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + f.T @ f)
        setattr(self, f"{side}_n", getattr(self, f"{side}_n") + len(f))

    def update_stats(self, mean: Any, covariance: Any, n: int, real: bool) -> None:
        """Add a set known by its mean, unbiased covariance and size (a cached reference's statistics)
        as :meth:`update` would add its features."""
        device = self.real_sum.device
        mu = torch.as_tensor(np.asarray(mean, dtype=np.float64), device=device)
        cov = torch.as_tensor(np.asarray(covariance, dtype=np.float64), device=device)
        d = self.num_features
        if mu.shape != (d,) or cov.shape != (d, d) or int(n) < 2:
            raise ValueError(f"update_stats: expected a mean of {d}, a {d}×{d} covariance and n >= 2, got "
                             f"{tuple(mu.shape)}, {tuple(cov.shape)}, n={n}")
        side, n = ("real" if real else "fake"), int(n)
        self._computed, self._update_count = None, self._update_count + 1  # as a wrapped update() does
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + n * mu)
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + (n - 1) * cov + n * torch.outer(mu, mu))
        setattr(self, f"{side}_n", getattr(self, f"{side}_n") + n)

    def _stats(self, side: str) -> Tuple[np.ndarray, np.ndarray]:
        n = int(getattr(self, f"{side}_n"))
        if n < 2:
            raise ValueError(f"FeatureFID: {n} {side} samples; a covariance needs at least 2")
        s, outer = getattr(self, f"{side}_sum").cpu().numpy(), getattr(self, f"{side}_outer").cpu().numpy()
        mu = s / n
        return mu, (outer - n * np.outer(mu, mu)) / (n - 1)  # unbiased, as np.cov

    def compute(self) -> Tensor:
        (mu_f, s_f), (mu_r, s_r) = self._stats("fake"), self._stats("real")
        return torch.tensor(frechet_distance(mu_f, s_f, mu_r, s_r, method=self.method), dtype=torch.float64)


class FeatureKID(_FeatureLists):
    """KID between two sets of precomputed features (``lsgan.metrics.fid.kid_from_features``: unbiased
    polynomial-kernel MMD² over ``subsets`` seeded subsets of ``subset_size``); precomputed for the
    reason ``FeatureFID`` gives. ``compute()``: (mean, std)."""

    higher_is_better = False

    def __init__(self, subsets: int = 100, subset_size: int = 1000, degree: int = 3, gamma: Optional[float] = None,
                 coef0: float = 1.0, seed: int = 0, reset_real_features: bool = True, **kwargs: Any) -> None:
        super().__init__(reset_real_features, **kwargs)
        self.kid_args = dict(subsets=subsets, subset_size=subset_size, degree=degree, gamma=gamma, coef0=coef0,
                             seed=seed)

    def update(self, features: Tensor, real: bool) -> None:
        self._append(features, real)

    def compute(self) -> Tuple[Tensor, Tensor]:
        fake, real = self._gathered("fake_features", "real_features")
        res = kid_from_features(fake, real, **self.kid_args)
        return (torch.tensor(res["kid_mean"], dtype=torch.float64), torch.tensor(res["kid_std"], dtype=torch.float64))


class PRDC(_FeatureLists):
    """Improved precision / recall and density / coverage with k-th neighbour balls
    (``lsgan.metrics.prdc.prdc``). ``compute()``: {"precision", "recall", "density", "coverage"}."""

    def __init__(self, k: int = 3, reset_real_features: bool = True, **kwargs: Any) -> None:
        super().__init__(reset_real_features, **kwargs)
        self.k = _count(k, "k")

    def update(self, features: Tensor, real: bool) -> None:
        self._append(features, real)

    def compute(self) -> Dict[str, Tensor]:
        fake, real = self._gathered("fake_features", "real_features")
        res = prdc(real, fake, k=self.k)
        return {key: torch.tensor(res[key], dtype=torch.float64)
                for key in ("precision", "recall", "density", "coverage")}


class _PerCondition(_FeatureLists):
    """Generated features with their condition, real features with their class, and the condition →
    class ``mapping`` (default: condition k is class k; ``ConditionalAccuracy.report()["mapping"]``
    for learned clusters; −1: no class). ``update(features, ids, real)``: ids are conditions
    (< ``num_conditions``) for generated samples, classes (< ``num_classes``) for real ones."""

    def __init__(self, num_conditions: int, num_classes: Optional[int] = None,
                 mapping: Optional[Sequence[int]] = None, reset_real_features: bool = True, **kwargs: Any) -> None:
        super().__init__(reset_real_features, with_ids=True, **kwargs)
        self.num_conditions = _count(num_conditions, "num_conditions")
        self.num_classes = _count(num_classes if num_classes is not None else num_conditions, "num_classes")
        self.set_mapping(mapping)

    def set_mapping(self, mapping: Optional[Sequence[int]]) -> None:
        m = _mapping(mapping, self.num_conditions)
        if (m >= self.num_classes).any():
            raise ValueError(f"mapping: class ids must be below num_classes={self.num_classes}, got {m.max()}")
        self.mapping = m
        self._computed = None

    def update(self, features: Tensor, ids: Tensor, real: bool) -> None:
        self._append(features, real, ids, self.num_classes if real else self.num_conditions)

    def _arrays(self):
        return self._gathered("fake_features", "fake_ids", "real_features", "real_ids")


class WithinConditionVariety(_PerCondition):
    """Per condition: mean pairwise distance of its generated features / that of its class's real
    features (1.0 = as varied as real, ≈ 0 = collapsed); ``lsgan.metrics.conditional.within_condition_variety``.
    ``compute()``: the mean over conditions; ``report()``: {"per_condition", "mean", "min"}."""

    def __init__(self, num_conditions: int, num_classes: Optional[int] = None,
                 mapping: Optional[Sequence[int]] = None, max_samples: int = 2000, seed: int = 0,
                 reset_real_features: bool = True, **kwargs: Any) -> None:
        super().__init__(num_conditions, num_classes, mapping, reset_real_features, **kwargs)
        self.max_samples, self.seed = _count(max_samples, "max_samples"), int(seed)

    def _result(self) -> Dict[str, object]:
        g, c, r, y = self._arrays()
        return within_condition_variety(g, c, r, y, self.mapping, self.max_samples, self.seed)

    def compute(self) -> Tensor:
        return torch.tensor(self._result()["mean"], dtype=torch.float64)

    def report(self) -> Dict[str, object]:
        return self._synced(self._result)


class IntraFID(_PerCondition):
    """Intra-cluster FID (SLOGAN): per condition, FID of its generated features against its class's
    real features; ``lsgan.metrics.conditional.intra_fid``. Conditions with fewer than ``min_samples``
    samples (or unmapped) stay out of the mean. ``compute()``: the mean; ``report()``:
    {"per_condition", "mean", "max"}."""

    higher_is_better = False

    def __init__(self, num_conditions: int, num_classes: Optional[int] = None,
                 mapping: Optional[Sequence[int]] = None, min_samples: int = 2, reset_real_features: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(num_conditions, num_classes, mapping, reset_real_features, **kwargs)
        self.min_samples = _count(min_samples, "min_samples")

    def _result(self) -> Dict[str, object]:
        g, c, r, y = self._arrays()
        return intra_fid(g, c, r, y, self.mapping, self.min_samples)

    def compute(self) -> Tensor:
        return torch.tensor(self._result()["mean"], dtype=torch.float64)

    def report(self) -> Dict[str, object]:
        return self._synced(self._result)


class ClasswiseKL(_FeatureLists):
    """K × C matrix of k-NN KL(generated samples of condition i ‖ real features of class j) after a joint
    PCA fitted on the real features (NEMGAN Fig. 7; ``lsgan.metrics.modes.classwise_knn_kl_matrix``): a
    good conditional GAN shows one low entry per row, in a different column per row.

    ``update(features, ids, real)``: ids are conditions (< ``num_conditions``) for generated samples,
    classes (< ``num_classes``) for real ones. ``compute()``: the mean over conditions of the smallest KL
    to a class (NaN when no entry is finite); ``report()``: {"value", "matrix", "row_argmin"}."""

    higher_is_better = False

    def __init__(self, num_conditions: int, num_classes: int, k: int = 1, max_per_group: int = 500,
                 pca_dim: Optional[int] = 10, seed: int = 0, reset_real_features: bool = True, **kwargs: Any) -> None:
        super().__init__(reset_real_features, with_ids=True, **kwargs)
        self.num_conditions = _count(num_conditions, "num_conditions")
        self.num_classes = _count(num_classes, "num_classes")
        self.k, self.max_per_group = _count(k, "k"), _count(max_per_group, "max_per_group")
        self.pca_dim = None if pca_dim is None else _count(pca_dim, "pca_dim")
        self.seed = int(seed)

    def update(self, features: Tensor, ids: Tensor, real: bool) -> None:
        self._append(features, real, ids, self.num_classes if real else self.num_conditions)

    def _result(self) -> Dict[str, object]:
        g, c, r, y = self._gathered("fake_features", "fake_ids", "real_features", "real_ids")
        matrix = classwise_knn_kl_matrix(g, c, r, y, self.num_conditions, self.num_classes, k=self.k,
                                         max_per_group=self.max_per_group, pca_dim=self.pca_dim, seed=self.seed)
        finite = np.where(np.isfinite(matrix), matrix, np.inf)
        best = finite.min(axis=1)
        value = float(np.mean(best[np.isfinite(best)])) if np.isfinite(best).any() else float("nan")
        return {"value": value, "matrix": matrix, "row_argmin": finite.argmin(axis=1)}

    def compute(self) -> Tensor:
        return torch.tensor(self._result()["value"], dtype=torch.float64)

    def report(self) -> Dict[str, object]:
        return self._synced(self._result)


__all__ = ["ClasswiseKL", "ClusteringAccuracy", "ConditionalAccuracy", "FeatureFID", "FeatureKID", "IntraFID", "PRDC",
           "WithinConditionVariety"]
