"""Structured configs: the typed schema behind every YAML file in ``conf/``.

Hydra composes the YAML; ``validate`` then merges each node onto its dataclass so that a
wrong type, an unknown key or an unknown choice fails at once with one line naming the
field and what it accepts. Method-specific nodes are validated against the schema the
method registers (``lsgan.methods.METHODS[name].Config``).

This module is the top of the configuration layer: it imports the registries and schemas it ties
together from their owners (``DATASETS`` from the data readers, ``ARCHS`` from ``lsgan.nets``,
``ADV_FORMS`` from the adversarial losses, ``MethodConfig`` from ``lsgan.methods.base``, ``upgrade_saved_config`` from
``lsgan.upgrade``, ``PriorConfig``, ``ExtractorConfig``). Nothing in the package below the
entry points imports it: errors and the node helpers (``ConfigError``, ``check_choice``,
``merge_node``) live in ``lsgan.errors``; they are re-exported here for callers that used them from here.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import DictConfig, OmegaConf

from lsgan.data.datasets import DATASETS
from lsgan.errors import ConfigError, check_choice, merge_node
from lsgan.features.extractors import ExtractorConfig
from lsgan.losses.gan import ADV_FORMS
from lsgan.methods import METHODS
from lsgan.methods.base import MethodConfig
from lsgan.upgrade import COUPLED_G_LOSS, upgrade_saved_config
from lsgan.metrics.evaluator import EVALUATOR_ARCHS
from lsgan.nets import ARCHS
from lsgan.nets.layers import IMAGE_SIZES
from lsgan.priors import PRIORS, PriorConfig


# --------------------------------------------------------------------------- data
@dataclass
class DataConfig:
    name: str = "digits"
    root: str = "data"               # where files are read from / downloaded to
    download: bool = False           # allow torchvision downloads (needs internet)
    size: int = 32                   # output resolution (images are resized to size×size)
    channels: Optional[int] = None   # force 1 or 3 channels; None keeps the dataset's own
    batch_size: int = 64
    num_workers: int = 0
    classes: Optional[List[int]] = None      # keep only these classes (relabelled 0..k-1)
    class_ratio: Optional[List[float]] = None  # imbalance over `classes`, sums to 1
    label_noise: float = 0.0         # fraction of training labels flipped to another class
    max_train: Optional[int] = None  # cap on training examples (after subsetting)
    path: Optional[str] = None       # npz file or image folder (npz / image_folder datasets)
    n_points: int = 50000            # 2-D toy datasets: number of points
    std: float = 0.02                # 2-D toy datasets: std of each mode
    attr: Optional[str] = None       # CelebA: attribute defining evaluation classes
    train_split: str = "train"
    eval_split: str = "test"


# --------------------------------------------------------------------------- nets
@dataclass
class ModelConfig:
    arch: str = "dcgan"
    g_width: int = 64
    d_width: int = 64
    mlp_width: int = 256       # hidden width of the MLP nets (2-D data, small heads)
    mlp_depth: int = 3
    spectral_norm: bool = True  # on D (SNGAN)
    g_batchnorm: bool = True


# --------------------------------------------------------------------------- loss
# Two axes, the same for every method: ``loss=`` (this node) names the objective / ablation (every method
# accepts ``full``, its whole objective; coupled, nemgan and slcgan list their ablations in ``LOSSES``), and
# ``method.adv_loss`` the adversarial form (each method lists the forms it can use in ``ADV_LOSSES``, a
# subset of ADV_FORMS, defined beside the adversarial losses in lsgan.losses.gan); ``method.gp_weight`` is
# wgan_gp's λ, a key of the methods that accept wgan_gp.


@dataclass
class LossConfig:
    name: str = "full"      # the objective / ablation: full (every method) or one of the method's ablations


# --------------------------------------------------------------------------- methods
# MethodConfig (the fields every method shares) lives with GANMethod in lsgan.methods.base; each method's
# Config subclasses it there.


# --------------------------------------------------------------------------- trainer
@dataclass
class TrainerConfig:
    steps: int = 600           # training iterations (one batch each)
    max_minutes: Optional[float] = None  # also stop after this much training wall time, counted across resumes (None = no limit)
    accelerator: str = "auto"  # cpu | gpu | auto
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"     # auto | ddp
    precision: str = "32-true"  # 32-true | bf16-mixed | 16-mixed | auto (bf16-mixed where bf16 is native, else 32-true)
    gradient_clip_val: Optional[float] = None  # clip each network's gradient norm to this before its step (None = off)
    ckpt_monitor: Optional[str] = None  # a metrics.names value (e.g. classifier_fid): keep checkpoints/best.ckpt
    ckpt_mode: str = "auto"    # auto (min for fid / kid, else max) | min | max
    ckpt_every: int = 200      # keep a numbered checkpoint every N iterations (0 = only last)
    keep_checkpoints: Optional[int] = 5  # the newest N numbered checkpoints kept (last / best always); None = all
    sample_every: int = 200    # sample grid every N iterations (0 = only at the end)
    log_every: int = 20        # metrics CSV row every N iterations
    progress_bar: bool = True
    sync_batchnorm: bool = False
    deterministic: bool = False
    channels_last: bool = True  # image nets and batches in NHWC memory layout (oneDNN / cuDNN's fast path; same maths)
    compile: bool = False      # torch.compile every trained net in place (state_dict keys unchanged); not with wgan_gp
    compile_backend: str = "inductor"  # a torch._dynamo backend (inductor; aot_eager to debug)
    compile_mode: Optional[str] = None  # inductor mode: default | reduce-overhead | max-autotune | max-autotune-no-cudagraphs


PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true", "auto")
PRECISION_ALIASES = {"32": "32-true", "64": "64-true", "16": "16-mixed", "bf16": "bf16-mixed"}
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
LOGGERS = ("csv", "wandb", "tensorboard")  # metrics.csv is written with every choice


@dataclass
class LoggerConfig:
    name: str = "csv"
    project: str = "lsgan"
    entity: Optional[str] = None
    mode: Optional[str] = None   # wandb mode: online | offline | disabled (None: WANDB_MODE)
    group: Optional[str] = None  # default: built from the Hydra choices
    tags: List[str] = field(default_factory=list)


@dataclass
class MetricsConfig:
    every: int = 0               # run metrics during training every N iterations (0 = off)
    names: List[str] = field(default_factory=list)
    n_samples: int = 2000        # generated samples per metric evaluation
    inception_weights: Optional[str] = None  # path to FID InceptionV3 TorchScript weights
    inception_precision: str = "auto"  # FID InceptionV3 pass: auto | 32 | bf16 (auto: bf16 where native)
    cache_dir: Optional[str] = None  # reference statistics and evaluators; None = lsgan.io.cache_root() ($LSGAN_CACHE or ~/.cache/lsgan)
    batch_size: int = 100        # images per forward pass of a feature extractor
    ref_split: str = "test"      # real split that FID/KID/PRDC compare against
    ref_n: int = 10000           # real images in the reference set (capped at the split's size)
    kid_subsets: int = 100       # KID: number of random subsets averaged
    kid_subset_size: int = 1000  # KID: samples per subset (must be <= n_samples and ref_n)
    prdc_k: int = 3              # k of the k-NN balls in precision/recall (Kynkäänniemi: 3; Naeem D/C: 5)
    knn_ks: List[int] = field(default_factory=lambda: [1, 2, 5])  # k's of knn_label_agreement
    evaluator: Optional[str] = None  # evaluator .pt; None = <cache_dir>/evaluators/<dataset>_<size>_<channels>.pt
    evaluator_epochs: Optional[float] = None  # train_evaluator epochs; None = the dataset's default
    evaluator_arch: Optional[str] = None      # lenet | resnet; None = lenet for 1 channel, resnet for 3
    evaluator_width: Optional[int] = None     # base channel width; None = the arch's (lenet 32, resnet 64)
    modes_n: Optional[int] = None    # samples for mode counting; None = 26000 stacked MNIST, 2500 ring8/grid25
    like_exemplars: int = 100        # like: evaluation-split exemplars (n // like_exemplars samples like each)
    like_features: str = "inception"  # like: inception | evaluator (the classifier's penultimate features; faster on a CPU)
    seed: int = 0                    # seeds sampling and subsets inside a metric evaluation (global RNG untouched)


# --------------------------------------------------------------------------- settings renamed when loss= and method.adv_loss were split
# Before, ``loss=`` named the adversarial form for sngan / cgan / clustergan (hinge | ns | minimax | wgan_gp,
# with ``loss.gp_weight``) but the ablation for coupled / nemgan / slcgan, whose form was ``method.adv_loss``
# (nemgan), ``method.g_loss`` (coupled: ns | saturating, BCE on pairs) or fixed (slcgan: hinge). The old
# spellings on a command line fail with the line below saying what to write; configs saved by old runs
# (checkpoints, config.yaml) are rewritten by ``upgrade_saved_config``.
# COUPLED_G_LOSS (old method.g_loss -> method.adv_loss) and upgrade_saved_config live in lsgan.upgrade.


def moved_loss_error(value: str, method: str, accepted, adv_accepted=None) -> ConfigError:
    """``loss=<an adversarial form>``: where that setting is now (and, when ``method`` cannot use that form,
    the forms it accepts)."""
    refused = (f", which method={method} does not accept (accepted: {', '.join(adv_accepted)})"
               if adv_accepted is not None and value not in adv_accepted else "")
    return ConfigError(f"loss={value}: loss= names the objective/ablation (accepted for method={method}: "
                       f"{', '.join(accepted)}); the adversarial form is method.adv_loss={value}{refused}")


def moved_key_error(key: str, value=None) -> Optional[ConfigError]:
    """A key that moved (``loss.gp_weight``, coupled's ``method.g_loss``): one line saying what to write; None otherwise."""
    shown = "VALUE" if value is None else value
    if key == "loss.gp_weight":
        return ConfigError(f"loss.gp_weight={shown}: the gradient-penalty weight moved next to the adversarial "
                           f"form; write method.gp_weight={shown} (methods that accept method.adv_loss=wgan_gp)")
    if key == "method.g_loss":
        new = COUPLED_G_LOSS.get(str(value))
        write = f"write method.adv_loss={new}" if new else "accepted: method.adv_loss=ns | minimax"
        return ConfigError(f"method.g_loss={shown}: coupled's G-loss form is now method.adv_loss, as for every "
                           f"method (g_loss=ns is adv_loss=ns, g_loss=saturating is adv_loss=minimax); {write}")
    return None


def check_compile(cfg) -> None:
    """``trainer.compile``: a known backend and mode, and no double backward (aot_autograd has none)."""
    import torch._dynamo  # here, not at import: dynamo's import costs a second

    backend, mode = str(cfg.trainer.compile_backend), cfg.trainer.compile_mode
    check_choice("trainer.compile_backend", backend, sorted(torch._dynamo.list_backends(exclude_tags=())))
    if mode is not None:
        check_choice("trainer.compile_mode", str(mode), COMPILE_MODES)
        if backend != "inductor":
            raise ConfigError(f"trainer.compile_mode={mode} is an inductor mode; accepted values with "
                              f"trainer.compile_backend={backend}: null")
    if cfg.method.get("adv_loss") == "wgan_gp":  # the penalty is computed whatever its weight
        others = [f for f in METHODS[cfg.method.name].ADV_LOSSES if f != "wgan_gp"]
        raise ConfigError("trainer.compile=true: method.adv_loss=wgan_gp's gradient penalty needs a double backward, "
                          "which torch.compile does not support; accepted values: trainer.compile=false, or "
                          f"method.adv_loss={' | '.join(others) or '(none other for this method)'}")


def check_optimized_metric(cfg) -> None:
    """``optimized_metric`` names a number one of ``metrics.names`` reports (``cluster/acc``: the ``cluster``
    metric's ``acc``); one line naming what to set otherwise. Single-process only, as ``trainer.ckpt_monitor``."""
    from lsgan.metrics.suite import ALIASES, canonical_names  # here: the suite imports the data readers and nets

    name = cfg.get("optimized_metric")
    if name is None:
        return
    if not isinstance(name, str) or not name:
        raise ConfigError(f"optimized_metric={name!r}: must be a metric's name, e.g. cluster/acc, or null")
    names = canonical_names(list(cfg.metrics.names))
    base = name.split("/", 1)[0]
    base = ALIASES.get(base, base)
    if base not in names:
        raise ConfigError(f"optimized_metric={name}: metrics.names={names} does not compute it; add {base} to "
                          f"metrics.names (the value is the metric's own name or <metric>/<key>, e.g. cluster/acc)")
    if cfg.trainer.strategy == "ddp":
        raise ConfigError("optimized_metric is single-process only (metrics are computed on rank 0); "
                          "accepted with trainer.strategy: auto")


def _processes(trainer) -> int:
    """Training processes ``trainer.devices`` × ``num_nodes`` asks for (-1 / "auto": more than one where
    there are several GPUs)."""
    import torch

    devices = trainer.devices
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if devices in (-1, "auto"):
        count = torch.cuda.device_count() if str(trainer.accelerator) != "cpu" else 1
    elif isinstance(devices, int):
        count = devices
    elif isinstance(devices, str):  # "0,1": device indices
        count = len([d for d in devices.split(",") if d.strip()])
    else:
        count = len(list(devices))
    return int(count) * int(trainer.num_nodes)


def check_ranges(out: DictConfig) -> None:
    """Values whose type is right but which no run can use: one line naming the key and what it accepts,
    before anything is built (they would otherwise surface as a library's traceback, or be taken silently)."""
    if not 0 <= int(out.seed) < 2 ** 32:
        raise ConfigError(f"seed={out.seed}: must be an integer in [0, 2^32 - 1] (NumPy's seed range)")
    if int(out.data.size) < 1:
        raise ConfigError(f"data.size={out.data.size}: must be a positive image side (the conv nets take "
                          f"{', '.join(map(str, IMAGE_SIZES))}), or auto")
    if int(out.data.num_workers) < 0:
        raise ConfigError(f"data.num_workers={out.data.num_workers}: must be >= 0 (0 = load in the main process)")
    if out.data.max_train is not None and int(out.data.max_train) < 1:
        raise ConfigError(f"data.max_train={out.data.max_train}: must be >= 1, or null for the whole training split")
    for key, low, what in (("ckpt_every", 0, "0 = only last.ckpt"), ("sample_every", 0, "0 = only at the end"),
                           ("log_every", 1, "iterations between metrics.csv rows")):
        if int(out.trainer[key]) < low:
            raise ConfigError(f"trainer.{key}={out.trainer[key]}: must be >= {low} ({what})")
    if out.trainer.keep_checkpoints is not None and int(out.trainer.keep_checkpoints) < 1:
        raise ConfigError(f"trainer.keep_checkpoints={out.trainer.keep_checkpoints}: must be >= 1, or null to keep "
                          f"every numbered checkpoint")
    check_choice("trainer.accelerator", str(out.trainer.accelerator), ("cpu", "gpu", "cuda", "mps", "auto"))
    check_devices(out.trainer)


def check_devices(trainer) -> None:
    """``trainer.devices`` and ``trainer.num_nodes`` as Lightning's Trainer takes them, else one line (Lightning's
    own refusal is a traceback from inside the Trainer, after the run dir exists)."""
    devices = OmegaConf.to_container(trainer.devices) if OmegaConf.is_config(trainer.devices) else trainer.devices
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, str) and devices != "auto":  # "0,1": device indices
        parts = [d.strip() for d in devices.split(",") if d.strip()]
        devices = [int(d) if d.isdigit() else d for d in parts]
    is_int = isinstance(devices, int) and not isinstance(devices, bool)
    ok = (devices == "auto" or is_int and (devices >= 1 or devices == -1)
          or isinstance(devices, list) and devices and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                           for d in devices))
    if not ok:
        raise ConfigError(f"trainer.devices={trainer.devices}: accepted values: a count >= 1, -1 or auto (every "
                          f"device), or a list of device indices such as [0,1]")
    nodes = trainer.num_nodes
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise ConfigError(f"trainer.num_nodes={nodes}: must be an integer >= 1")


def check_device(cfg: DictConfig) -> None:
    """A GPU asked for where none is visible: one line before training starts (``validate`` accepts it, so
    a GPU recipe composes and validates on any machine)."""
    import torch

    accelerator = str(cfg.trainer.accelerator)
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accelerator}: no CUDA GPU is visible on this machine; "
                          f"accepted values here: cpu, auto")


def validate(cfg: DictConfig) -> DictConfig:
    """Type-check the composed config; returns a new config with schema defaults filled in and each
    ``auto`` of a generic recipe replaced by what the data calls for (``lsgan.data.profile``)."""
    from lsgan.data.profile import resolve_auto

    cfg = resolve_auto(cfg)
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    OmegaConf.set_struct(out, False)
    check_choice("method", cfg.method.name, sorted(METHODS))
    method_cls = METHODS[cfg.method.name]
    for node, key in (("loss", "gp_weight"), ("method", "g_loss")):  # moved keys: say where they are now
        if key in (cfg.get(node) or {}):
            raise moved_key_error(f"{node}.{key}", cfg[node][key])
    out.method = merge_node(method_cls.Config, cfg.method, "method")
    out.data = merge_node(DataConfig, cfg.data, "data")
    out.model = merge_node(ModelConfig, cfg.model, "model")
    out.loss = merge_node(LossConfig, cfg.loss, "loss")
    out.trainer = merge_node(TrainerConfig, cfg.trainer, "trainer")
    out.logger = merge_node(LoggerConfig, cfg.logger, "logger")
    out.metrics = merge_node(MetricsConfig, cfg.get("metrics", {}), "metrics")
    out.prior = merge_node(PriorConfig, cfg.get("prior", {"name": "none"}), "prior")
    check_choice("prior", out.prior.name, PRIORS)
    out.extractor = merge_node(ExtractorConfig, cfg.get("extractor", {}), "extractor")
    check_choice("dataset", out.data.name, DATASETS)
    check_choice("model.arch", out.model.arch, ARCHS)
    check_choice("logger", out.logger.name, LOGGERS)
    if out.loss.name not in method_cls.LOSSES and out.loss.name in ADV_FORMS:
        raise moved_loss_error(out.loss.name, cfg.method.name, method_cls.LOSSES, method_cls.ADV_LOSSES)
    if out.loss.name not in method_cls.LOSSES:
        raise ConfigError(f"loss={out.loss.name!r} is not accepted by method={cfg.method.name}; "
                          f"accepted values: {', '.join(method_cls.LOSSES)}")
    if out.method.adv_loss not in method_cls.ADV_LOSSES:
        raise ConfigError(f"method.adv_loss={out.method.adv_loss!r} is not accepted by method={cfg.method.name}; "
                          f"accepted values: {', '.join(method_cls.ADV_LOSSES)}")
    check_choice("metrics.like_features", out.metrics.like_features, ("inception", "evaluator"))
    check_choice("metrics.inception_precision", str(out.metrics.inception_precision), ("auto", "32", "bf16"))
    if int(out.metrics.like_exemplars) < 2:
        raise ConfigError(f"metrics.like_exemplars={out.metrics.like_exemplars}: must be >= 2 (chance pairs exemplars)")
    if out.metrics.evaluator_arch is not None:
        check_choice("metrics.evaluator_arch", out.metrics.evaluator_arch, EVALUATOR_ARCHS)
    # Lightning's short spellings mean what they mean there ("16" and "bf16" are mixed precision).
    out.trainer.precision = PRECISION_ALIASES.get(str(out.trainer.precision), str(out.trainer.precision))
    check_choice("trainer.precision", out.trainer.precision, PRECISIONS)
    if out.trainer.strategy == "ddp_spawn":
        raise ConfigError("trainer.strategy=ddp_spawn is not supported: spawned processes must pickle the method, and "
                          "spectral-norm parametrizations do not pickle; accepted values: auto, ddp (trainer=ddp)")
    check_choice("trainer.strategy", out.trainer.strategy, ("auto", "ddp"))
    if out.trainer.strategy == "auto" and _processes(out.trainer) > 1:
        # Lightning's own choice for several devices runs without find_unused_parameters, which a GAN's
        # partial backward passes need: take lsgan's DDP, as trainer=ddp does
        out.trainer.strategy = "ddp"
    if out.trainer.compile:
        check_compile(out)
    if out.logger.name == "tensorboard":
        if importlib.util.find_spec("tensorboard") is None and importlib.util.find_spec("tensorboardX") is None:
            raise ConfigError("logger=tensorboard needs TensorBoard: pip install '.[tensorboard]' "
                              "(or pip install tensorboard); accepted values without it: csv, wandb")
    check_ranges(out)
    if int(out.data.batch_size) < 1:
        raise ConfigError(f"data.batch_size={out.data.batch_size}: must be >= 1")
    if int(out.trainer.steps) < 1:
        raise ConfigError(f"trainer.steps={out.trainer.steps}: must be >= 1 (training iterations)")
    for key in [k for k in out.method if str(k).startswith("lr_")]:
        if out.method[key] is not None and float(out.method[key]) <= 0:  # None: the method falls back
            raise ConfigError(f"method.{key}={out.method[key]}: a learning rate must be > 0")
    if out.method.n_dis < 1 or out.method.n_gen < 1 or (out.method.n_dis > 1 and out.method.n_gen > 1):
        raise ConfigError("method.n_dis / method.n_gen: both must be >= 1 and at most one of them > 1")
    check_choice("trainer.ckpt_mode", out.trainer.ckpt_mode, ("auto", "min", "max"))
    if out.trainer.ckpt_monitor is not None:
        if int(out.metrics.every) <= 0 or not out.metrics.names:
            raise ConfigError(f"trainer.ckpt_monitor={out.trainer.ckpt_monitor} needs metrics during training: "
                              f"set metrics.every>0 and metrics.names=[...]")
        if out.trainer.strategy == "ddp":
            raise ConfigError("trainer.ckpt_monitor is single-process only (metrics are computed on rank 0); "
                              "accepted with trainer.strategy: auto")
    check_optimized_metric(out)
    if out.trainer.gradient_clip_val is not None and out.trainer.gradient_clip_val <= 0:
        raise ConfigError(f"trainer.gradient_clip_val={out.trainer.gradient_clip_val}: must be > 0, or null for no clipping")
    if out.trainer.max_minutes is not None and out.trainer.max_minutes <= 0:
        raise ConfigError(f"trainer.max_minutes={out.trainer.max_minutes}: must be > 0, or null for no limit")
    if out.data.label_noise < 0 or out.data.label_noise > 1:
        raise ConfigError(f"data.label_noise={out.data.label_noise}: must be in [0, 1]")
    if out.data.class_ratio is not None:
        if out.data.classes is None or len(out.data.class_ratio) != len(out.data.classes):
            raise ConfigError("data.class_ratio: needs data.classes of the same length")
        if abs(sum(out.data.class_ratio) - 1.0) > 1e-6:
            raise ConfigError(f"data.class_ratio={list(out.data.class_ratio)}: must sum to 1")
    method_cls.check_config(out)
    return out


__all__ = [
    "ADV_FORMS", "ARCHS", "COMPILE_MODES", "COUPLED_G_LOSS", "DATASETS", "LOGGERS", "PRECISIONS", "PRECISION_ALIASES",
    "ConfigError", "DataConfig", "ExtractorConfig", "LoggerConfig", "LossConfig", "MethodConfig", "MetricsConfig",
    "ModelConfig", "PriorConfig", "TrainerConfig", "check_choice", "check_compile", "check_optimized_metric",
    "merge_node", "moved_key_error", "moved_loss_error", "upgrade_saved_config", "validate",
]
