"""Collect NEMGAN sweeps into tables: one row per run (evaluated from its last checkpoint) and
one row per setting (mean ± std over seeds).

    python experiments/nemgan/collect.py runs/nemgan/imbalance_04 [more sweep dirs] \
        [--out experiments/nemgan/results] [--data-root ../shared/data] [--n-gen 2000] [--device cpu]

Every ``<run>/checkpoints/last.ckpt`` of method=nemgan below the folders is rebuilt with
``lsgan.loading.load_method`` and scored by ``lsgan.reports.nemgan.evaluate_nemgan`` (the metric
suite's numbers): h(x) accuracy / NMI / ARI on the test split, conditional accuracy (modes evenly)
and classifier FID (the 10-class MNIST evaluator, cached or trained once by ``train_and_cache``),
ring8 modes and high-quality %, stacked-MNIST modes. Scores are cached in ``<run>/nemgan_eval.json``
(reused while the checkpoint's iteration, n_gen and the protocol are unchanged). Writes
``<out>.md`` and ``<out>.csv``; the setting columns are the run's Hydra overrides minus the seed, and
the sweeps' settings (classes, ratio, P_Y, k, loss, semi-supervision) read from its saved config, each
shown when it differs between the collected runs.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/: the shared _common module
from _common import method_runs, read_cached, write_cached  # noqa: E402

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

EVAL_FILE = "nemgan_eval.json"
PROTOCOL = "metric_suite"  # how the cached numbers were computed (earlier caches: evaluate_nemgan's own code)
METRICS = ["h_acc", "h_bal_acc", "h_nmi", "cond_acc", "classifier_fid", "modes", "high_quality", "stacked_kl"]
# keys that name the setting of a run (everything else in the overrides is shared by the sweep)
IGNORED_KEYS = {"seed", "data.root", "hydra.sweep.dir", "logger", "method", "trainer.progress_bar", "experiment"}
# what the conf/experiment/nemgan_* sweeps set or sweep, read from the run's config (an experiment file's
# fixed values are not in its overrides); a column only where the collected runs differ
CONFIG_KEYS = ("data.name", "data.classes", "data.class_ratio", "prior.k", "prior.weights", "loss.name",
               "method.adv_loss", "method.semi_fraction")


def run_overrides(run: Path) -> Dict[str, str]:
    """The run's command-line overrides (``lsgan.runs.read_overrides``), key -> value."""
    from lsgan.runs import read_overrides

    return dict(item.split("=", 1) for item in read_overrides(run) if "=" in item)


def run_setting(overrides: Dict[str, str], cfg: dict) -> Dict[str, str]:
    """The run's setting: its overrides minus IGNORED_KEYS, and CONFIG_KEYS from its saved config
    (which win over an override of the same key or group, e.g. ``loss=no_h1`` is ``loss.name``)."""
    def get(key: str):
        node = cfg
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    def fmt_value(v) -> str:
        return "–" if v is None else json.dumps(v, separators=(",", ":")) if isinstance(v, list) else str(v)

    shadowed = set(CONFIG_KEYS) | {k.rsplit(".", 1)[0] for k in CONFIG_KEYS if k.endswith(".name")}
    setting = {k: v for k, v in overrides.items() if k not in IGNORED_KEYS and k not in shadowed}
    setting.update({k: fmt_value(get(k)) for k in CONFIG_KEYS})
    return setting


def evaluate_run(run: Path, iteration: int, args, evaluators: Dict[str, object]) -> Dict[str, object]:
    from lsgan.loading import load_datamodule, load_method
    from lsgan.reports.nemgan import evaluate_nemgan, mnist_evaluator

    ckpt = run / "checkpoints" / "last.ckpt"
    cached = run / EVAL_FILE
    old = read_cached(cached, iteration=iteration, n_gen=args.n_gen, protocol=PROTOCOL)
    if old is not None:
        return old
    method, cfg = load_method(ckpt, args.device, [f"data.root={args.data_root}"] if args.data_root else [])
    dm = load_datamodule(cfg)
    evaluator, class_ids = None, None
    if cfg.data.name in ("mnist", "stacked_mnist"):
        if "mnist" not in evaluators:
            evaluators["mnist"] = mnist_evaluator(cfg.data.root, args.cache_dir).to(args.device)
        evaluator = evaluators["mnist"]
        class_ids = list(cfg.data.classes) if cfg.data.classes is not None else None
    numbers = evaluate_nemgan(method, dm, evaluator, class_ids, n_gen=args.n_gen)
    result = {"iteration": iteration, "n_gen": args.n_gen, "protocol": PROTOCOL, "numbers": numbers}
    write_cached(cached, result)
    return result


def fmt(values: List[float]) -> str:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.3f}"
    return f"{np.mean(vals):.3f} ± {np.std(vals):.3f}"


def main() -> None:
    p = argparse.ArgumentParser(description="Collect NEMGAN sweeps into tables")
    p.add_argument("roots", nargs="+", help="sweep folders (e.g. runs/nemgan/imbalance_04)")
    p.add_argument("--out", default=str(REPO / "experiments" / "nemgan" / "results"))
    p.add_argument("--data-root", default=None, help="override data.root saved in the checkpoints")
    p.add_argument("--cache-dir", default=None, help="evaluator cache (default: metrics.cache_dir, i.e. $LSGAN_CACHE or ~/.cache/lsgan)")
    p.add_argument("--n-gen", type=int, default=2000)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    evaluators: Dict[str, object] = {}
    rows = []
    for run, info in method_runs(args.roots, "nemgan"):
        res = evaluate_run(run, info["iteration"], args, evaluators)
        ov = run_overrides(run)
        setting = run_setting(ov, info["cfg"])
        rows.append({"run": str(run), "seed": ov.get("seed", "0"), "iteration": res["iteration"],
                     "setting": setting, **res["numbers"]})
        print(f"{run.name}: {json.dumps(res['numbers'])}", flush=True)

    # only the keys that differ between runs identify a setting
    keys = sorted({k for r in rows for k in r["setting"]})
    varying = [k for k in keys if len({r["setting"].get(k) for r in rows}) > 1]
    metrics = [m for m in METRICS if any(m in r for r in rows)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(varying + ["seed", "iteration"] + metrics + ["run"])
        for r in rows:
            w.writerow([r["setting"].get(k, "") for k in varying] + [r["seed"], r["iteration"]]
                       + [r.get(m, "") for m in metrics] + [r["run"]])
    groups: Dict[tuple, List[dict]] = defaultdict(list)
    for r in rows:
        groups[tuple(r["setting"].get(k, "") for k in varying)].append(r)
    lines = [f"Sweeps: {', '.join(args.roots)} ({len(rows)} runs; mean ± std over seeds)", "",
             "| " + " | ".join(varying + ["runs"] + metrics) + " |", "|" + "---|" * (len(varying) + 1 + len(metrics))]
    for key, group in groups.items():
        lines.append("| " + " | ".join(list(key) + [str(len(group))]
                                       + [fmt([g.get(m) for g in group]) for m in metrics]) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
