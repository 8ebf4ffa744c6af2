"""What the fixed-budget method benchmarks share: (1) the evaluator classifier, trained once and
cached; (2) training under a wall-clock budget; (3) the metric suite on the last checkpoint. Each
benchmark script builds its config and reads the numbers it reports from the returned record."""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

from omegaconf import OmegaConf

from lsgan.config import validate
from lsgan.loading import load_datamodule, load_method
from lsgan.metrics.results import summary
from lsgan.metrics.suite import MetricSuite
from lsgan.run import train
from lsgan.train_evaluator import train_and_cache


def budgeted_run(cfg, out: Path, minutes: float, metric_names: List[str], n_samples: int,
                 accelerator: str = "cpu", evaluator_steps: Optional[int] = None) -> dict:
    """Evaluator (cached) → training for ``minutes`` (``trainer.steps`` stays a cap) → metrics.

    ``evaluator_steps`` caps a first evaluator training; such a weaker evaluator is kept under
    ``out``, so the shared cache never holds an under-trained one.
    Returns {"evaluator", "result", "method", "cfg", "datamodule", "suite", "metrics", "seconds"}."""
    cfg = OmegaConf.merge(cfg, {"trainer": {"max_minutes": float(minutes)}})
    if evaluator_steps:
        capped = out / f"evaluator_{cfg.data.name}_{cfg.data.size}_capped{evaluator_steps}.pt"
        cfg = OmegaConf.merge(cfg, {"metrics": {"evaluator": str(capped)}})
    t0 = time.time()
    ev = train_and_cache(validate(cfg), device=accelerator, max_steps=evaluator_steps)
    t_eval = time.time() - t0

    t0 = time.time()
    result = train(cfg, str(out / "run"))
    t_train = time.time() - t0

    t0 = time.time()
    method, run_cfg = load_method(result.checkpoint, device="cpu" if accelerator == "cpu" else "cuda")
    dm = load_datamodule(run_cfg)
    suite = MetricSuite(method, dm, run_cfg, evaluator="auto")
    metrics = suite.compute(metric_names, n_samples=n_samples)
    t_metrics = time.time() - t0
    return {"evaluator": {"path": ev["path"], "cached": ev["cached"], "test_acc": ev["test_acc"],
                          "seconds": round(t_eval, 1)},
            "result": result, "method": method, "cfg": run_cfg, "datamodule": dm, "suite": suite,
            "metrics": metrics, "seconds": {"train": round(t_train, 1), "metrics": round(t_metrics, 1)}}


def print_metrics(metrics: dict, names: List[str]) -> None:
    for name in names:
        print(f"  {name}: {summary(metrics[name])}")
