"""The LightningDataModule every method trains from.

It owns the training split (loaded once), the evaluation split (loaded on first use) and a
resumable, endless training loader. Its checkpoint state is the number of batches already
consumed, so a resumed run continues with exactly the batches an uninterrupted one would see.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from lsgan.data.batch import Batch
from lsgan.data.datasets import ArrayDataset, load_dataset, prepare_dataset
from lsgan.data.sampler import ResumableBatchSampler
from lsgan.errors import ConfigError


def identity_collate(batch):
    """The dataset's ``__getitems__`` already returns a Batch. A named function (not a lambda)
    so that worker processes started with spawn / forkserver can pickle it."""
    return batch


class GANDataModule(pl.LightningDataModule):
    def __init__(self, data_cfg, seed: int = 0):
        super().__init__()
        self.cfg = data_cfg
        self.seed = int(seed)
        self.start_batch = 0
        self._train: Optional[ArrayDataset] = None
        self._eval: Optional[ArrayDataset] = None

    # ----------------------------------------------------------------- data
    def prepare_data(self) -> None:
        prepare_dataset(self.cfg)

    def setup(self, stage: Optional[str] = None) -> None:
        if self._train is None:
            self._train = load_dataset(self.cfg, self.cfg.train_split, self.seed, train=True)

    @property
    def train_set(self) -> ArrayDataset:
        self.setup()
        return self._train

    @property
    def eval_set(self) -> ArrayDataset:
        """The evaluation split: clean labels, no max_train cap (class subsetting still applies)."""
        if self._eval is None:
            self._eval = load_dataset(self.cfg, self.cfg.eval_split, self.seed, train=False)
        return self._eval

    def attach_features(self, features: torch.Tensor) -> None:
        """Make training batches carry ``feat`` (row i belongs to training example i).

        Call before the first ``train_dataloader()``: worker processes hold their own copy.
        """
        if features.shape[0] != len(self.train_set):
            raise ValueError(f"features: {features.shape[0]} rows for {len(self.train_set)} training examples")
        self.train_set.features = features.detach().to("cpu", torch.float32).contiguous()

    # ----------------------------------------------------------------- loader
    def train_dataloader(self) -> DataLoader:
        rank, world = 0, 1
        if self.trainer is not None:
            rank, world = int(self.trainer.global_rank), int(self.trainer.world_size)
        sampler = ResumableBatchSampler(len(self.train_set), int(self.cfg.batch_size), seed=self.seed,
                                        start_batch=self.start_batch, rank=rank, world_size=world)
        workers = int(self.cfg.num_workers)
        return DataLoader(
            self.train_set,
            batch_sampler=sampler,
            collate_fn=identity_collate,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=False,
            # the loader draws its worker base seed from this, not from the global RNG
            generator=torch.Generator().manual_seed(self.seed),
        )

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        # A Batch moves itself; Lightning's generic walk would deep-copy the dataclass every step.
        if isinstance(batch, Batch):
            return batch.to(device)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    # ----------------------------------------------------------------- resume
    def state_dict(self) -> dict:
        module = getattr(self.trainer, "lightning_module", None) if self.trainer is not None else None
        if module is not None and hasattr(module, "iteration"):
            return {"start_batch": int(module.iteration)}
        return {"start_batch": int(self.start_batch)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.start_batch = int(state_dict["start_batch"])

    # ----------------------------------------------------------------- shape info
    @property
    def image_shape(self) -> Tuple[int, ...]:
        """(C, H, W) for images, (2,) for 2-D points."""
        return tuple(self.train_set.data.shape[1:])

    @property
    def num_classes(self) -> int:
        return self.train_set.num_classes

    @property
    def class_names(self) -> List[str]:
        return self.train_set.class_names


def datamodule_of(cfg, check_batch_size: bool = False) -> GANDataModule:
    """The data module of a run's config (``cfg.data``, seeded by ``cfg.seed``, 0 when absent) with its training
    split loaded (the eval split loads on first use): what training builds (``lsgan.run.build_datamodule``)
    and what a checkpoint's readers rebuild (``lsgan.loading.load_datamodule``). ``check_batch_size``
    (training): a batch larger than the training split is a one-line ConfigError."""
    dm = GANDataModule(cfg.data, seed=int(cfg.get("seed", 0)))
    dm.setup("fit")
    if check_batch_size:
        n, bs = len(dm.train_set), int(cfg.data.batch_size)
        if bs > n:
            raise ConfigError(f"data.batch_size={bs} is larger than the training split of dataset={cfg.data.name} "
                              f"({n} examples); lower data.batch_size to at most {n}")
    return dm
