"""The one batch type every method's training step receives."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch


@dataclass
class Batch:
    """A training batch.

    x:     images as float32 in [-1, 1], B×C×H×W (or B×2 points for the 2-D toy datasets).
    index: int64 B, positions in the training split (lets a feature cache or a pair sampler
           refer back to the dataset).
    y:     int64 B class labels, or None. Only label-using methods (cgan, evaluation) may read
           it: the base method strips it before an unsupervised method's step.
    feat:  float32 B×d precomputed extractor features aligned with x, or None.
    """

    x: torch.Tensor
    index: torch.Tensor
    y: Optional[torch.Tensor] = None
    feat: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def unlabeled(self) -> "Batch":
        return replace(self, y=None)

    def channels_last(self) -> "Batch":
        """The batch with 4-D images in NHWC memory layout (a no-op copy for other data)."""
        if self.x.dim() != 4:
            return self
        return replace(self, x=self.x.contiguous(memory_format=torch.channels_last))

    def to(self, device) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(x=move(self.x), index=move(self.index), y=move(self.y), feat=move(self.feat))
