"""Evaluate a checkpoint: ``python -m lsgan.evaluate ckpt=PATH metrics=[classifier_fid,cond_acc,cluster] [out=DIR]``.

Writes ``DIR/metrics.json`` ({"checkpoint", "method", "dataset", "iteration", "evaluator",
"metrics": {name: {"value", ..., "protocol"} | {"skipped": reason}}}) and ``DIR/report.md``
(+ ``report.html`` with ``html=true``) with pictures. ``DIR`` defaults to ``<run_dir>/eval``
(``<run_dir>/eval/<name>`` for a checkpoint other than last.ckpt).

``metrics`` defaults to the run's ``metrics.names`` or, when empty, every metric that needs no
Inception pass (classifier_fid, cond_acc, variety, cluster, modes, knn); metrics that do not
apply are skipped with the reason (``variety``, added beside ``cond_acc``, only appears when measured).
When every requested metric is skipped, nothing is written and the command stops in one line giving
each reason. Other arguments: ``n=`` (generated samples; default
``metrics.n_samples``), ``device=auto|cpu|cuda``, ``html=false``, ``report=true``, ``log_run=true`` (a run
trained with ``logger=wandb`` / ``tensorboard`` gets the numbers and pictures under ``eval/`` in its own
W&B run / TensorBoard dir; ``false``: files only), and dotted
overrides of the saved config: ``data.root=DIR``, ``metrics.cache_dir=...``, ``metrics.ref_n=...``.

Arguments use Hydra's override grammar (``lsgan.cli``); ``--help`` lists the keys, ``-m`` sweeps
(``-m ckpt=A,B "metrics=[cond_acc]"``: one evaluation per checkpoint, each in its own folder).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from lsgan.cli import CLIError, Command, Key, check_bool, check_int, run, run_cli
from lsgan.errors import ConfigError
from lsgan.io import atomic_file, check_output_dir
from lsgan.loading import checkpoint_file, load_datamodule, load_method, output_dir_of, resolve_device, run_dir_of

DEFAULT_METRICS = ["classifier_fid", "cond_acc", "variety", "cluster", "modes", "knn"]
COMMAND = Command(
    prog="lsgan.evaluate",
    summary="Evaluate a checkpoint: metrics.json (every number with its protocol) and report.md with pictures.",
    keys={
        "ckpt": Key(None, "required: a checkpoint written by lsgan.run (runs/<run>/checkpoints/last.ckpt)", path=True,
                    shown="PATH"),
        "metrics": Key(None, "metric names, e.g. [cond_acc,classifier_fid]; null: the run's metrics.names, "
                             "else [" + ",".join(DEFAULT_METRICS) + "]"),
        "out": Key(None, "output folder; null: <run_dir>/eval (<run_dir>/eval/<name> for a checkpoint other than last.ckpt)", path=True),
        "n": Key(None, "generated samples (>= 2); null: the run's metrics.n_samples"),
        "device": Key("auto", "auto | cpu | cuda (auto: the GPU when there is one)"),
        "html": Key(False, "also write report.html"),
        "report": Key(True, "write report.md and its pictures (false: metrics.json only)"),
        "log_run": Key(True, "also log the numbers and the report's pictures, under eval/, into the run's own "
                             "W&B run (logger=wandb) or TensorBoard dir (logger=tensorboard, when installed)"),
    },
    overrides="the checkpoint's saved config",
    override_examples="data.root=DIR metrics.cache_dir=DIR metrics.ref_n=N",
    examples=["python -m lsgan.evaluate ckpt=runs/cgan-mnist/checkpoints/last.ckpt "
              "\"metrics=[cond_acc,classifier_fid]\" data.root=../shared/data",
              "python -m lsgan.evaluate -m ckpt=runs/a/checkpoints/last.ckpt,runs/b/checkpoints/last.ckpt "
              "\"metrics=[cond_acc]\""],
)
USAGE = "usage: python -m lsgan.evaluate ckpt=PATH [metrics=[fid,cond_acc,...]] [out=DIR] [n=N] [html=true] (--help: all keys)"


def evaluate(ckpt, names: Optional[Sequence[str]] = None, out_dir=None, n: Optional[int] = None,
             device: str = "auto", overrides: Sequence[str] = (), html: bool = False, report: bool = True,
             evaluator="auto", inception=None, log=print, log_run: bool = True) -> Dict[str, object]:
    """Compute ``names`` for the checkpoint and write metrics.json (+ the report). Returns the JSON dict.

    ``log_run``: when the run trained with ``logger=wandb`` (or ``tensorboard``), the numbers and the
    report's pictures also go there under ``eval/`` (``lsgan.loggers.log_evaluation``)."""
    from lsgan.metrics.results import flatten_scalars, to_jsonable
    from lsgan.metrics.suite import MetricSuite, canonical_names

    if names:
        canonical_names(names, "metrics")  # a typo fails before the checkpoint is loaded
    method, cfg = load_method(ckpt, resolve_device(device), overrides)
    requested = canonical_names(list(names) if names else (list(cfg.metrics.names) or DEFAULT_METRICS),
                                companions=False)
    names = canonical_names(requested)
    run_dir = run_dir_of(ckpt)
    out = Path(out_dir) if out_dir else output_dir_of(ckpt, "eval")
    dm = load_datamodule(cfg)
    suite = MetricSuite(method, dm, cfg, evaluator=evaluator, inception=inception, log=log)
    start = time.time()
    results = kept_results(suite.compute(names, n), requested)
    doc = {
        "checkpoint": str(Path(str(ckpt)).expanduser().absolute()),
        "method": cfg.method.name,
        "dataset": cfg.data.name,
        "iteration": int(method.iteration),
        "num_conditions": int(method.num_conditions),
        "evaluator": None if suite.evaluator is None else to_jsonable(dict(suite.evaluator.meta)),
        "seconds": round(time.time() - start, 1),
        "metrics": results,
    }
    text = json.dumps(doc, indent=2, allow_nan=False)  # fails before anything is written
    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(out / "metrics.json", "w") as fh:
        fh.write(text)
    if report:
        from lsgan.reports import write_report

        header = {"method": cfg.method.name, "dataset": cfg.data.name, "iteration": int(method.iteration),
                  "checkpoint": doc["checkpoint"], "conditions": int(method.num_conditions) or "none",
                  "evaluator": "none" if suite.evaluator is None else
                  f"{suite.evaluator.meta.get('arch')} (test accuracy {suite.evaluator.meta.get('test_acc')})"}
        paths = write_report(out, results, method, dm, run_dir, suite, header, html_too=html,
                             seed=int(cfg.metrics.get("seed", 0)))
    log(f"[lsgan] wrote {out / 'metrics.json'}" + (f" and {out / 'report.md'}" if report else ""))
    if log_run:
        from lsgan.loggers import log_evaluation

        figures = [p for name, p in paths.items() if name.endswith(".png")] if report else []
        row = flatten_scalars(results)
        try:
            where = log_evaluation(cfg, run_dir, doc["iteration"], row, figures)
        except Exception as exc:  # noqa: BLE001 - the files are written; a logger's failure must not hide them
            where = None
            print(f"[lsgan] warning: could not log to the run's {cfg.logger.name} logger "
                  f"({type(exc).__name__}: {' '.join(str(exc).split())}); the files above are written "
                  f"(log_run=false skips this)", file=sys.stderr, flush=True)
        if where is not None:
            log(f"[lsgan] logged {len(row)} numbers and {len(figures)} pictures under eval/ at iteration "
                f"{doc['iteration']} to {where}")
    return doc


def kept_results(results: Dict[str, dict], requested: Sequence[str]) -> Dict[str, dict]:
    """The results worth writing: every requested metric's, and a companion's (``variety`` beside
    ``cond_acc``) only when it measured something: a skip is recorded only for a metric the user asked for.
    Nothing measured at all is a one-line ConfigError giving each metric's reason, before anything is
    written (an earlier metrics.json is kept)."""
    kept = {k: v for k, v in results.items() if k in requested or "skipped" not in v}
    if all("skipped" in results[k] for k in requested):
        reasons = "; ".join(f"{k} ({' '.join(str(results[k]['skipped']).split())})" for k in requested)
        raise ConfigError(f"metrics=[{','.join(requested)}]: nothing measured, every requested metric was skipped: "
                          f"{reasons}")
    return kept


def main(argv: Optional[Sequence[str]] = None):
    """The command line (``argv`` default: ``sys.argv[1:]``): the JSON dict of :func:`evaluate`; with
    ``-m`` a list of them, one per job; with ``--help`` None."""
    return run(COMMAND, _job, argv)


def _job(args: Dict[str, object], overrides: List[str]) -> Dict[str, object]:
    if args["ckpt"] is None:
        raise CLIError(f"ckpt: missing; {USAGE}")
    names = args["metrics"]
    if isinstance(names, str):
        names = [names]
    elif names is not None and not isinstance(names, list):
        raise CLIError(f"metrics={names}: a metric name or a list of them, e.g. metrics=[cond_acc,cluster]")
    check_int(args, "n", 2, optional=True)
    check_bool(args, "html", "report", "log_run")
    args["ckpt"] = checkpoint_file(args["ckpt"])  # a run dir stands for its last checkpoint
    check_output_dir(args["out"] or output_dir_of(args["ckpt"], "eval"), "out")  # refused before any work
    return evaluate(args["ckpt"], names, args["out"], args["n"], args["device"], overrides,
                    args["html"], args["report"], log_run=args["log_run"])


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
