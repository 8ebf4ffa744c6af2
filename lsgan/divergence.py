"""The divergence guard: a NaN / inf loss stops training, and never reaches a checkpoint.

Losses stay on the device between log rows: no host sync per iteration (on a GPU one ``.item()``
per key per step stalls the launch queue). :meth:`DivergenceGuard.watch` keeps each iteration's
non-finite flags on the device; :meth:`DivergenceGuard.check` reads them in one host sync. A
method checks at each log row, before every checkpoint is written and at the end, so a
non-finite loss is reported with the iteration it happened at and the last good checkpoint stays.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch


class DivergenceError(RuntimeError):
    """A loss became NaN/inf; training stops and the last good checkpoint is kept."""


class DivergenceGuard:
    def __init__(self):
        self._pending: List[Tuple[int, List[str], torch.Tensor]] = []  # (iteration, loss names, non-finite flags)

    def watch(self, iteration: int, losses: Dict[str, torch.Tensor]) -> None:
        """Note which of ``losses`` (scalar tensors on the device) are not finite at ``iteration``."""
        if losses:
            values = torch.stack(list(losses.values()))
            self._pending.append((iteration, list(losses), ~torch.isfinite(values)))

    def check(self) -> None:
        """Raise DivergenceError for the first non-finite loss since the last check (one host sync)."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        flags = torch.stack([bad.any() for _, _, bad in pending]).tolist()
        for (i, keys, bad), flag in zip(pending, flags):
            if flag:
                names = [k for k, b in zip(keys, bad.tolist()) if b]
                kept = "no checkpoint was written" if i == 0 else "the last good checkpoint is kept"
                raise DivergenceError(
                    f"non-finite loss at iteration {i}: {', '.join(names)}; training stopped, "
                    f"{kept} (lower the learning rates or check the data)"
                )
