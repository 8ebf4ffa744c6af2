"""Collect the coupled experiments: tables of conditional accuracy / classifier FID and the
accuracy-vs-label-noise curve (Durall et al., Fig. 7).

    python experiments/coupled/collect.py runs/coupled                     # → experiments/coupled/results/
    python experiments/coupled/collect.py runs/coupled --evaluate --device cuda

Every folder below the roots holding ``config.yaml`` and ``metrics.csv`` is a run (read with ``lsgan.runs``).
Its numbers are the last logged ``cond_acc`` / ``classifier_fid`` of its metrics.csv, its iterations the last
logged one (the sweeps evaluate at the last iteration). With ``--evaluate``, runs that logged none are
evaluated from their ``checkpoints/last.ckpt`` with the metric suite (cached in ``<run>/coupled_eval.json``).
Writes results.md (one table per experiment folder), results.csv and robustness.png.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/: the shared _common module
from _common import read_cached, write_cached  # noqa: E402

from lsgan.runs import find_runs, last_metrics, read_config  # noqa: E402

METRICS = ("cond_acc", "classifier_fid")


def last_logged(metrics_csv: Path) -> Dict[str, Optional[float]]:
    """The last logged value of each metric and the run's last iteration (``lsgan.runs.last_metrics``)."""
    logged = last_metrics(metrics_csv)
    out: Dict[str, Optional[float]] = {m: float(logged[m]) if m in logged else None for m in METRICS}
    out["step"] = int(logged["iteration"]) if "iteration" in logged else None
    return out


def evaluate_checkpoint(run: Path, device: str, n: int) -> Dict[str, Optional[float]]:
    cache = run / "coupled_eval.json"
    old = read_cached(cache, n=n)
    if old is not None:
        return old
    from lsgan.loading import load_datamodule, load_method
    from lsgan.metrics.suite import MetricSuite

    method, cfg = load_method(run / "checkpoints" / "last.ckpt", device=device)
    res = MetricSuite(method, load_datamodule(cfg), cfg, evaluator="auto", log=None).compute(list(METRICS), n)
    out = {m: res[m].get("value") for m in METRICS}
    out["step"], out["n"] = int(method.iteration), n
    write_cached(cache, out)
    return out


def describe(run: Path, roots: List[str]) -> Dict[str, object]:
    from omegaconf import OmegaConf

    # read_config: a run from before loss= / method.adv_loss were split (sngan's loss.name: minimax) reads as today's
    cfg = OmegaConf.create(read_config(run))
    experiment = next((str(run.relative_to(r).parts[0]) for r in roots
                       if Path(r) in run.parents and len(run.relative_to(r).parts) > 1), run.parent.name)
    extractor = cfg.extractor.name if cfg.method.name == "coupled" else "-"
    return {"experiment": experiment, "run": str(run), "method": str(cfg.method.name), "loss": str(cfg.loss.name),
            "adv_loss": str(cfg.method.get("adv_loss", "-")),
            "dataset": str(cfg.data.name), "label_noise": float(cfg.data.get("label_noise", 0.0) or 0.0),
            "extractor": str(extractor)}


def fmt(v, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def write_tables(rows: List[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    keys = ["experiment", "dataset", "method", "loss", "adv_loss", "extractor", "label_noise", "step", "cond_acc",
            "classifier_fid", "run"]
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    lines = ["# Coupled experiments", ""]
    for exp in sorted({r["experiment"] for r in rows}):
        lines += [f"## {exp}", "", "| dataset | method | loss | adv. loss | extractor | label noise | iterations | "
                  "cond. accuracy | classifier FID |", "|---|---|---|---|---|---|---|---|---|"]
        for r in sorted((r for r in rows if r["experiment"] == exp),
                        key=lambda r: (r["method"], r["label_noise"], r["loss"], r["adv_loss"])):
            lines.append(f"| {r['dataset']} | {r['method']} | {r['loss']} | {r['adv_loss']} | {r['extractor']} | "
                         f"{r['label_noise']:.0%} | {fmt(r['step'], 'd')} | {fmt(r['cond_acc'], '.3f')} | "
                         f"{fmt(r['classifier_fid'], '.2f')} |")
        lines.append("")
    (out / "results.md").write_text("\n".join(lines))


def plot_robustness(rows: List[dict], path: Path) -> Optional[Path]:
    """Accuracy vs label noise, one line per method, from the experiments named *robustness*."""
    pts = [r for r in rows if "robustness" in r["experiment"] and r["cond_acc"] is not None]
    if not pts:
        return None
    from lsgan.metrics.clustering import agg_figure

    fig = agg_figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    labels = {"coupled": "coupled (noisy-label extractor)", "cgan": "cGAN (noisy labels)"}
    for method in sorted({r["method"] for r in pts}):
        series = sorted((r["label_noise"], r["cond_acc"]) for r in pts if r["method"] == method)
        ax.plot([100 * x for x, _ in series], [100 * y for _, y in series], marker="o",
                label=labels.get(method, method))
    ax.set_xlabel("flipped training labels (%)")
    ax.set_ylabel("conditional accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("roots", nargs="*", default=["runs/coupled"])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--evaluate", action="store_true", help="evaluate runs that logged no metrics from last.ckpt")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=5000, help="generated samples per --evaluate")
    args = ap.parse_args()

    rows = []
    for run in find_runs(args.roots):
        row = describe(run, args.roots)
        row.update(last_logged(run / "metrics.csv"))
        if row["cond_acc"] is None and args.evaluate and (run / "checkpoints" / "last.ckpt").is_file():
            row.update(evaluate_checkpoint(run, args.device, args.n))
        rows.append(row)
    if not rows:
        raise SystemExit(f"no runs (config.yaml + metrics.csv) below {', '.join(args.roots)}")
    out = Path(args.out)
    write_tables(rows, out)
    curve = plot_robustness(rows, out / "robustness.png")
    print(f"{len(rows)} runs -> {out / 'results.md'}, {out / 'results.csv'}" + (f", {curve}" if curve else ""))


if __name__ == "__main__":
    main()
