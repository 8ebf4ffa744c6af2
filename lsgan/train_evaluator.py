"""Train and cache a dataset's evaluator classifier: ``python -m lsgan.train_evaluator dataset=D [data.root=...]``.

The evaluator reads generated images for the conditional metrics (accuracy, variety, classifier
FID, stacked-MNIST modes); it is never used in training. It is trained on the training split
with clean labels at the resolution and channels the GANs see (``data.size``, ``data.channels``,
``data.classes`` apply; ``data.max_train``, ``label_noise`` and ``class_ratio`` do not), tested on
the test split, and cached at ``<cache>/evaluators/<dataset>_<size>_<channels>.pt`` (``<cache>``:
``metrics.cache_dir``, else ``$LSGAN_CACHE``, else ``~/.cache/lsgan``; or ``metrics.evaluator=PATH``). A cached evaluator is reused unless ``force=true``.

Other arguments: ``metrics.evaluator_epochs=E`` (default per dataset), ``metrics.evaluator_arch`` /
``metrics.evaluator_width`` (the net; smaller trains faster on CPU), ``device=auto|cpu|cuda``,
``batch_size=128``, ``lr=0.002``, ``max_steps=N`` (tests), ``seed`` (the config's). Any other
``key=value`` is a config override (``dataset=``, ``data.*``, ``metrics.*``), composed as ``lsgan.run``
composes it. Arguments use Hydra's override grammar (``lsgan.cli``); ``--help`` lists the keys, ``-m``
sweeps (``-m dataset=mnist,fashion_mnist data.root=../shared/data``: one evaluator per dataset).
"""
from __future__ import annotations

import os
import time
from typing import Dict, List, Optional, Sequence

from omegaconf import OmegaConf

from lsgan.cli import CLIError, Command, Key, check_bool, check_int, run, run_cli
from lsgan.loading import resolve_device
from lsgan.toys import TOY_DATASETS

COMMAND = Command(
    prog="lsgan.train_evaluator",
    summary="Train and cache a dataset's evaluator classifier (read by the conditional metrics, never by "
            "training), at <cache>/evaluators/<dataset>_<size>_<channels>.pt (<cache>: metrics.cache_dir, else "
            "$LSGAN_CACHE, else ~/.cache/lsgan); prints its test "
            "accuracy, the cache path and the time. A cached evaluator is reused unless force=true.",
    keys={
        "force": Key(False, "retrain even when the cache holds this evaluator"),
        "device": Key("auto", "auto | cpu | cuda (auto: the GPU when there is one)"),
        "batch_size": Key(128, "training batch size"),
        "lr": Key(2e-3, "learning rate (Adam)"),
        "max_steps": Key(None, "stop after this many optimizer steps (tests); null: metrics.evaluator_epochs"),
    },
    overrides="composed from conf/ as python -m lsgan.run composes it, config groups included",
    override_examples="dataset=mnist data.root=../shared/data data.size=28 metrics.evaluator_epochs=2",
    examples=["python -m lsgan.train_evaluator dataset=mnist data.root=../shared/data",
              "python -m lsgan.train_evaluator -m dataset=mnist,fashion_mnist data.root=../shared/data"],
    dotted_overrides=False,
)


def evaluator_data_cfg(cfg):
    """The data node the evaluator trains on: the run's, minus training-only corruptions."""
    data = OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))
    data.class_ratio = None
    data.label_noise = 0.0
    data.max_train = None
    if data.name == "stacked_mnist":  # classify each channel with an MNIST digit classifier
        data.name = "mnist"
        data.channels = None
    return data


def train_and_cache(cfg, force: bool = False, device: str = "auto", batch_size: int = 128, lr: float = 2e-3,
                    max_steps: Optional[int] = None, log=print) -> Dict[str, object]:
    """Train (or reuse) the evaluator for ``cfg``'s dataset. Returns {"path", "cached", "test_acc", "seconds", "meta"}."""
    from lsgan.data.datasets import load_dataset
    from lsgan.metrics.evaluator import EvaluatorFileError, fit_evaluator, load_evaluator, save_evaluator
    from lsgan.metrics.resolve import DEFAULT_EPOCHS, evaluator_path

    if cfg.data.name in TOY_DATASETS:
        raise CLIError(f"dataset={cfg.data.name}: 2-D toy data needs no trained evaluator "
                       f"(points are classified by their nearest mode centre)")
    data = evaluator_data_cfg(cfg)
    seed = int(cfg.get("seed", 0))
    start = time.time()
    train = load_dataset(data, "train", seed, train=False)
    if not train.is_image:
        raise CLIError(f"dataset={cfg.data.name}: not an image dataset, nothing to classify")
    if train.clean_labels is None:
        raise CLIError(f"dataset={cfg.data.name} has no labels to train an evaluator on"
                       + (" (CelebA: set data.attr and provide the attribute file)" if "celeba" in data.name else ""))
    path = os.path.expanduser(evaluator_path(cfg, int(train.data.shape[-1]), int(train.data.shape[1])))
    if os.path.isfile(path) and not force:
        try:
            ev = load_evaluator(path)
        except EvaluatorFileError as exc:  # a cache entry cut short (a killed copy, a full disk): rebuilt
            log(f"[lsgan] {exc}; training it again")
        else:
            log(f"[lsgan] evaluator cache hit: {path} (test accuracy {ev.meta.get('test_acc')}); force=true retrains")
            return {"path": path, "cached": True, "test_acc": ev.meta.get("test_acc"), "seconds": time.time() - start,
                    "meta": ev.meta}
    test = load_dataset(data, "test", seed, train=False)
    epochs = cfg.metrics.get("evaluator_epochs")
    epochs = float(epochs) if epochs is not None else float(DEFAULT_EPOCHS.get(data.name, 10))
    dev = resolve_device(device)
    log(f"[lsgan] training the {data.name} evaluator: {len(train)} train / {len(test)} test images, "
        f"{tuple(train.data.shape[1:])}, {epochs:g} epochs on {dev}")
    arch = cfg.metrics.get("evaluator_arch")  # checked by config.validate
    ev = fit_evaluator(train.data, train.clean_labels, test.data, test.clean_labels, dataset=data.name,
                       n_classes=train.num_classes, arch=arch, width=cfg.metrics.get("evaluator_width"),
                       epochs=epochs, batch_size=batch_size, lr=lr,
                       max_steps=max_steps, seed=seed, device=dev, log=log)
    ev.meta["classes"] = None if data.get("classes") is None else [int(c) for c in data.classes]
    save_evaluator(ev.to("cpu"), path)
    seconds = time.time() - start
    return {"path": path, "cached": False, "test_acc": ev.meta.get("test_acc"), "seconds": seconds, "meta": ev.meta}


def main(argv: Optional[Sequence[str]] = None):
    """The command line (``argv`` default: ``sys.argv[1:]``): the dict of :func:`train_and_cache`;
    with ``-m`` a list of them, one per job; with ``--help`` None."""
    return run(COMMAND, _job, argv)


def _job(own: Dict[str, object], overrides: List[str]) -> Dict[str, object]:
    from lsgan.config import validate
    from lsgan.compose import compose_config, precheck_overrides

    check_bool(own, "force")
    check_int(own, "batch_size", 1)
    check_int(own, "max_steps", 1, optional=True)
    if isinstance(own["lr"], bool) or not isinstance(own["lr"], (int, float)) or own["lr"] <= 0:
        raise CLIError(f"lr={own['lr']}: must be a positive number")
    precheck_overrides(overrides)
    cfg = validate(compose_config(overrides))
    out = train_and_cache(cfg, own["force"], own["device"], own["batch_size"], float(own["lr"]), own["max_steps"])
    acc = out["test_acc"]
    print(f"[lsgan] evaluator {'(cached) ' if out['cached'] else ''}for {cfg.data.name}\n"
          f"  test accuracy: {'n/a' if acc is None else f'{100 * acc:.2f} %'}\n"
          f"  cache path:    {out['path']}\n"
          f"  time:          {out['seconds']:.1f} s", flush=True)
    return out


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
