"""Evaluate a checkpoint: ``python -m lsgan.evaluate ckpt=PATH metrics=[classifier_fid,cond_acc,cluster] [out=DIR]``.

Writes ``DIR/metrics.json`` ({"checkpoint", "method", "dataset", "iteration", "evaluator",
"metrics": {name: {"value", ..., "protocol"} | {"skipped": reason}}}) and ``DIR/report.md``
(+ ``report.html`` with ``html=true``) with pictures. ``DIR`` defaults to ``<run_dir>/eval``.

``metrics`` defaults to the run's ``metrics.names`` or, when empty, every metric that needs no
Inception pass (classifier_fid, cond_acc, variety, cluster, modes, knn); metrics that do not
apply are skipped with the reason. Other arguments: ``n=`` (generated samples; default
``metrics.n_samples``), ``device=auto|cpu|cuda``, ``html=false``, ``report=true``, and dotted
overrides of the saved config: ``data.root=DIR``, ``metrics.cache_dir=...``, ``metrics.ref_n=...``.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

from lsgan.io import atomic_file
from lsgan.loading import CLIError, load_datamodule, load_method, parse_args, resolve_device, run_cli, run_dir_of

DEFAULT_METRICS = ["classifier_fid", "cond_acc", "variety", "cluster", "modes", "knn"]
USAGE = "usage: python -m lsgan.evaluate ckpt=PATH [metrics=[fid,cond_acc,...]] [out=DIR] [n=N] [html=true]"


def evaluate(ckpt, names: Optional[Sequence[str]] = None, out_dir=None, n: Optional[int] = None,
             device: str = "auto", overrides: Sequence[str] = (), html: bool = False, report: bool = True,
             evaluator="auto", inception=None, log=print) -> Dict[str, object]:
    """Compute ``names`` for the checkpoint and write metrics.json (+ the report). Returns the JSON dict."""
    from lsgan.metrics.suite import MetricSuite, canonical_names, to_jsonable

    if names:
        canonical_names(names, "metrics")  # a typo fails before the checkpoint is loaded
    method, cfg = load_method(ckpt, resolve_device(device), overrides)
    names = canonical_names(list(names) if names else (list(cfg.metrics.names) or DEFAULT_METRICS))
    run_dir = run_dir_of(ckpt)
    out = Path(out_dir) if out_dir else run_dir / "eval"
    out.mkdir(parents=True, exist_ok=True)
    dm = load_datamodule(cfg)
    suite = MetricSuite(method, dm, cfg, evaluator=evaluator, inception=inception, log=log)
    start = time.time()
    results = suite.compute(names, n)
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
    with atomic_file(out / "metrics.json", "w") as fh:
        fh.write(text)
    if report:
        from lsgan.reports import write_report

        header = {"method": cfg.method.name, "dataset": cfg.data.name, "iteration": int(method.iteration),
                  "checkpoint": doc["checkpoint"], "conditions": int(method.num_conditions) or "none",
                  "evaluator": "none" if suite.evaluator is None else
                  f"{suite.evaluator.meta.get('arch')} (test accuracy {suite.evaluator.meta.get('test_acc')})"}
        write_report(out, results, method, dm, run_dir, suite, header, html_too=html,
                     seed=int(cfg.metrics.get("seed", 0)))
    log(f"[lsgan] wrote {out / 'metrics.json'}" + (f" and {out / 'report.md'}" if report else ""))
    return doc


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, object]:
    args, overrides = parse_args(sys.argv[1:] if argv is None else argv,
                                 {"ckpt": None, "metrics": None, "out": None, "n": None, "device": "auto",
                                  "html": False, "report": True})
    if args["ckpt"] is None:
        raise CLIError(f"ckpt: missing; {USAGE}")
    names = args["metrics"]
    if isinstance(names, str):
        names = [names]
    if args["n"] is not None and (not isinstance(args["n"], int) or args["n"] < 2):
        raise CLIError(f"n={args['n']}: must be an integer >= 2")
    return evaluate(args["ckpt"], names, args["out"], args["n"], args["device"], overrides,
                    bool(args["html"]), bool(args["report"]))


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
