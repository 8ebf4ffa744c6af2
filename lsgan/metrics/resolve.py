"""Which evaluator classifier reads a run's samples, and where it lives.

- ``evaluator_path(cfg, size, channels)``: ``metrics.evaluator`` or the one cache path,
  ``<metrics cache>/evaluators/<dataset tag>_<size>_<channels>.pt`` (``metrics_cache_dir``: ``metrics.cache_dir``,
  else the cache root, ``$LSGAN_CACHE`` or ``~/.cache/lsgan``; ``dataset_tag``: the dataset plus
  its class subset / attribute / file / channels); ``lsgan.train_evaluator``'s ``train_and_cache`` writes
  there (epochs: ``metrics.evaluator_epochs`` or ``DEFAULT_EPOCHS``), ``resolve_evaluator`` reads there.
- ``resolve_evaluator(cfg, datamodule)``: (evaluator, None), or (None, the reason and the command that
  trains it). The 2-D toys need no trained net (``NearestCenterEvaluator``); stacked MNIST is read channel
  by channel by the MNIST evaluator (``StackedMNISTEvaluator``). ``ClassSubsetEvaluator`` reads an
  evaluator on some of its classes (a class-subset run judged by the evaluator of all classes).
- ``evaluator_protocol(ev)``: what a metric's protocol records about the evaluator it used.

An evaluator here is anything with ``predict(images)`` → class ids, ``features(images)`` → N×d and ``meta``
(``lsgan.metrics.evaluator.Evaluator`` or one of the adapters below); the metric suite
(``lsgan.metrics.suite``) reads nothing else.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict

import torch

from lsgan.io import cache_root
from lsgan.metrics.evaluator import EvaluatorFileError, evaluator_cache_path, load_evaluator
from lsgan.toys import TOY_DATASETS, toy_centers

# train_and_cache's epochs when metrics.evaluator_epochs is null (other datasets: 10)
DEFAULT_EPOCHS = {"digits": 15, "mnist": 2, "fashion_mnist": 8, "stacked_mnist": 2, "cifar10": 30,
                  "cifar100": 40, "cifar100_coarse": 40}


def dataset_tag(data_cfg) -> str:
    """Names the real distribution in cache keys: dataset + class subset / attribute / file."""
    tag = str(data_cfg.name)
    if data_cfg.get("classes") is not None:
        tag += "-c" + "_".join(str(int(c)) for c in data_cfg.classes)
    if data_cfg.get("attr"):
        tag += f"-{data_cfg.attr}"
    if data_cfg.name in ("npz", "image_folder") and data_cfg.get("path"):
        tag += f"-{Path(str(data_cfg.path)).stem}"
    if data_cfg.get("channels") is not None:
        tag += f"-ch{int(data_cfg.channels)}"
    return tag


def metrics_cache_dir(metrics_cfg) -> str:
    """Where evaluators and reference statistics are cached: ``metrics.cache_dir`` if set, else the cache root
    (``lsgan.io.cache_root``: ``$LSGAN_CACHE``, else ``~/.cache/lsgan``)."""
    folder = metrics_cfg.get("cache_dir")
    return str(folder) if folder else str(cache_root())


def evaluator_path(cfg, size: int, channels: int) -> str:
    """Where the evaluator for ``cfg``'s data lives (``metrics.evaluator`` or the cache)."""
    if cfg.metrics.get("evaluator"):
        return str(cfg.metrics.evaluator)
    if cfg.data.name == "stacked_mnist":  # each channel is an MNIST digit
        tag, channels = "mnist", 1
    else:
        tag = dataset_tag(cfg.data)
    return evaluator_cache_path(metrics_cache_dir(cfg.metrics), tag, size, channels)


class NearestCenterEvaluator:
    """The exact classifier of the 2-D toy mixtures: a point's class is its nearest mode centre
    (``lsgan.toys``, the centres the readers draw ring8 / grid25 points around, in their label order).
    Identifiers spell "center" (as ``toy_centers``); prose and the recorded ``arch`` value keep "centre"."""

    def __init__(self, name: str):
        self.centers = torch.as_tensor(toy_centers(name), dtype=torch.float32)
        self.meta = {"dataset": name, "arch": "nearest_centre", "n_classes": len(self.centers), "test_acc": None}

    def predict(self, points) -> torch.Tensor:
        return torch.cdist(torch.as_tensor(points).float().cpu(), self.centers).argmin(dim=1)

    def features(self, points, what: str = "features") -> torch.Tensor:
        return torch.as_tensor(points).float().cpu()  # instant: no progress lines to name


class StackedMNISTEvaluator:
    """Stacked MNIST through an MNIST evaluator, channel by channel: class 100·d0 + 10·d1 + d2."""

    def __init__(self, mnist):
        self.mnist = mnist
        self.meta = {**mnist.meta, "dataset": "stacked_mnist", "n_classes": 1000, "per_channel": "mnist"}

    def digits(self, images) -> torch.Tensor:
        x = torch.as_tensor(images)
        return torch.stack([self.mnist.predict(x[:, c:c + 1]) for c in range(3)], dim=1)

    def predict(self, images) -> torch.Tensor:
        d = self.digits(images)
        return d[:, 0] * 100 + d[:, 1] * 10 + d[:, 2]

    def features(self, images, what: str = "evaluator features") -> torch.Tensor:
        x = torch.as_tensor(images)
        return torch.cat([self.mnist.features(x[:, c:c + 1], what=f"{what}, channel {c}") for c in range(3)], dim=1)


class ClassSubsetEvaluator:
    """An evaluator read on some of its classes: class i here is the wrapped evaluator's class
    ``class_ids[i]`` (the argmax over those logits only), features unchanged. For a run on a subset
    of a dataset's classes (``data.classes=[0,4]``) judged by the evaluator of all of them, which can
    call a bad "0" an "8" where one trained on the subset can only say "0" or "4" (docs/nemgan.md)."""

    def __init__(self, evaluator, class_ids):
        self.evaluator = evaluator
        self.class_ids = [int(c) for c in class_ids]
        n = int(evaluator.meta["n_classes"])
        if not self.class_ids or not all(0 <= c < n for c in self.class_ids):
            raise ValueError(f"class_ids={self.class_ids}: need ids of the evaluator's classes 0..{n - 1}")
        self.meta = {**evaluator.meta, "n_classes": len(self.class_ids), "class_ids": self.class_ids}

    def predict(self, images) -> torch.Tensor:
        return self.evaluator.logits(images)[:, self.class_ids].argmax(dim=1)

    def features(self, images, what: str = "evaluator features") -> torch.Tensor:
        return self.evaluator.features(images, what=what)

    def fingerprint(self) -> str:
        """The wrapped weights' (the features, all a cache key covers, are theirs)."""
        return self.evaluator.fingerprint()


def resolve_evaluator(cfg, datamodule, device="cpu"):
    """(evaluator, None) or (None, reason) for the run's dataset."""
    name = cfg.data.name
    if name in TOY_DATASETS:
        return NearestCenterEvaluator(name), None
    shape = tuple(datamodule.image_shape)
    if len(shape) != 3:
        return None, f"dataset={name} has no image classifier (2-D data without known mode centres)"
    if datamodule.num_classes < 1 and name != "stacked_mnist":
        return None, f"dataset={name} has no labels (CelebA needs data.attr and its attribute file)"
    path = evaluator_path(cfg, shape[-1], shape[0])
    how = train_evaluator_command(cfg, shape[-1])
    if not os.path.isfile(os.path.expanduser(path)):
        return None, f"no evaluator classifier at {path}; train it with `{how}`"
    try:
        ev = load_evaluator(os.path.expanduser(path), device)
    except EvaluatorFileError as exc:
        return None, f"{exc}; retrain it with `{how} force=true`"
    if name == "stacked_mnist":
        return StackedMNISTEvaluator(ev), None
    if int(ev.meta["n_classes"]) != datamodule.num_classes:
        return None, (f"evaluator {path} has {ev.meta['n_classes']} classes, dataset has {datamodule.num_classes}; "
                      f"retrain with `{how} force=true`")
    return ev, None


def train_evaluator_command(cfg, size: int) -> str:
    """The command that trains the evaluator ``resolve_evaluator`` looks for."""
    args = [f"dataset={'mnist' if cfg.data.name == 'stacked_mnist' else cfg.data.name}"]
    if int(size) != 32:
        args.append(f"data.size={int(size)}")
    for key in ("classes", "attr", "path", "channels"):
        value = cfg.data.get(key)
        if value is not None and not (cfg.data.name == "stacked_mnist" and key == "channels"):
            args.append(f"data.{key}=" + (f"[{','.join(str(int(v)) for v in value)}]" if key == "classes" else str(value)))
    if cfg.data.get("root") not in (None, "data"):
        args.append(f"data.root={cfg.data.root}")
    if cfg.metrics.get("cache_dir"):
        args.append(f"metrics.cache_dir={cfg.metrics.cache_dir}")
    return "python -m lsgan.train_evaluator " + " ".join(args)


def evaluator_protocol(ev) -> Dict[str, object]:
    meta = ev.meta
    return {"evaluator": f"{meta.get('arch')}:{meta.get('dataset')}", "evaluator_test_acc": meta.get("test_acc")}


__all__ = ["ClassSubsetEvaluator", "DEFAULT_EPOCHS", "NearestCenterEvaluator", "StackedMNISTEvaluator", "dataset_tag",
           "evaluator_path", "evaluator_protocol", "metrics_cache_dir", "resolve_evaluator",
           "train_evaluator_command"]
