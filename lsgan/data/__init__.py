"""Data layer: in-memory datasets, a resumable batch sampler and the Lightning data module."""
from lsgan.data.batch import Batch
from lsgan.data.datamodule import GANDataModule, identity_collate
from lsgan.data.datasets import SPLITS, ArrayDataset, load_dataset, target_size
from lsgan.data.sampler import ResumableBatchSampler

__all__ = ["Batch", "ArrayDataset", "GANDataModule", "ResumableBatchSampler", "SPLITS", "identity_collate",
           "load_dataset", "target_size"]
