"""Frozen feature extractors and the on-disk feature cache (the coupled method's E).

- ``build_extractor(extractor_cfg, in_shape)`` → a frozen :class:`FeatureExtractor`: images in
  [-1, 1], B×C×H×W → B×d features (an intermediate conv layer's map, optionally average-pooled,
  flattened; never logits).
- ``cached_features(data_cfg, split, extractor_cfg, dataset)`` → N×d features of a whole split,
  memory-mapped from a keyed, checksummed, atomically written ``.npy`` + JSON sidecar.
- ``features_for_datamodule(cfg, dm)`` / ``extractor_for_method(cfg, in_shape)``: what a method
  calls at fit start (training-split features) and for on-the-fly features (``condition_of``).
- ``train_rotnet`` / ``train_supervised``: the trained extractors' weights (CLI: ``lsgan.train_extractor``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class ExtractorConfig:
    name: str = "alexnet_random"   # alexnet_random | rotnet | supervised
    layer: str = "conv3"           # intermediate layer whose feature map is used: alexnet conv1..conv5, others conv1..conv4
    weights: Optional[str] = None  # checkpoint of a trained extractor (rotnet / supervised; required for those)
    seed: int = 0                  # alexnet_random: seed of the random weights
    input_size: Optional[int] = None  # images are resized to this before E; None = the extractor's own (alexnet 64, trained: their training size)
    pool: Optional[int] = None     # average-pool the feature map to pool×pool before flattening (None = full map)
    pca_dim: Optional[int] = None  # project features onto their top principal components (fit on the training split)
    cache: bool = True             # precompute training-split features into the on-disk cache (False: compute in memory)
    cache_dir: Optional[str] = None  # feature cache folder; None = $LSGAN_CACHE/features or ~/.cache/lsgan/features
    batch_size: int = 256          # images per forward pass when extracting
    device: Optional[str] = None   # extraction device; None = cuda when available, else cpu
    width: int = 16                # rotnet / supervised backbone: channels of the first block (then 2w, 4w, 4w)
    train_steps: int = 1000        # lsgan.train_extractor: optimizer steps
    train_batch_size: int = 64     # lsgan.train_extractor: images per step (rotnet: ×4 rotations)
    train_lr: float = 1e-3         # lsgan.train_extractor: Adam learning rate


from lsgan.features.extractors import (EXTRACTORS, FeatureExtractor, build_extractor,  # noqa: E402
                                       check_extractor_config, extractor_config, layers_of, load_extractor_checkpoint,
                                       save_extractor_checkpoint, weights_digest)
from lsgan.features.cache import FeatureCache, cached_features, default_cache_dir, feature_key  # noqa: E402
from lsgan.features.pca import PCAProjection, fit_pca  # noqa: E402
from lsgan.features.pipeline import (extract_features, extractor_for_method, features_for_datamodule,  # noqa: E402
                                     prepare_features)
from lsgan.features.training import train_rotnet, train_supervised  # noqa: E402

__all__ = [
    "ExtractorConfig", "EXTRACTORS", "FeatureExtractor", "build_extractor", "check_extractor_config", "extractor_config", "layers_of",
    "load_extractor_checkpoint", "save_extractor_checkpoint", "weights_digest",
    "FeatureCache", "cached_features", "default_cache_dir", "feature_key",
    "PCAProjection", "fit_pca",
    "extract_features", "extractor_for_method", "features_for_datamodule", "prepare_features",
    "train_rotnet", "train_supervised",
]
