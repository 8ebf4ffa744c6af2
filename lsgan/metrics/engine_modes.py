"""Mode and class counts as ``torchmetrics.Metric`` classes: how many modes a generator hits, and
in what proportions it draws the classes.

Each state is a count vector (or a count) reduced by ``sum``, so under Lightning or
``torch.distributed`` every rank counts its own samples and ``compute()`` sees them all. The numbers
are ``lsgan.metrics.modes``' (VEEGAN / PacGAN conventions, described there) on the summed counts.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from lsgan.metrics.engine import _count, _ids, _RealFake, _Synced
from lsgan.metrics.modes import kl_to_uniform


class ClassMasses(_RealFake):
    """Does a model draw the classes in the data's proportions (NEMGAN's 02:98 claim)?
    ``lsgan.metrics.modes.class_masses``.

    ``update(classes, real)``: the (predicted) classes of generated samples (``real=False``) or the
    data's labels (``real=True``), ids below ``num_classes``. ``compute()``: the largest gap, over
    classes, between the generated share and the data's share (0 = masses carried); ``report()``:
    {"value", "generated", "data" (shares per class), "n_generated"}.
    """

    higher_is_better = False
    full_state_update = False
    _real_states = ("real_counts",)

    def __init__(self, num_classes: int, reset_real_features: bool = True, **kwargs: Any) -> None:
        super().__init__(reset_real_features, **kwargs)
        self.num_classes = _count(num_classes, "num_classes")
        for side in ("real", "fake"):
            self.add_state(f"{side}_counts", default=torch.zeros(self.num_classes, dtype=torch.long),
                           dist_reduce_fx="sum")

    def update(self, classes: Tensor, real: bool) -> None:
        side = "real" if real else "fake"
        ids = _ids(classes, "classes", self.num_classes, self.real_counts.device)
        counts = torch.bincount(ids, minlength=self.num_classes)
        setattr(self, f"{side}_counts", getattr(self, f"{side}_counts") + counts)

    def _result(self) -> Dict[str, object]:
        gen, data = self.fake_counts.cpu(), self.real_counts.cpu()
        for name, counts in (("generated", gen), ("data", data)):
            if counts.sum() == 0:
                raise ValueError(f"ClassMasses: no {name} classes; call update(..., real={name == 'data'}) first")
        g, d = gen.double() / gen.sum(), data.double() / data.sum()
        return {"value": float((g - d).abs().max()), "generated": g.tolist(), "data": d.tolist(),
                "n_generated": int(gen.sum())}

    def compute(self) -> Tensor:
        return torch.tensor(self._result()["value"], dtype=torch.float64)

    def report(self) -> Dict[str, object]:
        return self._synced(self._result)


class StackedMNISTModes(_Synced, Metric):
    """Stacked-MNIST mode counting: a sample's mode is the triple of digits read in its three
    channels (100·d0 + 10·d1 + d2); ``lsgan.metrics.modes.stacked_mnist_modes``.

    ``update(digits)``: N × 3 digits in 0..9. ``compute()``: the modes hit (at least one sample);
    ``report()``: {"modes", "kl" (KL(p_gen ‖ uniform)), "n", "counts"}.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    counts: Tensor

    def __init__(self, n_modes: int = 1000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_modes = _count(n_modes, "n_modes")
        self.add_state("counts", default=torch.zeros(self.n_modes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, digits: Tensor) -> None:
        d = torch.as_tensor(digits, device=self.counts.device)
        if d.ndim != 2 or d.shape[1] != 3 or d.is_floating_point() or (d.numel() and (d.min() < 0 or d.max() > 9)):
            raise ValueError(f"digits: expected N×3 integer digits in 0..9, got dtype {d.dtype}, "
                             f"shape {tuple(d.shape)}")
        mode = _ids(d[:, 0] * 100 + d[:, 1] * 10 + d[:, 2], "modes of digits", self.n_modes, self.counts.device)
        self.counts += torch.bincount(mode, minlength=self.n_modes)

    def _counts(self) -> np.ndarray:
        counts = self.counts.cpu().numpy()
        if counts.sum() == 0:
            raise ValueError("StackedMNISTModes: no samples; call update() first")
        return counts

    def compute(self) -> Tensor:
        return torch.tensor(int((self._counts() > 0).sum()))

    def report(self) -> Dict[str, object]:
        counts = self._synced(self._counts)
        return {"modes": int((counts > 0).sum()), "kl": kl_to_uniform(counts), "n": int(counts.sum()),
                "counts": counts}


class ToyModes(_Synced, Metric):
    """2-D mixture mode counting: each sample goes to its nearest centre and is *high quality* within
    3·``std`` of it; a mode is covered by at least ``min_count`` high-quality samples;
    ``lsgan.metrics.modes.toy_mode_stats``.

    ``update(samples)``: N × D points. ``compute()``: the modes covered; ``report()``: {"modes",
    "n_modes", "high_quality" (share), "reverse_kl" (high-quality samples over modes vs uniform), "counts"}.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    counts: Tensor

    def __init__(self, centers: Any, std: float, min_count: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        c = torch.as_tensor(np.asarray(centers, dtype=np.float64))
        if c.ndim != 2 or len(c) == 0:
            raise ValueError(f"centers: expected M×D mode centres, got shape {tuple(c.shape)}")
        if not float(std) > 0:
            raise ValueError(f"std={std}: must be > 0")
        self.centers, self.std, self.min_count = c, float(std), _count(min_count, "min_count")
        self.add_state("counts", default=torch.zeros(len(c), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("high", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, samples: Tensor) -> None:
        x = torch.as_tensor(samples, device=self.counts.device).detach().double()
        c = self.centers.to(x.device)
        if x.ndim != 2 or x.shape[1] != c.shape[1]:
            raise ValueError(f"samples: expected N×{c.shape[1]} points (as the centres), got shape {tuple(x.shape)}")
        d = (x[:, None, :] - c[None, :, :]).pow(2).sum(dim=2).sqrt()
        nearest = d.argmin(dim=1)
        good = d.gather(1, nearest[:, None]).squeeze(1) <= 3 * self.std
        self.counts += torch.bincount(nearest[good], minlength=len(c))
        self.high += good.sum()
        self.n += len(x)

    def _state(self):
        if int(self.n) == 0:
            raise ValueError("ToyModes: no samples; call update() first")
        return self.counts.cpu().numpy(), int(self.high), int(self.n)

    def compute(self) -> Tensor:
        return torch.tensor(int((self._state()[0] >= self.min_count).sum()))

    def report(self) -> Dict[str, object]:
        counts, high, n = self._synced(self._state)
        return {"modes": int((counts >= self.min_count).sum()), "n_modes": len(counts), "high_quality": high / n,
                "reverse_kl": kl_to_uniform(counts), "counts": counts}


__all__ = ["ClassMasses", "StackedMNISTModes", "ToyModes"]
