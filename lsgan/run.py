"""Train a method: ``python -m lsgan.run method=M dataset=D [loss=L] [method.adv_loss=F] [model=...] [trainer=...]``.

Hydra composes ``conf/``; ``lsgan.config.validate`` type-checks it; this module wires the data
module, the method, the loggers and the callbacks into a Lightning Trainer. Re-running the same
command (same run directory) resumes from its ``checkpoints/last.ckpt``.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from lsgan.compose import (CONF_DIR, GROUPS, KEY_HINTS, PATH_KEYS, check_renamed_overrides, compose_config,  # noqa: F401
                           group_choices, precheck_overrides, quote_path_override, run_dir_name, run_name)
from lsgan.errors import ConfigError, NoSpaceError, job_error


@dataclass
class RunResult:
    run_dir: Path
    checkpoint: Path
    samples: Path
    metrics_csv: Path
    iteration: int
    # the numbers of the run's latest evaluation (metrics.names), e.g. {"cluster/acc": 0.97}; empty without one
    metrics: Dict[str, float] = field(default_factory=dict)
    optimized: Optional[float] = None  # metrics[optimized_metric], what a Hydra sweeper (hparams_search) optimizes


def build_datamodule(cfg: DictConfig):
    """The training data module (``lsgan.data.datamodule.datamodule_of``, the batch size checked)."""
    from lsgan.data.datamodule import datamodule_of

    return datamodule_of(cfg, check_batch_size=True)


def build_method(cfg: DictConfig, dm):
    from lsgan.methods import METHODS
    from lsgan.methods.base import DataInfo

    from lsgan.data.datasets import fingerprint

    info = DataInfo(shape=tuple(dm.image_shape), num_classes=int(dm.num_classes),
                    class_names=list(dm.class_names), name=cfg.data.name, fingerprint=fingerprint(dm.train_set))
    return METHODS[cfg.method.name](cfg, info)


def build_strategy(cfg: DictConfig):
    if cfg.trainer.strategy != "ddp":
        return cfg.trainer.strategy
    from pytorch_lightning.strategies import DDPStrategy

    # Why find_unused_parameters=True: a GAN step runs several backward passes, each touching
    # only some networks (D's loss never reaches G; in G's step D's weights are frozen by
    # toggle_optimizer). DDP's reducer must be told that the untouched parameters are ready,
    # or it waits for their gradients and errors. static_graph cannot help because the set of
    # used parameters differs between the D and G passes; wrapping G and D in separate DDPs
    # would still need the same for D during the G pass. Lightning re-prepares the reducer for
    # every manual_backward, so each pass is all-reduced; the cost is one autograd-graph walk
    # per backward, small next to the convolutions.
    return DDPStrategy(find_unused_parameters=True)


def train(cfg: DictConfig, run_dir: Optional[str] = None, callbacks: Optional[list] = None,
          overrides: Optional[List[str]] = None) -> RunResult:
    """Validate ``cfg``, train, and return where the outputs went.

    ``callbacks`` (optional) run before the built-in ones at every hook (benchmarks, tests).
    ``overrides`` (the command line's, from the CLI) are kept in the run dir's ``overrides.yaml``
    for ``python -m lsgan.runs``.
    One process trains in a run dir at a time (``RunDirLock``); a resume must find a readable
    checkpoint and the same settings (``lsgan.resume``).
    """
    from lsgan.config import check_device, validate
    from lsgan.console import run_log
    from lsgan.divergence import DivergenceError
    from lsgan.io import check_output_dir
    from lsgan.resume import RunDirLock, is_launching_process, remove_unfinished_writes
    from lsgan.train_extractor import ensure_extractor_weights

    cfg = validate(cfg)
    check_device(cfg)
    # a file, or a folder that cannot be written (read-only), is one line before anything is made
    run_dir = check_output_dir(run_dir or cfg.run_dir or "runs/default", "run_dir")
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunDirLock(run_dir) if is_launching_process() else None
    log = run_dir / "run.log"
    new_log, failed = not log.exists(), True
    try:
        if lock is None:
            return _train_in(ensure_extractor_weights(cfg), run_dir, callbacks, overrides)
        lock.acquire()
        # a write killed mid-way (no chance to clean up) would hold its disk space for good
        remove_unfinished_writes(run_dir / "checkpoints")
        with run_log(log, errors=(ConfigError, DivergenceError, NoSpaceError)):  # the console, kept with the run
            cfg = ensure_extractor_weights(cfg)  # extractor=auto on photographs: this data's RotNet, trained if missing
            result = _train_in(cfg, run_dir, callbacks, overrides)
        failed = False
        return result
    finally:
        if lock is not None:
            lock.release()
        if failed and lock is not None and new_log and {p.name for p in run_dir.iterdir()} == {"run.log"}:
            log.unlink()  # a run refused before writing anything keeps no log of it
        if created and not any(run_dir.iterdir()):
            run_dir.rmdir()  # a run that failed before writing anything leaves no stray dir


def _train_in(cfg: DictConfig, run_dir: Path, callbacks: Optional[list],
              overrides: Optional[List[str]] = None) -> RunResult:
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ProgressBar
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from lsgan.callbacks import AtomicCheckpoint, IterationProgressBar, PlainProgress, SampleGrid, StopAtIteration
    from lsgan.loggers import finish_loggers, run_group
    from lsgan.precision import describe_device, resolve_precision
    from lsgan.resume import (check_compatible, data_changed, pick_resume, read_checkpoint, settings_changed,
                              state_misfit)

    ckpt_dir = run_dir / "checkpoints"
    if cfg.resume is not None:
        resume, blob = Path(str(cfg.resume)).expanduser(), read_checkpoint(cfg.resume)
    else:
        resume, blob = pick_resume(ckpt_dir) or (None, None)
    resume_iteration, trained_at, changed = None, None, []
    if blob is not None:
        changed = settings_changed(blob, cfg, resume)
        resume_iteration = int(blob.get("lsgan", {}).get("iteration", 0))
        trained_at = blob.get("lsgan", {}).get("precision")

    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    dm = build_datamodule(cfg)
    method = build_method(cfg, dm)
    if blob is not None:  # refused here, before anything in the run dir is written
        changed += data_changed(blob, method.data_info)  # a data file replaced since: its shape or classes
        check_compatible(changed, state_misfit(method, blob["state_dict"]), resume, bool(cfg.get("force_resume", False)))
        print(f"[lsgan] resuming from {resume} (iteration {resume_iteration})", flush=True)
        resume = str(resume)
        del blob
    steps = int(cfg.trainer.steps)
    callbacks = list(callbacks or []) + [
        StopAtIteration(steps),
        SampleGrid(str(run_dir / "samples"), cfg.trainer.sample_every, steps),
        AtomicCheckpoint(str(ckpt_dir), cfg.trainer.ckpt_every, steps, cfg.trainer.keep_checkpoints),
    ]
    evaluation = extra_callbacks(cfg, run_dir)
    callbacks += evaluation
    own = config_callbacks(cfg)
    callbacks += own
    if cfg.trainer.progress_bar and not any(isinstance(c, ProgressBar) for c in own):  # a user's bar replaces lsgan's
        # a bar in a terminal, plain lines in a log file
        callbacks.append(IterationProgressBar(steps) if sys.stderr.isatty()
                         else PlainProgress(steps, int(cfg.trainer.log_every)))
    group = run_group(cfg, overrides)
    precision = resolve_precision(str(cfg.trainer.precision), str(cfg.trainer.accelerator))
    if precision != cfg.trainer.precision:
        print(f"[lsgan] trainer.precision={cfg.trainer.precision} -> {precision} "
              f"({describe_device(str(cfg.trainer.accelerator))})", flush=True)
    if trained_at is not None and trained_at != precision:  # e.g. auto resumed on other hardware
        print(f"[lsgan] the checkpoint was trained at {trained_at}; continuing at {precision}", flush=True)
    with quiet_lightning():
        trainer = build_trainer(cfg, run_dir, precision, callbacks, group, resume_iteration)
    # Written once data and nets are built: a re-run that fails on its data (a wrong data.root, say)
    # leaves the run's config.yaml as it was.
    _save_config(cfg, run_dir, overrides)
    with warnings.catch_warnings(), quiet_lightning():
        # The data stream is infinite by design (iteration-counted training).
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*infinite.*")
        # Frozen nets (coupled's extractor, EMA copies) stay in eval mode on purpose.
        warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode at the start of training.*")
        # Lightning's own pytree helper calls an API torch deprecated; nothing lsgan calls.
        warnings.filterwarnings("ignore", ".*LeafSpec.* is deprecated.*")
        received = []
        try:
            with preemption_signal(received):
                trainer.fit(method, datamodule=dm, ckpt_path=resume)
        except SIGTERMException:
            name = received[0] if received else "SIGTERM"
            if trainer.is_global_zero:
                print(f"[lsgan] stopped by {name} at iteration {method.iteration}: {ckpt_dir / 'last.ckpt'} is saved; "
                      f"the same command resumes from it", flush=True)
            raise SystemExit(128 + int(getattr(signal, name))) from None  # as a process killed by it reports
        finally:
            finish_loggers(trainer.loggers)
    result = RunResult(run_dir=run_dir, checkpoint=ckpt_dir / "last.ckpt", samples=run_dir / "samples" / "latest.png",
                       metrics_csv=run_dir / "metrics.csv", iteration=method.iteration,
                       metrics=dict(evaluation[0].last) if evaluation else {})
    if trainer.is_global_zero:
        print(f"[lsgan] done: {method.iteration} iterations\n"
              f"  run dir:     {result.run_dir}\n  checkpoint:  {result.checkpoint}\n"
              f"  samples:     {result.samples}\n  metrics CSV: {result.metrics_csv}", flush=True)
    if cfg.get("optimized_metric") is not None:
        from lsgan.search import optimized_metric

        result.optimized = optimized_metric(result.metrics, str(cfg.optimized_metric), evaluation[0].last_iteration)
        print(f"[lsgan] optimized_metric {cfg.optimized_metric} = {result.optimized:.6g}", flush=True)
    return result


def build_trainer(cfg: DictConfig, run_dir: Path, precision: str, callbacks: list, group, resume_iteration):
    import pytorch_lightning as pl

    from pytorch_lightning.callbacks import ProgressBar

    from lsgan.loggers import build_loggers

    return pl.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes,
        strategy=build_strategy(cfg),
        precision=precision,
        max_epochs=-1,
        max_steps=-1,
        # Lightning's Timer agrees on stopping across DDP ranks; the end-of-training checkpoint still runs
        max_time=None if cfg.trainer.max_minutes is None else timedelta(minutes=float(cfg.trainer.max_minutes)),
        logger=build_loggers(cfg, str(run_dir), run_name(cfg), group, resume_iteration),
        callbacks=callbacks,
        enable_checkpointing=False,  # AtomicCheckpoint does it (atomic, iteration-numbered)
        enable_progress_bar=any(isinstance(c, ProgressBar) for c in callbacks),
        enable_model_summary=False,  # callbacks=summary prints one
        num_sanity_val_steps=0,
        limit_val_batches=0,
        sync_batchnorm=bool(cfg.trainer.sync_batchnorm),
        deterministic=bool(cfg.trainer.deterministic),
        default_root_dir=str(run_dir),
        log_every_n_steps=1,
        # The data module's resumable batch sampler shards batches across DDP ranks itself.
        use_distributed_sampler=False,
    )


@contextlib.contextmanager
def quiet_lightning():
    """Lightning's info lines (accelerator summary, a cloud-logging tip) stay out of the console: lsgan
    prints the device and precision it trains on itself. Its warnings still show."""
    import logging

    loggers = [logging.getLogger(name) for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero",
                                                     "lightning_fabric.utilities.rank_zero")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def preemption_signal(received: list):
    """SIGUSR1 (what SLURM's ``--signal=USR1@<s>`` sends before a preemption) and a first Ctrl-C (SIGINT)
    stop training as SIGTERM does: Lightning finishes the batch, last.ckpt is written, the process exits; the same
    command resumes. Installed before fit, so Lightning keeps it (its own SLURM requeue handler
    would write a checkpoint lsgan does not resume from)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_usr1(signum, frame):
        received.append("SIGUSR1")
        signal.raise_signal(signal.SIGTERM)  # Lightning's SIGTERM handler takes it from here

    def on_int(signum, frame):
        # Ctrl-C, the usual way a person stops a run: save and exit as for SIGTERM; a second one aborts
        received.append("SIGINT")
        signal.signal(signal.SIGINT, previous_int)
        print("[lsgan] Ctrl-C: finishing the batch and saving last.ckpt (Ctrl-C again to abort without saving)",
              file=sys.stderr, flush=True)
        signal.raise_signal(signal.SIGTERM)

    previous = signal.signal(signal.SIGUSR1, on_usr1)
    previous_int = signal.signal(signal.SIGINT, on_int)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, previous)
        signal.signal(signal.SIGINT, previous_int)


def extra_callbacks(cfg: DictConfig, run_dir: Path) -> list:
    """Metric evaluation during training, when ``metrics.every`` > 0, and at the last iteration when
    ``optimized_metric`` is set (``lsgan.search.LatestMetrics``)."""
    if (int(cfg.metrics.every) <= 0 or not cfg.metrics.names) and cfg.get("optimized_metric") is None:
        return []
    from lsgan.search import LatestMetrics  # evaluation suite

    return [LatestMetrics(cfg, run_dir)]


def config_callbacks(cfg: DictConfig) -> list:
    """The ``callbacks`` node's entries, each instantiated from its ``_target_`` (null entries skipped). Saving
    checkpoints stays lsgan's own (atomic, iteration-numbered, resumable), so a checkpointing callback is refused."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate
    from pytorch_lightning.callbacks import Checkpoint

    out = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:
            continue
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(f"callbacks.{name}: needs a _target_ (a Lightning callback class), "
                              f"e.g. +callbacks.{name}._target_=pytorch_lightning.callbacks.LearningRateMonitor")
        try:
            callback = instantiate(node)
        except Exception as exc:
            cause = exc.__cause__ or exc
            raise ConfigError(f"callbacks.{name}: cannot build {node._target_} "
                              f"({' '.join(str(cause).split())[:160]})") from None
        if not isinstance(callback, pl.Callback):
            raise ConfigError(f"callbacks.{name}: {node._target_} is not a Lightning Callback")
        if isinstance(callback, Checkpoint):
            raise ConfigError(f"callbacks.{name}: checkpoints are lsgan's own (trainer.ckpt_every, "
                              f"trainer.keep_checkpoints, trainer.ckpt_monitor); remove this callback")
        out.append(callback)
    return out


def _save_config(cfg: DictConfig, run_dir: Path, overrides: Optional[List[str]] = None) -> None:
    from lsgan.io import atomic_file

    files = {"config.yaml": OmegaConf.to_yaml(cfg, resolve=True)}
    if overrides is not None:
        files["overrides.yaml"] = OmegaConf.to_yaml(OmegaConf.create(list(overrides)))
    for name, text in files.items():
        with atomic_file(run_dir / name, "w", size=len(text.encode())) as fh:
            fh.write(text)


def _hydra_entry(kept: frozenset = frozenset()):
    """Hydra's entry; ``kept``: folders that existed before the command (Hydra makes the run dir before lsgan sees
    the config, so a refused run removes it when empty, unless it is one of these)."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
    def _main(cfg: DictConfig) -> Optional[float]:  # the value a sweeper optimizes (optimized_metric), else None
        from lsgan.io import is_no_space, no_space_error
        from lsgan.divergence import DivergenceError

        if HydraConfig.get().mode.name == "RUN":
            run_dir = cfg.run_dir or HydraConfig.get().runtime.output_dir
        else:  # a sweep's job: its own <hydra.sweep.dir>/<hydra.sweep.subdir> (run_dir=DIR is the sweep dir)
            run_dir = HydraConfig.get().runtime.output_dir
            if cfg.run_dir:
                cfg.run_dir = run_dir  # the job's config.yaml names the job's own dir
        choices = HydraConfig.get().runtime.choices
        if choices.get("experiment") in (None, "null"):
            from lsgan.data.profile import recipe_hint

            with contextlib.suppress(Exception):  # a hint only: a bad dataset is reported by train() in one line
                hint = recipe_hint(cfg, choices.get("dataset"))
                if hint:
                    print(hint, flush=True)
        try:
            try:
                return train(cfg, run_dir, overrides=list(HydraConfig.get().overrides.task)).optimized
            except OSError as exc:
                # a full disk outside lsgan's own atomic writes (a logger's rows, say): the same one line
                if isinstance(exc, NoSpaceError) or not is_no_space(exc):
                    raise
                raise no_space_error(exc, exc.filename or run_dir) from exc
        except (ConfigError, DivergenceError, NoSpaceError) as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            if Path(run_dir).resolve() not in kept:
                with contextlib.suppress(OSError):
                    Path(run_dir).rmdir()  # only when empty: the dir Hydra made for a run refused before writing
            if HydraConfig.get().mode.name == "RUN":
                sys.exit(1)
            raise job_error(exc) from None  # a failed job of a sweep: one line at the sweep's end, no traceback

    _main()


def main() -> None:
    from lsgan.io import check_output_dir

    # Run dirs lsgan makes contain "=" (runs/<m>-<d>,seed=1,...), which Hydra's grammar reads as
    # syntax: path-valued keys are quoted for it, so `resume=<that path>` works as typed.
    given = dict(a.lstrip("+").split("=", 1) for a in sys.argv[1:] if "=" in a and not a.startswith("-"))
    sys.argv[1:] = [quote_path_override(a) for a in sys.argv[1:]]
    kept = set()
    try:
        if given.get("run_dir") not in (None, "", "null"):  # Hydra makes this folder before lsgan sees the config
            where = check_output_dir(given["run_dir"].strip("'\""), "run_dir")
            if where.is_dir():
                kept.add(where.resolve())  # the user's folder: a refused run leaves it, even empty
        precheck_overrides(sys.argv[1:], check_keys=True)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    _hydra_entry(frozenset(kept))


if __name__ == "__main__":
    main()
