"""Metrics during training: every ``metrics.every`` iterations, compute ``metrics.names`` on
``metrics.n_samples`` generated samples and log them keyed by iteration (metrics.csv, W&B, ...).

Only rank 0 evaluates (the others go on to the next step and wait for it at the next
collective). Evaluation runs on a private RNG, so a run with metrics draws the same training
noise as one without, and exact resume still holds. A metric that fails is reported once and
training continues: a bug in an evaluation must not cost a long run.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

from lsgan.callbacks import write_checkpoint
from lsgan.metrics.results import flatten_scalars
from lsgan.metrics.suite import MetricSuite, canonical_names

LOWER_IS_BETTER = ("fid", "kid")  # metric names containing these are minimised


def monitor_mode(key: str, mode: str = "auto") -> str:
    """"min" or "max" for ``trainer.ckpt_monitor``: ``mode`` unless it is auto, then min for FID / KID."""
    if mode != "auto":
        return mode
    return "min" if any(k in key for k in LOWER_IS_BETTER) else "max"


class MetricsCallback(pl.Callback):
    def __init__(self, cfg, run_dir):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.every = int(cfg.metrics.every)
        self.names = canonical_names(list(cfg.metrics.names))  # a bad name fails before training starts
        self.n_samples = int(cfg.metrics.n_samples)
        self._suite = None
        self._reported = set()
        self._best = None

    def _get_suite(self, trainer, pl_module) -> MetricSuite:
        if self._suite is None:
            dm = trainer.datamodule
            self._suite = MetricSuite(pl_module, dm, self.cfg, evaluator="auto", log=None)
        return self._suite

    def evaluate(self, trainer, pl_module) -> dict:
        suite = self._get_suite(trainer, pl_module)
        try:
            results = suite.compute(self.names, self.n_samples)
        except Exception as exc:  # noqa: BLE001 - see the module docstring
            self._warn_once("error", f"[lsgan] metrics failed at iteration {pl_module.iteration}: "
                                     f"{type(exc).__name__}: {' '.join(str(exc).split())}")
            return {}
        for name, res in results.items():
            if "skipped" in res:
                self._warn_once(name, f"[lsgan] metric {name} skipped: {res['skipped']}")
        row = flatten_scalars(results)
        if row:
            pl_module.log_metrics(row, step=pl_module.iteration)
            # also where Lightning's callbacks look (ModelCheckpoint(monitor=...), EarlyStopping)
            trainer.callback_metrics.update({k: torch.tensor(float(v)) for k, v in row.items()})
            self._keep_best(trainer, pl_module, row)
        return results

    def _keep_best(self, trainer, pl_module, row: dict) -> None:
        """``checkpoints/best.ckpt`` whenever ``trainer.ckpt_monitor`` improves (lower is better for
        FID / KID, higher for the rest; the direction is ``trainer.ckpt_mode``)."""
        key = self.cfg.trainer.get("ckpt_monitor")
        if not key or key not in row:
            return
        value = float(row[key])
        lower = monitor_mode(key, self.cfg.trainer.get("ckpt_mode", "auto")) == "min"
        if self._best is not None and (value >= self._best if lower else value <= self._best):
            return
        self._best = value
        path = self.run_dir / "checkpoints" / "best.ckpt"
        write_checkpoint(trainer, path, collective=False)  # rank 0 only, as the evaluation
        print(f"[lsgan] best {key}={value:.4g} at iteration {pl_module.iteration}: {path}", flush=True)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._reported:
            self._reported.add(key)
            print(message, file=sys.stderr, flush=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        it = int(pl_module.iteration)
        if it > 0 and it % self.every == 0 and trainer.is_global_zero:
            self.evaluate(trainer, pl_module)
