"""Precompute a split's extractor features into the on-disk cache.

    python -m lsgan.extract dataset=mnist data.root=../shared/data extractor=alexnet_random [extractor.layer=conv3]
    python -m lsgan.extract dataset=cifar10 extractor=rotnet extractor.weights=<file> split=all
    python -m lsgan.extract -m dataset=mnist extractor.layer=conv2,conv3,conv4   # a sweep

``split=`` is ``train`` (default: data.train_split, what training reads), ``test`` or ``all``.
Prints, per split, the cache file, N×d, the time taken and whether it was a cache hit. With
``extractor.pca_dim`` set, the PCA fitted on the training split is cached as well.
"""
from __future__ import annotations

from typing import List, Optional

from omegaconf import DictConfig

from lsgan.features.cache import CacheInfo
from lsgan.errors import ConfigError, check_choice

SPLIT_CHOICES = ("train", "test", "all")


def extract(cfg: DictConfig, split: Optional[str] = None) -> List[CacheInfo]:
    """Build (or verify) the cache entries of ``split`` for ``cfg``; returns one CacheInfo per split."""
    from lsgan.data.datasets import load_dataset
    from lsgan.features.cache import FeatureCache, default_cache_dir
    from lsgan.features.extractors import build_extractor
    from lsgan.features.pipeline import _device, _pca

    split = split or cfg.get("split") or cfg.data.train_split
    check_choice("split", split, SPLIT_CHOICES)
    from lsgan.features.cli import validate_feature_nodes

    cfg = validate_feature_nodes(cfg)
    ext = cfg.extractor
    if not ext.cache:
        raise ConfigError("extractor.cache=false: nothing to precompute; drop the override to use the cache")
    splits = [cfg.data.train_split, cfg.data.eval_split] if split == "all" else [split]
    cache = FeatureCache(default_cache_dir(ext))
    infos = []
    for s in dict.fromkeys(splits):
        dataset = load_dataset(cfg.data, s, int(cfg.seed), train=s == cfg.data.train_split)
        extractor = build_extractor(ext, tuple(dataset.data.shape[1:]))
        feats, info = cache.features(cfg.data, s, dataset, extractor, int(ext.batch_size), _device(cfg))
        print(f"[lsgan.extract] {cfg.data.name}/{s}: {'cache hit' if info.hit else 'built'} "
              f"({'' if info.hit else info.reason + ', '}{info.seconds:.1f}s)\n"
              f"  features: {info.shape[0]}x{info.shape[1]} float32 ({ext.name} {ext.layer}, "
              f"{extractor.input_size}px, pool={ext.pool})\n  path:     {info.path}", flush=True)
        if ext.pca_dim and s == cfg.data.train_split:
            _pca(cfg, ext, extractor, dataset, feats)
            print(f"  pca:      {int(ext.pca_dim)} components fitted on this split (cached beside it)", flush=True)
        infos.append(info)
    return infos


def main() -> None:
    from lsgan.features.cli import run_hydra_cli

    run_hydra_cli(lambda cfg: extract(cfg), extra_keys=["split"])


if __name__ == "__main__":
    main()
