"""The small shared base every method builds on.

A method is a LightningModule with manual optimisation that owns its networks and two update
functions, ``d_step`` and ``g_step`` (mimicry style). The base owns what is common:

* the update schedule — D updated ``n_dis`` times per G update, or G ``n_gen`` times per D
  update (coupled's Algorithm 2: D only when ``i mod n == 0``);
* the iteration counter (independent of Lightning's ``global_step``, which counts every
  optimizer step and so depends on how many optimizers a method has);
* EMA of G, label stripping for unsupervised methods, and metric logging keyed by iteration;
* the checkpoint extras: the iteration and the RNG state (exact resume, :mod:`lsgan.rng_state`),
  checked by the divergence guard (:mod:`lsgan.divergence`) before anything is written;
* the generate-on-demand API: ``num_conditions``, ``sample(n, condition)``, ``condition_of(x)``.
"""
from __future__ import annotations

import contextlib
import functools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from lsgan import rng_state
from lsgan.data.batch import Batch
from lsgan.divergence import DivergenceError, DivergenceGuard  # noqa: F401  (DivergenceError: importable from here too)
from lsgan.errors import merge_node
from lsgan.generation import even_conditions
from lsgan.losses.gan import ADV_FORMS, gradient_penalty
from lsgan.methods.registry import METHODS
from lsgan.nets.compile import compile_trained_nets
from lsgan.nets.ema import EMA, ema_decay_at
from lsgan.upgrade import upgrade_saved_config


def inference(fn):
    """Decorate a method's generate / encode call: it runs without autograd and with every net in
    eval mode (BatchNorm running statistics, no spectral-norm power iteration, no dropout),
    whatever mode the caller left the module in, and each submodule's own mode is restored after.
    So a sample does not depend on the batch it is drawn with, and an evaluation during training
    neither updates BN statistics nor advances spectral-norm vectors (exact resume holds)."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        modes = [(m, m.training) for m in self.modules()]
        for m, _ in modes:
            m.training = False
        try:
            with torch.no_grad():
                return fn(self, *args, **kwargs)
        finally:
            for m, mode in modes:
                m.training = mode

    return wrapper


@dataclass
class MethodConfig:
    """Fields every method shares; methods subclass this with their own."""

    name: str = "sngan"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: List[float] = field(default_factory=lambda: [0.0, 0.9])
    n_dis: int = 1   # D updates per G update
    n_gen: int = 1   # G updates per D update (coupled, Algorithm 2: D only when i mod n == 0)
    ema_decay: Optional[float] = None  # EMA of G (parameters averaged, buffers copied); None = off
    ema_start: int = 1000              # iterations G is copied (not averaged) before the EMA warms up
    adv_loss: str = "hinge"            # adversarial form (ADV_FORMS); each method sets its default and lists what it accepts


@dataclass
class DataInfo:
    """What a method needs to know about its data to build its networks."""

    shape: Sequence[int]          # (C, H, W) or (2,) for points
    num_classes: int = 0          # from labels; only label-using methods may depend on it
    class_names: List[str] = field(default_factory=list)
    name: str = "digits"
    fingerprint: Optional[str] = None  # of the training examples (lsgan.data.datasets.fingerprint); None: not known


class GANMethod(pl.LightningModule):
    Config = MethodConfig
    LOSSES: Sequence[str] = ("full",)          # loss=: the objective / ablations the method accepts (full first)
    ADV_LOSSES: Sequence[str] = ADV_FORMS      # method.adv_loss: the adversarial forms it can use
    uses_labels = False  # True only for label-using baselines (cgan); others never see y
    # g_step builds its graph with every other optimizer's parameters frozen (D's, mostly), so
    # backward computes no weight gradients that would be thrown away. A method whose g_step
    # also updates another optimizer (slcgan's C) sets this False and manages freezing itself.
    freeze_others_in_g_step = True
    # Optional hooks the sampler, the metric suite and the report read, declared here with their defaults;
    # a method that has one overrides it (a class attribute, or a method for the two callables).
    accepts_exemplars = False  # sample(n, condition=images) generates "more like these" real images (coupled)
    # x -> B×d: the method's own feature space (slcgan: C's penultimate features); None: the suite's k-NN /
    # linear-probe metrics use condition_of(x) when that returns feature vectors
    features_of: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    # x -> B×d that the "cluster" metric also runs k-means on (clustergan: [ẑ_n, softmax(ẑ_c)]); None: not reported
    cluster_features: Optional[Callable[[torch.Tensor], torch.Tensor]] = None

    def __init__(self, cfg: DictConfig, data_info: DataInfo):
        super().__init__()
        if isinstance(data_info, dict):  # Lightning's load_from_checkpoint passes the saved hyperparameters
            data_info = DataInfo(**data_info)
        self.automatic_optimization = False
        container = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
        # a config saved by an earlier version (Lightning's load_from_checkpoint) in today's spelling
        container = upgrade_saved_config(container)
        self.save_hyperparameters({"cfg": container, "data_info": data_info.__dict__})
        self.cfg = OmegaConf.create(container)
        # Method keys added after a checkpoint was written take their schema defaults (each new
        # option's default is the behaviour the checkpoint was trained with).
        self.cfg.method = OmegaConf.create(OmegaConf.to_container(merge_node(self.Config, self.cfg.method, "method")))
        self.mcfg = self.cfg.method
        self.data_info = data_info
        self.iteration = 0
        self._pending_rng = None
        self._log_sums: Dict[str, float] = defaultdict(float)
        self._log_counts: Dict[str, int] = defaultdict(int)
        self.divergence_guard = DivergenceGuard()
        self.build()
        # NHWC for image nets: the same convolutions, on oneDNN's / cuDNN's faster layout. Set
        # before the optimizers exist, so their state takes the parameters' layout.
        self.channels_last = bool(self.cfg.get("trainer", {}).get("channels_last", False)) and len(data_info.shape) == 3
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        self.g_ema = None
        if self.mcfg.ema_decay is not None:
            self.g_ema = EMA(self.G)
        # Fixed noise for sample grids, from its own torch.Generator so grids never touch the
        # global RNG (that would break exact resume).
        gen = torch.Generator().manual_seed(int(self.cfg.get("seed", 0)) + 12345)
        self.register_buffer("fixed_z", torch.randn(self.grid_size(), self.latent_dim, generator=gen), persistent=False)

    def configure_model(self) -> None:
        """Lightning's model hook (before the optimizers and the device move): ``trainer.compile``
        (``lsgan.nets.compile.compile_trained_nets``)."""
        compile_trained_nets(self, self.cfg.get("trainer", {}))

    # ------------------------------------------------------------------ to override
    @classmethod
    def check_config(cls, cfg: DictConfig) -> None:
        """Raise ConfigError for method-specific inconsistencies (after schema validation)."""

    def build(self) -> None:
        """Create self.G, self.D (and any other nets)."""
        raise NotImplementedError

    @property
    def latent_dim(self) -> int:
        return int(self.mcfg.z_dim)

    def optimizer_groups(self) -> Dict[str, Dict]:
        """name -> {params, lr, betas}; the order is the order of self.optimizers()."""
        betas = tuple(self.mcfg.betas)
        return {
            "d": dict(params=self.D.parameters(), lr=self.mcfg.lr_d, betas=betas),
            "g": dict(params=self.G.parameters(), lr=self.mcfg.lr_g, betas=betas),
        }

    def d_step(self, batch: Batch) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    def g_step(self, batch: Batch) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    # generate-on-demand API ------------------------------------------------------
    @property
    def num_conditions(self) -> int:
        """How many discrete conditions the method can generate from (0 = none)."""
        return 0

    def sample(self, n: int, condition=None, use_ema: bool = True) -> torch.Tensor:
        """n images in [-1, 1] (given condition, or all conditions evenly). Implementations are
        decorated with :func:`inference` (eval mode, no autograd), as are ``sample_from_noise``,
        ``condition_of`` and every other generate / encode call."""
        raise NotImplementedError

    def condition_of(self, x: torch.Tensor) -> torch.Tensor:
        """The condition that generates more images like x."""
        raise NotImplementedError(f"method={self.mcfg.name} is unconditional: it has no condition_of")

    @inference
    def sample_like(self, images: torch.Tensor, n: int, use_ema: bool = True) -> torch.Tensor:
        """``n`` images like each of ``images`` (B×C×H×W in [-1, 1], shaped as the training data):
        B×n×C×H×W. A method that conditions on exemplars (coupled) generates from each image's features;
        a clustering method draws from the condition ``condition_of`` finds for the image."""
        x = images.to(self.device).float()
        if tuple(x.shape[1:]) != tuple(self.data_info.shape):
            raise ValueError(f"images: the model takes {tuple(self.data_info.shape)} images, got {tuple(x.shape[1:])}")
        if self.accepts_exemplars:
            condition = x  # each image's features, n times in a block
        else:
            condition = self.condition_of(x).repeat_interleave(n, dim=0)  # raises for unconditional methods
        out = self.sample(len(x) * n, condition=condition, use_ema=use_ema)
        return out.reshape(len(x), n, *out.shape[1:])

    # ------------------------------------------------------------------ shared machinery
    def condition_ids(self, n: int, condition, kind: str = "condition") -> torch.Tensor:
        """n discrete condition ids: all conditions evenly (None), one id for all, or n ids."""
        if condition is None:
            return even_conditions(n, self.num_conditions, device=self.device)
        ids = torch.as_tensor(condition, device=self.device).long().reshape(-1)
        if ((ids < 0) | (ids >= self.num_conditions)).any():
            raise ValueError(f"condition: {kind} ids must be in 0..{self.num_conditions - 1}")
        if ids.numel() not in (1, n):
            raise ValueError(f"condition: give one {kind} id or {n}, got {ids.numel()}")
        return ids.expand(n) if ids.numel() == 1 else ids

    @property
    def generator(self):
        """The generator used for sampling: the EMA copy when there is one."""
        return self.g_ema.module if self.g_ema is not None else self.G

    def grid_size(self) -> int:
        return 64

    def grid_conditions(self):
        """Conditions shown one per row in sample grids (None = unconditional grid)."""
        k = self.num_conditions
        return list(range(min(k, 20))) if k else None

    def configure_optimizers(self):
        self._opt_names = list(self.optimizer_groups())
        return [torch.optim.Adam(g.pop("params"), **g) for g in self.optimizer_groups().values()]

    def opt(self, name: str):
        return self.optimizers()[self._opt_names.index(name)]

    def adversarial_d_step(self, real: torch.Tensor, fake: torch.Tensor, d_real: torch.Tensor, d_fake: torch.Tensor,
                           terms: Optional[Dict[str, torch.Tensor]] = None,
                           real_weight: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """D's update for a method with one adversarial D (sngan / cgan, nemgan, clustergan): the adversarial
        loss of ``self.d_loss_fn`` (``ADVERSARIAL[method.adv_loss][0]``, set in ``build``) on D's scores
        of the real and (detached) fake batch, plus the method's own D terms (``terms``: log name -> value,
        added in order), plus λ·GP (``method.gp_weight``, the penalty on D itself, unconditional) when
        ``method.adv_loss=wgan_gp``; steps D's optimizer and returns the log row
        {loss_d, d_real, d_fake, *terms, gp}. ``real_weight``: per-sample weights of D's real term
        (nemgan's ``stratify_modes=balanced``)."""
        loss = self.d_loss_fn(d_real, d_fake, None, real_weight)
        logs = {"d_real": d_real.mean().detach(), "d_fake": d_fake.mean().detach()}
        for name, term in (terms or {}).items():
            loss = loss + term
            logs[name] = term.detach()
        if self.mcfg.adv_loss == "wgan_gp":
            gp = gradient_penalty(self.D, real, fake)
            loss = loss + self.mcfg.gp_weight * gp
            logs["gp"] = gp.detach()
        self.step_opt("d", loss)
        return {"loss_d": loss.detach(), **logs}

    def step_opt(self, name: str, loss: torch.Tensor) -> None:
        """zero_grad → backward → step for one named optimizer (only its params get grads)."""
        opt = self.opt(name)
        self.toggle_optimizer(opt)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        clip = self.cfg.trainer.get("gradient_clip_val")
        if clip is not None:  # Lightning clips only under automatic optimisation; this is its manual form
            self.clip_gradients(opt, gradient_clip_val=float(clip), gradient_clip_algorithm="norm")
        opt.step()
        self.untoggle_optimizer(opt)

    @contextlib.contextmanager
    def frozen_except(self, name: str):
        """Parameters of every optimizer but ``name`` have requires_grad=False inside the block.

        Unlike step_opt's toggle, this is in force while the graph is *built*, which is what
        decides which gradients backward computes. It saves and restores its own state, so
        step_opt's Lightning toggle can nest inside it.
        """
        keep = {id(p) for g in self.opt(name).optimizer.param_groups for p in g["params"]}
        frozen = [p for opt in self.optimizers() for g in opt.optimizer.param_groups for p in g["params"]
                  if id(p) not in keep and p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in frozen:
                p.requires_grad_(True)

    def draw_z(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=self.device)

    def d_steps_now(self) -> bool:
        """Whether this iteration has a D update (every ``n_gen``-th iteration)."""
        return self.iteration % self.mcfg.n_gen == 0

    def g_steps_now(self) -> bool:
        """Whether this iteration has a G update (every ``n_dis``-th iteration, after D's)."""
        return self.iteration % self.mcfg.n_dis == 0

    def training_step(self, batch: Batch, batch_idx: int):
        if self._pending_rng is not None:  # exact resume: restore RNG right before the next step
            rng_state.restore(self._pending_rng)
            self._pending_rng = None
        if not self.uses_labels:
            batch = batch.unlabeled()
        if self.channels_last:
            batch = batch.channels_last()
        i = self.iteration
        logs: Dict[str, torch.Tensor] = {}
        if self.d_steps_now():
            logs.update(self.d_step(batch))
        if self.g_steps_now():
            with self.frozen_except("g") if self.freeze_others_in_g_step else contextlib.nullcontext():
                logs.update(self.g_step(batch))
            if self.g_ema is not None:
                self.g_ema.update(self.G, ema_decay_at(i, int(self.mcfg.ema_start), float(self.mcfg.ema_decay)))
        # each loss once as a float scalar on the device, for the guard and the log row alike
        logs = {k: torch.as_tensor(v, device=self.device).detach().float().mean() for k, v in logs.items()}
        self.divergence_guard.watch(i, logs)
        self.iteration = i + 1
        self._record(logs)

    def _record(self, logs: Dict[str, torch.Tensor]) -> None:
        for k, v in logs.items():
            self._log_sums[k] = self._log_sums[k] + v
            self._log_counts[k] += 1
        every = max(1, int(self.cfg.trainer.log_every))
        if self.iteration % every == 0 or self.iteration == int(self.cfg.trainer.steps):
            self.divergence_guard.check()
            keys = list(self._log_sums)
            values = torch.stack([self._log_sums[k] / self._log_counts[k] for k in keys]).tolist() if keys else []
            row = dict(zip(keys, values))
            self._log_sums.clear()
            self._log_counts.clear()
            self.log_metrics(row)
            if row:  # the progress bar shows the latest row
                self.log_dict(row, prog_bar=True, logger=False, on_step=True, batch_size=1)

    def on_train_end(self) -> None:
        self.divergence_guard.check()

    def log_metrics(self, metrics: Dict[str, float], step: Optional[int] = None) -> None:
        """Log a row keyed by training iteration to every configured logger (rank 0)."""
        if self.trainer is None or not self.trainer.is_global_zero:
            return
        step = self.iteration if step is None else step
        for logger in self.loggers:
            logger.log_metrics(dict(metrics), step=step)

    # checkpoint extras: iteration and RNG (Lightning restores nets, optimizers, loops)
    def on_save_checkpoint(self, checkpoint):
        self.divergence_guard.check()  # a non-finite loss since the last check stops here, before anything is written
        checkpoint["lsgan"] = {"iteration": self.iteration, "rng": rng_state.capture()}
        if self._trainer is not None:  # what trainer.precision=auto became on this machine
            checkpoint["lsgan"]["precision"] = str(self.trainer.precision)

    def on_load_checkpoint(self, checkpoint):
        extra = checkpoint.get("lsgan", {})
        self.iteration = int(extra.get("iteration", 0))
        self._pending_rng = extra.get("rng")

    @inference
    def sample_grid(self) -> torch.Tensor:
        """Images for the sample grid: one row per condition where there are conditions."""
        conds = self.grid_conditions()
        if conds is None:
            return self.sample_from_noise(self.fixed_z)
        per_row = 10
        rows = [self.sample_from_noise(self.fixed_z[:per_row], condition=c) for c in conds]
        return torch.cat(rows)

    def sample_from_noise(self, z: torch.Tensor, condition=None) -> torch.Tensor:
        """Samples of ``condition`` from standard-normal noise z (B×latent_dim), which each method maps into its
        own latent (the fixed noise of the sample grids: the same z down each column)."""
        raise NotImplementedError
