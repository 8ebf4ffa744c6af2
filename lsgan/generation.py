"""Generating from a trained method: the library the metric suite, the report and the ``lsgan.sample`` CLI use.

- ``generate(method, n, condition=None, exemplar_set=None, exemplar_indices=None, ...)`` → :class:`Generated`:
  one sample per exemplar image (methods with ``accepts_exemplars``), all n from one condition, or a
  conditional method's conditions evenly (or by ``weights``: ``prior_weights(method)``), an unconditional
  method's free samples. A bad request is a one-line :class:`GenerationError` (a ValueError); the
  ``lsgan.sample`` command line reports it as its own argument error.
- ``per_condition_counts`` / ``condition_counts``: how n samples split over k conditions (the one even split;
  ``even_conditions`` uses it too).
- ``exemplar_indices``: the seeded draw of exemplar images; ``samples_arrays`` / ``to_uint8_hwc``: the arrays
  of ``samples.npz``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from lsgan.console import Progress


class GenerationError(ValueError):
    """A generation request the method cannot serve (n < 1, a condition it does not have, exemplars it
    does not take); its message is one line."""


def per_condition_counts(n: int, k: int) -> List[int]:
    """Split n samples evenly over k conditions (the first n % k get one more)."""
    base, extra = divmod(n, k)
    return [base + (1 if c < extra else 0) for c in range(k)]


@dataclass
class Generated:
    """Generated samples and what they were conditioned on (all on CPU).

    images: float32 N×C×H×W in [-1, 1] (or N×d points); conditions: int64 N (−1 = none);
    source_index / source_label: int64 N for exemplar conditioning, else None.
    """

    images: torch.Tensor
    conditions: torch.Tensor
    source_index: Optional[torch.Tensor] = None
    source_label: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return len(self.images)


def even_conditions(n: int, k: int, device=None) -> torch.Tensor:
    """Condition ids 0..k-1 covering n samples evenly, in blocks."""
    counts = per_condition_counts(n, k)
    return torch.repeat_interleave(torch.arange(k, device=device), torch.tensor(counts, device=device))


def condition_counts(n: int, k: int, weights: Optional[Sequence[float]] = None) -> List[int]:
    """Samples per condition: even (first n % k get one more), or proportional to ``weights``
    by largest remainders, so the counts always sum to n."""
    if weights is None:
        return per_condition_counts(n, k)
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    raw = w * n
    counts = np.floor(raw).astype(np.int64)
    for c in np.argsort(-(raw - counts), kind="stable")[: n - int(counts.sum())]:
        counts[c] += 1
    return counts.tolist()


def prior_weights(method) -> Optional[List[float]]:
    """The method's mode proportions when it has an imbalanced-capable prior (nemgan, clustergan), else None."""
    prior = getattr(method, "prior", None)
    w = getattr(prior, "weights", None)
    if w is None or len(w) != method.num_conditions:
        return None
    return [float(v) for v in torch.as_tensor(w).flatten()]


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(size, n - start)


@torch.no_grad()
def generate(method, n: int, condition: Optional[int] = None, exemplar_set=None,
             exemplar_indices: Optional[torch.Tensor] = None, batch_size: int = 256,
             use_ema: bool = True, weights: Optional[Sequence[float]] = None) -> Generated:
    """n samples from ``method`` (in eval mode).

    - ``exemplar_set`` (an ArrayDataset) with ``exemplar_indices`` (int64 n): one sample per
      exemplar image, for methods that accept exemplars;
    - ``condition`` = K: all n from condition K;
    - otherwise a conditional method covers its conditions evenly (or by ``weights``), an
      unconditional one samples freely.
    """
    if n < 1:
        raise GenerationError(f"n={n}: must be >= 1")
    k = int(method.num_conditions)
    name = method.mcfg.name
    if exemplar_set is not None:
        if condition is not None:
            raise GenerationError("condition and exemplars: give one or the other, not both")
        if not method.accepts_exemplars:
            raise GenerationError(f"exemplars: method={name} does not generate from exemplar images "
                           f"(only methods with accepts_exemplars, e.g. coupled)")
        idx = torch.as_tensor(exemplar_indices, dtype=torch.long)
        images = []
        with Progress("generating samples", len(idx), "images") as shown:
            for start, size in _chunks(len(idx), batch_size):
                x = exemplar_set.images(idx[start:start + size]).to(method.device)
                images.append(method.sample(size, condition=x, use_ema=use_ema).float().cpu())
                shown.update(size)
        labels = exemplar_set.clean_labels
        return Generated(torch.cat(images), torch.full((len(idx),), -1, dtype=torch.long), idx.clone(),
                         None if labels is None else labels[idx].clone().long())
    if condition is not None:
        if k == 0 and method.accepts_exemplars:
            raise GenerationError(f"condition={condition}: method={name} generates from exemplar images, not condition ids; "
                           f"use exemplars=test (or exemplars=train)")
        if k == 0:
            raise GenerationError(f"condition={condition}: method={name} is unconditional (it has no conditions)")
        if not isinstance(condition, int) or not 0 <= condition < k:
            raise GenerationError(f"condition={condition}: method={name} takes an integer condition id in 0..{k - 1}")
        counts = [0] * k
        counts[condition] = n
    elif k > 0:
        counts = condition_counts(n, k, weights)
    else:
        counts = [n]  # one unconditional block
    images, conds = [], []
    with Progress("generating samples", n, "images") as shown:
        for c, count in enumerate(counts):
            for _, size in _chunks(count, batch_size):
                images.append(method.sample(size, condition=c if k > 0 else None, use_ema=use_ema).float().cpu())
                conds.append(torch.full((size,), c if k > 0 else -1, dtype=torch.long))
                shown.update(size)
    return Generated(torch.cat(images), torch.cat(conds))


def exemplar_indices(split_size: int, n: int, seed: int) -> torch.Tensor:
    """n indices into a split: a seeded permutation (splits are stored grouped by class), cycled if n > size."""
    perm = torch.randperm(split_size, generator=torch.Generator().manual_seed(int(seed)))
    return perm.repeat((n + split_size - 1) // split_size)[:n]


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """Float N×C×H×W in [-1, 1] → uint8 N×H×W×C (the rounding a PNG would apply)."""
    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def samples_arrays(gen: Generated) -> Dict[str, np.ndarray]:
    """The samples.npz content for ``gen`` (the format ``lsgan.sample``'s docstring describes)."""
    out: Dict[str, np.ndarray] = {}
    if gen.images.dim() == 4:
        out["images"] = to_uint8_hwc(gen.images)
    else:
        out["points"] = gen.images.float().numpy().astype(np.float32)
    out["conditions"] = gen.conditions.numpy().astype(np.int64)
    if gen.source_index is not None:
        out["source_index"] = gen.source_index.numpy().astype(np.int64)
        if gen.source_label is not None:
            out["source_label"] = gen.source_label.numpy().astype(np.int64)
    return out


__all__ = ["Generated", "GenerationError", "condition_counts", "even_conditions", "exemplar_indices", "generate", "per_condition_counts",
           "prior_weights", "samples_arrays", "to_uint8_hwc"]
