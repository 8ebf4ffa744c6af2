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

from lsgan.metrics.suite import MetricSuite, canonical_names, flatten_scalars


class MetricsCallback(pl.Callback):
    def __init__(self, cfg, run_dir):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.every = int(cfg.metrics.every)
        self.names = canonical_names(list(cfg.metrics.names))  # a bad name fails before training starts
        self.n_samples = int(cfg.metrics.n_samples)
        self._suite = None
        self._reported = set()

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
        return results

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._reported:
            self._reported.add(key)
            print(message, file=sys.stderr, flush=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        it = int(pl_module.iteration)
        if it > 0 and it % self.every == 0 and trainer.is_global_zero:
            self.evaluate(trainer, pl_module)
