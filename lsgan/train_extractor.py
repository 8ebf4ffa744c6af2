"""Train a learned feature extractor and write its weights file.

    python -m lsgan.train_extractor extractor=rotnet dataset=cifar10 data.root=../shared/data
    python -m lsgan.train_extractor extractor=supervised dataset=mnist data.root=../shared/data data.label_noise=0.3
    python -m lsgan.train_extractor -m extractor=supervised dataset=mnist data.label_noise=0,0.2,0.4,0.6,0.8,1.0

Steps, batch, learning rate and width come from the extractor node (extractor.train_steps,
extractor.train_batch_size, extractor.train_lr, extractor.width). The weights go to
``extractor.weights`` when set, else to ``<cache>/extractors/<kind>-<dataset>-<hash>.pt``
(``<cache>`` = $LSGAN_CACHE or ~/.cache/lsgan; the hash covers data and training settings);
a JSON beside it records the settings and the held-out accuracy. Written atomically; the
path is printed together with the overrides that use it.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lsgan.errors import ConfigError, check_choice


def default_weights_path(cfg: DictConfig) -> Path:
    from lsgan.data.datasets import target_size
    from lsgan.features.cache import default_cache_dir

    ext, data = cfg.extractor, cfg.data
    settings = {"data": OmegaConf.to_container(data, resolve=True), "seed": int(cfg.seed),
                "train": {k: ext[k] for k in ("width", "train_steps", "train_batch_size", "train_lr")}}
    for k in ("root", "batch_size", "num_workers", "download"):  # where / how data is read, not what
        settings["data"].pop(k, None)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    noise = f"-noise{float(data.label_noise):g}" if ext.name == "supervised" else ""
    return default_cache_dir(ext).parent / "extractors" / f"{ext.name}-{data.name}-{target_size(data)}px{noise}-{digest}.pt"


def train_extractor(cfg: DictConfig) -> Path:
    """Train ``cfg.extractor.name`` (rotnet | supervised) on ``cfg.data``'s training split; returns the weights path."""
    from lsgan.data.datasets import load_dataset
    from lsgan.features.extractors import TRAINED, check_extractor_config, save_extractor_checkpoint
    from lsgan.features.pipeline import _device
    from lsgan.features.training import train_rotnet, train_supervised

    from lsgan.features.cli import validate_feature_nodes

    cfg = validate_feature_nodes(cfg)
    ext = cfg.extractor
    check_choice("extractor (lsgan.train_extractor trains)", ext.name, TRAINED)
    check_extractor_config(ext, need_weights=False)
    if int(ext.train_steps) < 1 or int(ext.train_batch_size) < 1 or float(ext.train_lr) <= 0:
        raise ConfigError("extractor.train_steps / train_batch_size / train_lr: must be positive")
    train = load_dataset(cfg.data, cfg.data.train_split, int(cfg.seed), train=True)
    held = load_dataset(cfg.data, cfg.data.eval_split, int(cfg.seed), train=False)
    if not train.is_image:
        raise ConfigError(f"dataset={cfg.data.name}: extractors need image data")
    common = dict(width=int(ext.width), steps=int(ext.train_steps), batch_size=int(ext.train_batch_size),
                  lr=float(ext.train_lr), seed=int(cfg.seed), device=_device(cfg),
                  log_every=max(1, int(ext.train_steps) // 10))
    print(f"[lsgan.train_extractor] {ext.name} on {cfg.data.name}/{cfg.data.train_split}: {len(train)} images "
          f"{tuple(train.data.shape[1:])}, {common['steps']} steps of {common['batch_size']}"
          + (f", label_noise={cfg.data.label_noise}" if ext.name == "supervised" else ""), flush=True)
    if ext.name == "rotnet":
        net, hist = train_rotnet(train.data, eval_images=held.data, **common)
        num_outputs = 4
    else:
        if train.labels is None:
            raise ConfigError(f"extractor=supervised: dataset={cfg.data.name} has no labels")
        net, hist = train_supervised(train.data, train.labels, train.num_classes, eval_images=held.data,
                                     eval_labels=held.clean_labels, **common)
        num_outputs = train.num_classes
    out = Path(os.path.expanduser(str(ext.weights))) if ext.weights else default_weights_path(cfg)
    meta = {"dataset": str(cfg.data.name), "size": int(train.data.shape[-1]), "channels": int(train.data.shape[1]),
            "classes": None if cfg.data.classes is None else list(cfg.data.classes),
            "label_noise": float(cfg.data.label_noise) if ext.name == "supervised" else 0.0,
            "seed": int(cfg.seed), "width": int(ext.width), "train_batch_size": int(ext.train_batch_size),
            "train_lr": float(ext.train_lr), **hist}
    path = save_extractor_checkpoint(str(out), ext.name, net, int(train.data.shape[1]), int(ext.width),
                                     int(train.data.shape[-1]), num_outputs, meta)
    if held.clean_labels is not None:  # how well the features group classes, before any GAN sees them
        meta["eval_knn1_label_agreement"] = knn1_agreement(ext, path, held)
        print(f"[lsgan.train_extractor] kNN-1 label agreement of {ext.layer} features (pool {ext.pool}) on "
              f"{cfg.data.name}/{cfg.data.eval_split}: {meta['eval_knn1_label_agreement']:.3f}", flush=True)
    from lsgan.io import atomic_file

    with atomic_file(path + ".json", "w", fsync=True) as fh:
        fh.write(json.dumps(meta, indent=1, sort_keys=True))
    acc = hist.get("eval_rotation_acc", hist.get("eval_clean_acc"))
    print(f"[lsgan.train_extractor] probe loss {hist['probe_loss_before']:.4f} -> {hist['probe_loss_after']:.4f}; "
          f"held-out {'rotation' if ext.name == 'rotnet' else 'clean-label'} accuracy {acc:.3f}\n"
          f"  weights: {path}\n  use:     extractor={ext.name} extractor.weights={path}", flush=True)
    return Path(path)


def ensure_extractor_weights(cfg: DictConfig) -> DictConfig:
    """``cfg`` with ``extractor.weights: auto`` (the generic coupled recipe's RotNet) replaced by this
    data's cached RotNet, trained here first when the cache has none; ``cfg`` itself otherwise."""
    if cfg.get("extractor") is None or cfg.extractor.get("weights") != "auto":
        return cfg
    from lsgan.data.datasets import target_size
    from lsgan.features.cli import validate_feature_nodes

    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    out.extractor.weights = None
    trained_on = at_most(out, AUTO_ROTNET_SIDE)
    path = default_weights_path(validate_feature_nodes(trained_on))
    if not path.is_file():
        print(f"[lsgan] no {out.extractor.name} for this data at {target_size(trained_on.data)} px in the cache yet: "
              f"training one ({out.extractor.train_steps} steps)", flush=True)
        path = train_extractor(trained_on)
    out.extractor.weights = str(path)
    return out


# The generic recipe's RotNet learns on images of at most this side: a step at 64 px costs four times one at 32
# (CelebA 64: 4.7 s a step on one thread, 78 minutes for 1,000), and a trained extractor resizes what it is fed to
# its training size (extractor.input_size: null), so larger data is read at 32 px.
AUTO_ROTNET_SIDE = 32


def at_most(cfg: DictConfig, side: int) -> DictConfig:
    """``cfg`` with its data read at ``side`` px when larger (CelebA: the size is in the dataset's name)."""
    from lsgan.data.datasets import target_size

    if target_size(cfg.data) <= side:
        return cfg
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    if out.data.name.startswith("celeba"):
        out.data.name = f"celeba{side}"
    out.data.size = side
    return out


def knn1_agreement(ext, weights: str, held) -> float:
    """Share of ``held``'s images whose nearest other image in E's feature space (``ext``'s layer and
    pooling, with the weights just written) has the same label: the paper's kNN label agreement."""
    from lsgan.features.extractors import build_extractor, extract_split_features
    from lsgan.metrics.knn import knn_label_agreement

    node = OmegaConf.merge(OmegaConf.structured(ext) if not isinstance(ext, DictConfig) else ext,
                           {"weights": str(weights), "pca_dim": None})
    extractor = build_extractor(node, tuple(held.data.shape[1:]))
    features = extract_split_features(extractor, held, batch_size=int(ext.batch_size), device="cpu", verbose=False)
    return float(knn_label_agreement(features, held.clean_labels, ks=(1,))[1])


def main() -> None:
    from lsgan.features.cli import run_hydra_cli

    run_hydra_cli(train_extractor)


if __name__ == "__main__":
    main()
