"""An endless, resumable stream of shuffled index batches.

Batch number j depends only on (seed, j): epoch e = j // batches_per_epoch is a permutation
drawn from a generator seeded with ``seed * 1000003 + e`` (the incomplete last batch of each
epoch is dropped). A run restarted at batch j therefore sees exactly the batches an
uninterrupted run would have seen, and nothing here touches the global torch RNG.
"""
from __future__ import annotations

from typing import Iterator, List

import torch


class ResumableBatchSampler:
    """Infinite iterable of index lists, starting at batch ``start_batch``.

    With ``world_size`` > 1 each rank takes its own slice of the same epoch permutation:
    global step j gives rank r the batch at position j·world_size + r, so ranks never share
    examples within an epoch. There is no ``__len__``: the stream never ends.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, start_batch: int = 0,
                 rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"data.batch_size={batch_size}: must be >= 1")
        if n < batch_size * world_size:
            raise ValueError(f"data.batch_size={batch_size}: larger than the training set ({n} examples"
                             + (f" over {world_size} ranks)" if world_size > 1 else ")"))
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank}: must be in 0..{world_size - 1}")
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self.start_batch, self.rank, self.world_size = int(start_batch), int(rank), int(world_size)
        self.batches_per_epoch = self.n // (self.batch_size * self.world_size)

    def permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1000003 + epoch)
        return torch.randperm(self.n, generator=g)

    def batch(self, j: int) -> List[int]:
        """Batch number j of this rank (a pure function of seed, j and rank)."""
        epoch, k = divmod(j, self.batches_per_epoch)
        return self._slice(self.permutation(epoch), k)

    def _slice(self, perm: torch.Tensor, k: int) -> List[int]:
        start = (k * self.world_size + self.rank) * self.batch_size
        return perm[start:start + self.batch_size].tolist()

    def __iter__(self) -> Iterator[List[int]]:
        epoch, k = divmod(self.start_batch, self.batches_per_epoch)
        while True:
            perm = self.permutation(epoch)  # one permutation per epoch, not per batch
            for kk in range(k, self.batches_per_epoch):
                yield self._slice(perm, kk)
            epoch, k = epoch + 1, 0
