"""Hyper-parameter search: the number a run gives back to a Hydra sweeper (``optimized_metric``).

``conf/hparams_search/<recipe>_optuna.yaml`` turns ``python -m lsgan.run`` into an Optuna study (the
hydra-optuna-sweeper plugin, ``pip install '.[search]'``): each trial is one training run for
``trainer.max_minutes``, and its value is ``optimized_metric``, one of the numbers the run's own evaluation
(``metrics.names``, ``lsgan.metrics.callback.MetricsCallback``) logs, e.g. ``cluster/acc``. The run evaluates
``metrics.names`` once more at its last iteration, so the value is that of the model the trial ends with,
whatever ``metrics.every`` is. ``lsgan.config.check_optimized_metric`` checks the name before training.
"""
from __future__ import annotations

from typing import Dict, Optional

from lsgan.errors import ConfigError
from lsgan.metrics.callback import MetricsCallback
from lsgan.metrics.results import flatten_scalars


class LatestMetrics(MetricsCallback):
    """``MetricsCallback`` that keeps the numbers of its latest evaluation (``last``: name -> value,
    ``last_iteration``) for ``RunResult.metrics``; with ``optimized_metric`` set it also evaluates at the last
    iteration (unless it just did), and ``metrics.every`` = 0 means only then."""

    def __init__(self, cfg, run_dir):
        super().__init__(cfg, run_dir)
        self.final = cfg.get("optimized_metric") is not None
        self.last: Dict[str, float] = {}
        self.last_iteration: Optional[int] = None

    def evaluate(self, trainer, pl_module) -> dict:
        results = super().evaluate(trainer, pl_module)
        self.last, self.last_iteration = flatten_scalars(results), int(pl_module.iteration)
        return results

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.every > 0:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_end(self, trainer, pl_module):
        # before Lightning's teardown moves the nets off the accelerator
        if self.final and trainer.is_global_zero and self.last_iteration != int(pl_module.iteration):
            self.evaluate(trainer, pl_module)


def optimized_metric(metrics: Dict[str, float], name: str, iteration: Optional[int] = None) -> float:
    """``metrics[name]`` as a float, or one line listing the names the evaluation did report."""
    if name in metrics:
        return float(metrics[name])
    at = f" at iteration {iteration}" if iteration is not None else ""
    available = ", ".join(sorted(metrics)) or "none (every metric was skipped or failed: see the lines above)"
    raise ConfigError(f"optimized_metric={name}: not among the numbers the run's evaluation reported{at}; "
                      f"available: {available}")


__all__ = ["LatestMetrics", "optimized_metric"]
