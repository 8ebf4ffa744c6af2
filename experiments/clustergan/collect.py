"""Collect the ClusterGAN sweeps into one table: a row per run, evaluated from its last checkpoint.

    python experiments/clustergan/collect.py runs/clustergan                      # every run below
    python experiments/clustergan/collect.py runs/clustergan --fid --device cuda  # + Inception FID / P / R

Finds every ``<run>/checkpoints/last.ckpt`` of method=clustergan below the folders and evaluates
it with ``lsgan.metrics.suite.MetricSuite``: clustering of the evaluation split (ACC / NMI / ARI of
argmax E(x) and of the authors' k-means on E(x)), conditional accuracy, within-condition variety
and classifier FID of G, plus precision / recall on the evaluator's features (and FID / precision /
recall on Inception features with ``--fid``, the student study's numbers). Each run's numbers are
cached in ``<run>/clustergan_eval.json`` and reused while its iteration and the protocol are
unchanged. Writes ``--out`` (Markdown) and the same table as CSV beside it. A metric that cannot
run (no evaluator cached: ``python -m lsgan.train_evaluator dataset=mnist data.size=28``) shows "–"
with the reason in the JSON.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/: the shared _common module
from _common import method_runs, read_cached, write_cached  # noqa: E402


EVAL_FILE = "clustergan_eval.json"
BASE_METRICS = ["cluster", "cond_acc", "variety", "classifier_fid", "classifier_prdc"]
# (column, metric, key path inside its result)
COLUMNS = [("ACC", "cluster", "acc"), ("NMI", "cluster", "nmi"), ("ARI", "cluster", "ari"),
           ("ACC k-means", "cluster", "kmeans.acc"), ("NMI k-means", "cluster", "kmeans.nmi"),
           ("ARI k-means", "cluster", "kmeans.ari"), ("cond. acc", "cond_acc", "value"),
           ("variety", "variety", "value"), ("classifier FID", "classifier_fid", "value"),
           ("P (eval)", "classifier_prdc", "precision"), ("R (eval)", "classifier_prdc", "recall"),
           ("FID", "fid", "value"), ("P", "prdc", "precision"), ("R", "prdc", "recall")]
SETTINGS = ("prior", "dim", "sigma", "adv_loss", "perceptual_weight", "seed", "iteration")


def settings(cfg: dict, iteration: int) -> dict:
    """The run's setting columns (``cfg``: :func:`_common.checkpoint_info`'s, in today's spelling: the adversarial
    form is method.adv_loss; clustergan's loss= has only full)."""
    return {"prior": cfg["prior"]["name"], "dim": int(cfg["prior"]["dim"]), "sigma": float(cfg["prior"]["sigma"]),
            "adv_loss": cfg["method"].get("adv_loss", "wgan_gp"), "perceptual_weight": float(cfg["method"]["perceptual_weight"]),
            "seed": int(cfg.get("seed", 0)), "iteration": iteration}


def evaluate_run(run: Path, info: dict, names: List[str], n_samples: int, device: str,
                 data_root: Optional[str]) -> dict:
    from lsgan.loading import load_datamodule, load_method, resolve_device
    from lsgan.metrics.suite import MetricSuite

    ckpt = run / "checkpoints" / "last.ckpt"
    protocol = {"metrics": names, "n_samples": n_samples}
    cache = run / EVAL_FILE
    old = read_cached(cache, iteration=info["iteration"], protocol=protocol)
    if old is not None:
        old["settings"] = settings(info["cfg"], info["iteration"])  # a cache written before adv_loss had "loss"
        return old
    method, cfg = load_method(ckpt, device=resolve_device(device),
                              overrides=[f"data.root={data_root}"] if data_root else [])
    suite = MetricSuite(method, load_datamodule(cfg), cfg, evaluator="auto")
    metrics = suite.compute(names, n_samples=n_samples)
    out = {"run": str(run), "iteration": info["iteration"], "protocol": protocol, "dataset": cfg.data.name,
           "settings": settings(info["cfg"], info["iteration"]), "metrics": metrics}
    write_cached(cache, out)
    return out


def cell(result: dict, metric: str, path: str) -> str:
    value = result["metrics"].get(metric)
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) and "skipped" not in value else None
    return "–" if value is None else f"{float(value):.3f}" if abs(float(value)) < 10 else f"{float(value):.1f}"


def table(results: List[dict]) -> List[List[str]]:
    rows = sorted(results, key=lambda r: tuple(str(r["settings"][s]) for s in SETTINGS))
    return [[str(r["settings"][s]) for s in SETTINGS] + [cell(r, m, k) for _, m, k in COLUMNS] for r in rows]


def markdown(results: List[dict]) -> str:
    head = list(SETTINGS) + [c[0] for c in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table(results)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> List[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("roots", nargs="+", help="folders holding run directories (searched recursively)")
    p.add_argument("--out", default="experiments/clustergan/results.md")
    p.add_argument("--n-samples", type=int, default=10000, help="generated images per metric")
    p.add_argument("--fid", action="store_true",
                   help="also FID and precision / recall on Inception features (slow on CPU)")
    p.add_argument("--device", default="auto", help="cpu | cuda | auto")
    p.add_argument("--data-root", default=None, help="override data.root of the runs (checkpoints move)")
    a = p.parse_args(argv)

    names = BASE_METRICS + (["fid", "prdc"] if a.fid else [])
    results = []
    for run, info in method_runs(a.roots, "clustergan"):
        print(f"[collect] {run}", flush=True)
        results.append(evaluate_run(run, info, names, a.n_samples, a.device, a.data_root))
    md = Path(a.out)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text("# ClusterGAN results (experiments/clustergan/collect.py)\n\n"
                  "ACC / NMI / ARI: argmax of E's one-hot head; k-means: the authors' protocol on E(x). "
                  "variety: within-condition spread / real class spread (1 = as varied as real). "
                  "P / R (eval): precision / recall on evaluator features; FID, P, R: Inception (with --fid).\n\n"
                  + markdown(results))
    with open(md.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run"] + list(SETTINGS) + [c[0] for c in COLUMNS])
        by_key = sorted(results, key=lambda r: tuple(str(r["settings"][s]) for s in SETTINGS))
        for r, row in zip(by_key, table(results)):
            writer.writerow([r["run"]] + row)
    print(markdown(results))
    print(f"[collect] wrote {md} and {md.with_suffix('.csv')}")
    return results


if __name__ == "__main__":
    main()
