"""What a method calls: training-split features at fit start and the extractor for on-the-fly use.

    extractor, feats = prepare_features(cfg, dm)   # both at once (one extraction)
    dm.attach_features(feats)                      # batches now carry .feat (row i = example i)
    f = extractor(x)                               # condition_of / features of new images

``features_for_datamodule`` and ``extractor_for_method`` are the two halves on their own. With
``extractor.cache: true`` raw features come from the on-disk cache (built on first use);
with ``false`` they are computed in memory every time. With ``extractor.pca_dim`` set, a PCA
fitted on the raw training features (cached too) is appended to the extractor and applied
to the returned features, so cached features and on-the-fly ones live in the same space.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

from lsgan.features.cache import FeatureCache, default_cache_dir, feature_key
from lsgan.features.extractors import FeatureExtractor, build_extractor, extract_split_features, extractor_config
from lsgan.features.pca import PCAProjection, fit_pca

PCA_MAX_ROWS = 20000


def _device(cfg) -> str:
    if cfg.extractor.get("device"):
        return str(cfg.extractor.device)
    use_gpu = torch.cuda.is_available() and cfg.get("trainer", {}).get("accelerator", "auto") != "cpu"
    return "cuda" if use_gpu else "cpu"


def _raw_train_features(cfg, ext, extractor: FeatureExtractor, dataset, device: str) -> torch.Tensor:
    split = cfg.data.train_split
    if ext.cache:
        cache = FeatureCache(default_cache_dir(ext))
        feats, info = cache.features(cfg.data, split, dataset, extractor, int(ext.batch_size), device)
        print(f"[lsgan.features] {'cache hit' if info.hit else 'cache built'}: {info.path} "
              f"({info.shape[0]}x{info.shape[1]}, {info.seconds:.1f}s)", flush=True)
        return feats
    return extract_split_features(extractor, dataset, int(ext.batch_size), device, label=f"{cfg.data.name}/{split}")


def _pca(cfg, ext, extractor: FeatureExtractor, dataset, raw: torch.Tensor) -> PCAProjection:
    dim, seed = int(ext.pca_dim), int(cfg.get("seed", 0))
    if not ext.cache:
        return fit_pca(raw, dim, PCA_MAX_ROWS, seed)
    key = dict(feature_key(cfg.data, cfg.data.train_split, extractor, dataset),
               pca={"dim": dim, "max_rows": PCA_MAX_ROWS, "seed": seed})
    desc = extractor.description
    stem = f"{cfg.data.name}-{cfg.data.train_split}-{desc['name']}-{desc['layer']}-pca{dim}"

    def fill(arr: np.ndarray) -> None:
        arr[:] = fit_pca(raw, dim, PCA_MAX_ROWS, seed).as_array().numpy()

    arr, _ = FeatureCache(default_cache_dir(ext)).get_or_build(key, stem, (dim + 1, raw.shape[1]), fill)
    return PCAProjection.from_array(arr.clone())


def _project(projection: PCAProjection, raw: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([projection(raw[i:i + chunk]) for i in range(0, len(raw), chunk)])


def prepare_features(cfg, dm) -> Tuple[FeatureExtractor, torch.Tensor]:
    """(frozen extractor on CPU, N×d training-split features of ``dm``) for config ``cfg``."""
    ext = extractor_config(cfg.extractor)
    extractor = build_extractor(ext, dm.image_shape)
    device = _device(cfg)
    raw = _raw_train_features(cfg, ext, extractor, dm.train_set, device)
    feats = raw
    if ext.pca_dim:
        extractor.set_projection(_pca(cfg, ext, extractor, dm.train_set, raw))
        feats = _project(extractor.projection.cpu(), raw)
    extractor.cpu()
    return extractor, feats


def features_for_datamodule(cfg, dm) -> torch.Tensor:
    """N×d features of ``dm``'s training split, row i for example i (then ``dm.attach_features(feats)``)."""
    return prepare_features(cfg, dm)[1]


def extractor_for_method(cfg, in_shape, dm=None) -> FeatureExtractor:
    """The frozen extractor (with its fitted PCA when ``extractor.pca_dim`` is set) for on-the-fly features.

    PCA needs the training split: taken from ``dm`` when given, else loaded from ``cfg.data``.
    """
    ext = extractor_config(cfg.extractor)
    extractor = build_extractor(ext, in_shape)
    if ext.pca_dim:
        if dm is not None:
            dataset = dm.train_set
        else:
            from lsgan.data.datasets import load_dataset

            dataset = load_dataset(cfg.data, cfg.data.train_split, int(cfg.get("seed", 0)), train=True)
        raw = _raw_train_features(cfg, ext, extractor, dataset, _device(cfg))
        extractor.set_projection(_pca(cfg, ext, extractor, dataset, raw))
    return extractor.cpu()

