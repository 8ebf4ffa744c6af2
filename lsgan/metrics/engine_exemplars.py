"""Metrics on samples grouped by the exemplar they were drawn for, as ``torchmetrics.Metric`` classes:
the label-free "more like this" score (``LikeScore``) and the spread over z of an exemplar method
(``ZVariety``).

Generated samples are kept in exemplar order with each exemplar's sample count (both reduced by
``cat``, like the exemplars themselves and the reference), so after the gather across ranks the
k-th exemplar's samples are still the k-th block, and ``compute()`` applies the pure functions of
``lsgan.metrics.like`` and ``lsgan.metrics.conditional`` to all of them.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import Tensor

from lsgan.metrics.conditional import z_variety
from lsgan.metrics.engine import _count, _features, _FeatureLists, _ids
from lsgan.metrics.like import like_score


class _Draws(_FeatureLists):
    """Generated samples (``fake_features``) in exemplar order with ``draws``, each exemplar's sample count."""

    def __init__(self, reset_real_features: bool = True, with_ids: bool = False, **kwargs: Any) -> None:
        super().__init__(reset_real_features, with_ids=with_ids, **kwargs)
        self.add_state("draws", default=[], dist_reduce_fx="cat")

    def _add_draws(self, samples: Any, n_exemplars: int, owner: Any = None) -> None:
        """``samples``: X × S × d (S draws for each of the X exemplars), or N × d with ``owner`` (ids in 0..X−1)."""
        f = torch.as_tensor(samples, device=self.device).detach()
        if f.ndim == 3 and owner is None:
            if len(f) != n_exemplars:
                raise ValueError(f"samples: {len(f)} groups of draws for {n_exemplars} exemplars")
            counts = torch.full((n_exemplars,), f.shape[1], dtype=torch.long, device=f.device)
            f = f.reshape(-1, f.shape[-1])
        elif f.ndim == 2 and owner is not None:
            o = _ids(owner, "owner", n_exemplars, f.device)
            if len(o) != len(f):
                raise ValueError(f"samples / owner: need equal lengths, got {len(f)} and {len(o)}")
            f, counts = f[torch.argsort(o, stable=True)], torch.bincount(o, minlength=n_exemplars)
        else:
            raise ValueError(f"samples: expected X×S×d draws, or N×d with owner (the exemplar of each), got shape "
                             f"{tuple(f.shape)}{' with' if owner is not None else ' without'} owner")
        self.fake_features.append(f)
        self.draws.append(counts)

    def _owner(self, draws: Tensor) -> Tensor:
        return torch.repeat_interleave(torch.arange(len(draws)), draws.long())


class LikeScore(_Draws):
    """"More like this image", label-free: for each sample, the share of reference rows closer to its
    exemplar than the sample's nearest reference row (0 = the exemplar's own neighbours); chance: the
    same with each exemplar's samples paired to another (``lsgan.metrics.like.like_score``).

    ``update(features, real=True)``: reference features. ``update(features, real=False,
    exemplars=...)``: the exemplars' features (X × d) and their samples' (X × S × d, or N × d with
    ``owner``). ``compute()``: the score; ``report()``: {"value", "chance"}.
    """

    higher_is_better = False

    def __init__(self, seed: int = 0, reset_real_features: bool = True, **kwargs: Any) -> None:
        super().__init__(reset_real_features, **kwargs)
        self.seed = int(seed)
        self.add_state("exemplar_features", default=[], dist_reduce_fx="cat")

    def update(self, features: Tensor, real: bool, exemplars: Optional[Tensor] = None,
               owner: Optional[Tensor] = None) -> None:
        if real:
            if exemplars is not None or owner is not None:
                raise ValueError("exemplars / owner: only with real=False (the reference has none)")
            self._append(features, real=True)
            return
        if exemplars is None:
            raise ValueError("exemplars: needed with real=False (the features of the images the samples are like)")
        ex = _features(exemplars, "exemplars", self.device)
        self._add_draws(features, len(ex), owner)
        self.exemplar_features.append(ex)

    def _result(self) -> Dict[str, float]:
        ex, samples, draws, ref = self._gathered("exemplar_features", "fake_features", "draws", "real_features")
        return like_score(ex, samples, self._owner(draws), ref, seed=self.seed)

    def compute(self) -> Tensor:
        return torch.tensor(self._result()["value"], dtype=torch.float64)

    def report(self) -> Dict[str, float]:
        return self._synced(self._result)


class ZVariety(_Draws):
    """Does an exemplar-conditioned G use z? Per exemplar: mean pairwise distance of its samples (one
    exemplar, different z) / that of the real features of its class; the mean over exemplars
    (1.0 = z alone spans the class, ≈ 0 = G ignores z); ``lsgan.metrics.conditional.z_variety``.

    ``update(features, ids, real=False)``: X × S × d draws (or N × d with ``owner``) and the X exemplars'
    classes; ``update(features, ids, real=True)``: real features and their classes; class ids below
    ``num_classes``. ``compute()``: the mean; ``report()``: {"per_exemplar", "mean"}.
    """

    def __init__(self, num_classes: int, max_samples: int = 2000, seed: int = 0, reset_real_features: bool = True,
                 **kwargs: Any) -> None:
        # fake_ids: one class per exemplar (not per sample), in the order of draws
        super().__init__(reset_real_features, with_ids=True, **kwargs)
        self.num_classes = _count(num_classes, "num_classes")
        self.max_samples, self.seed = _count(max_samples, "max_samples"), int(seed)

    def update(self, features: Tensor, ids: Tensor, real: bool, owner: Optional[Tensor] = None) -> None:
        if real:
            if owner is not None:
                raise ValueError("owner: only with real=False (real features are grouped by their class)")
            self._append(features, True, ids, self.num_classes)
            return
        classes = _ids(ids, "ids", self.num_classes, self.device)
        self._add_draws(features, len(classes), owner)
        self.fake_ids.append(classes)

    def _result(self) -> Dict[str, object]:
        g, draws, e, r, y = self._gathered("fake_features", "draws", "fake_ids", "real_features", "real_ids")
        return z_variety(g, self._owner(draws), e, r, y, self.max_samples, self.seed)

    def compute(self) -> Tensor:
        return torch.tensor(self._result()["mean"], dtype=torch.float64)

    def report(self) -> Dict[str, object]:
        return self._synced(self._result)


__all__ = ["LikeScore", "ZVariety"]
