"""Frozen feature extractors and the on-disk feature cache (the coupled method's E).

- ``build_extractor(extractor_cfg, in_shape)`` → a frozen :class:`FeatureExtractor`: images in
  [-1, 1], B×C×H×W → B×d features (an intermediate conv layer's map, optionally average-pooled,
  flattened; never logits).
- ``extract_split_features(extractor, dataset)`` → N×d features of a whole split, in batches;
  ``FeatureCache(root).features(data_cfg, split, dataset, extractor)`` the same memory-mapped from a
  keyed, checksummed, atomically written ``.npy`` + JSON sidecar (built on first use).
- ``features_for_datamodule(cfg, dm)`` / ``extractor_for_method(cfg, in_shape)``: what a method
  calls at fit start (training-split features) and for on-the-fly features (``condition_of``).
- ``train_rotnet`` / ``train_supervised``: the trained extractors' weights (CLI: ``lsgan.train_extractor``).
"""
from __future__ import annotations

from lsgan.features.extractors import (EXTRACTORS, ExtractorConfig, FeatureExtractor, build_extractor,
                                       check_extractor_config, extract_split_features, extractor_config, layers_of, load_extractor_checkpoint,
                                       save_extractor_checkpoint, weights_digest)
from lsgan.features.cache import FeatureCache, default_cache_dir, feature_key
from lsgan.features.pca import PCAProjection, fit_pca
from lsgan.features.pipeline import (extractor_for_method, features_for_datamodule,
                                     prepare_features)
from lsgan.features.training import train_rotnet, train_supervised

__all__ = [
    "ExtractorConfig", "EXTRACTORS", "FeatureExtractor", "build_extractor", "check_extractor_config", "extractor_config", "layers_of",
    "load_extractor_checkpoint", "save_extractor_checkpoint", "weights_digest",
    "FeatureCache", "default_cache_dir", "feature_key",
    "PCAProjection", "fit_pca",
    "extract_split_features", "extractor_for_method", "features_for_datamodule", "prepare_features",
    "train_rotnet", "train_supervised",
]
