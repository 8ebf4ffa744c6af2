"""Collect the slcGAN sweeps into tables: one row per run, evaluated from its last checkpoint.

    python experiments/slcgan/collect.py runs/slcgan                       # every run under the folder
    python experiments/slcgan/collect.py runs/slcgan --fid --device cuda --n-samples 10000

Finds every ``<run>/checkpoints/last.ckpt`` of method=slcgan below the given folders, evaluates
it with ``lsgan.metrics.suite.MetricSuite`` (clustering ACC / purity / NMI of C on the evaluation
split, conditional accuracy and classifier FID of G, linear probe of C's features; Inception FID
with ``--fid``) and caches the result as ``<run>/slcgan_eval.json`` — a cached result is reused
while the checkpoint's iteration and the protocol (metrics, n_samples) are unchanged. Writes
``results.md`` (a Markdown table per dataset) and ``results.csv`` next to ``--out``.
Metrics that cannot run (no evaluator classifier cached, no Inception weights) show as "–" with
the reason in the JSON; train an evaluator with ``python -m lsgan.train_evaluator dataset=D``.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/: the shared _common module
from _common import method_runs, read_cached, write_cached  # noqa: E402


EVAL_FILE = "slcgan_eval.json"
BASE_METRICS = ["cluster", "cond_acc", "classifier_fid", "probe"]
# (column, metric, key in its result, scale): percentages for accuracies
COLUMNS = [("ACC %", "cluster", "acc", 100), ("purity %", "cluster", "purity", 100), ("NMI", "cluster", "nmi", 1),
           ("cond. acc %", "cond_acc", "value", 100), ("classifier FID", "classifier_fid", "value", 1),
           ("FID", "fid", "value", 1), ("probe %", "probe", "value", 100)]


def evaluate_run(run: Path, info: dict, names: List[str], n_samples: int, device: str,
                 data_root: Optional[str], ref_n: Optional[int] = None) -> dict:
    """The run's metrics (``info`` from :func:`checkpoint_info`), from the cache file when it
    matches, else computed and cached."""
    from lsgan.loading import load_datamodule, load_method, resolve_device
    from lsgan.metrics.suite import MetricSuite

    ckpt = run / "checkpoints" / "last.ckpt"
    protocol = {"metrics": names, "n_samples": n_samples, "ref_n": ref_n}
    cache = run / EVAL_FILE
    old = read_cached(cache, iteration=info["iteration"], protocol=protocol)
    if old is not None:
        return old
    overrides = ([f"data.root={data_root}"] if data_root else []) + ([f"metrics.ref_n={ref_n}"] if ref_n else [])
    method, cfg = load_method(ckpt, device=resolve_device(device), overrides=overrides)
    dm = load_datamodule(cfg)
    metrics = MetricSuite(method, dm, cfg, evaluator="auto").compute(names, n_samples=n_samples)
    out = {"run": str(run), "iteration": info["iteration"], "protocol": protocol, "dataset": cfg.data.name,
           "K": int(cfg.method.num_clusters), "loss": cfg.loss.name, "seed": int(cfg.seed), "metrics": metrics}
    write_cached(cache, out)
    return out


def cell(result: dict, metric: str, key: str, scale: float) -> str:
    res = result["metrics"].get(metric)
    if not res or "skipped" in res or res.get(key) is None:
        return "–"
    return f"{scale * float(res[key]):.1f}" if scale != 1 else f"{float(res[key]):.3g}"


def tables(results: List[dict]) -> str:
    """One Markdown table per dataset, rows sorted by K, loss and seed."""
    out = []
    for dataset in sorted({r["dataset"] for r in results}):
        rows = sorted((r for r in results if r["dataset"] == dataset), key=lambda r: (r["K"], r["loss"], r["seed"]))
        out.append(f"### {dataset}\n")
        out.append("| K | loss | seed | iterations | " + " | ".join(c[0] for c in COLUMNS) + " |")
        out.append("|---" * (4 + len(COLUMNS)) + "|")
        for r in rows:
            cells = [cell(r, m, k, s) for _, m, k, s in COLUMNS]
            out.append(f"| {r['K']} | {r['loss']} | {r['seed']} | {r['iteration']} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main(argv=None) -> List[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("roots", nargs="+", help="folders holding run directories (searched recursively)")
    p.add_argument("--out", default="experiments/slcgan/results.md")
    p.add_argument("--n-samples", type=int, default=10000, help="generated images per metric")
    p.add_argument("--fid", action="store_true", help="also Inception FID (slow on CPU)")
    p.add_argument("--device", default="auto", help="cpu | cuda | auto")
    p.add_argument("--data-root", default=None, help="override data.root of the runs (checkpoints move)")
    p.add_argument("--ref-n", type=int, default=None,
                   help="real images for the FID reference and the probe's training set (default: the run's metrics.ref_n)")
    a = p.parse_args(argv)

    names = BASE_METRICS + (["fid"] if a.fid else [])
    results = []
    for run, info in method_runs(a.roots, "slcgan"):
        print(f"[collect] {run}", flush=True)
        results.append(evaluate_run(run, info, names, a.n_samples, a.device, a.data_root, a.ref_n))
    md = Path(a.out)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text("# slcGAN results (experiments/slcgan/collect.py)\n\n" + tables(results))
    with open(md.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "dataset", "K", "loss", "seed", "iteration"] + [c[0] for c in COLUMNS])
        for r in results:
            writer.writerow([r["run"], r["dataset"], r["K"], r["loss"], r["seed"], r["iteration"]]
                            + [cell(r, m, k, s) for _, m, k, s in COLUMNS])
    print(tables(results))
    print(f"[collect] wrote {md} and {md.with_suffix('.csv')}")
    return results


if __name__ == "__main__":
    main()
