"""Accuracy against training minutes: every checkpoint of one or more runs, evaluated, one line per run.

    python benchmarks/acc_vs_minutes.py runs/slcgan-cifar10 runs/clustergan-cifar10 --root ../shared/data \\
        --out docs/figures/acc_vs_minutes_cifar10.png
    python benchmarks/acc_vs_minutes.py runs/a runs/b --label "slcgan K=10" --label "slcgan K=50" \\
        --metrics cluster cond_acc --n 1000 --root ../shared/data --out acc.png

Each run dir's ``checkpoints/iter_*.ckpt`` and ``last.ckpt`` are evaluated in-process through
:class:`lsgan.metrics.suite.MetricSuite`, the same code ``lsgan.evaluate`` runs; nothing is written
inside the run dirs. Metrics (``--metrics``, default ``cluster``):

* ``cluster``: the method's clusterer's Hungarian ACC on the whole evaluation split (the test split).
  A method without a clusterer (coupled conditions on a feature vector; sngan and cgan have no
  ``condition_of``) is skipped with a one-line note;
* ``cond_acc``: conditional accuracy of ``--n`` generated samples, judged by the dataset's evaluator
  classifier (``lsgan.train_evaluator``).

**Minutes** are the training time the checkpoint records: Lightning's Timer state, which lsgan's trainer has
whenever ``trainer.max_minutes`` is set (``callbacks.Timer.time_elapsed.train``, seconds from the first
training step to the save, summed over resumes; setup before the first step, such as data loading or a
feature cache, is not counted). run.log and metrics.csv carry no times. A checkpoint without a Timer state
falls back to its file's modification time minus that of the run's ``config.yaml`` (written when the run
starts); the table's ``source`` column says which one each row used (``timer`` or ``mtime``).

Each checkpoint's numbers are cached in a JSON file (``--cache``, default: the picture's path with
``.json``), keyed by the checkpoint's path, size and modification time, so a rerun evaluates only new or
rewritten checkpoints (a skipped metric is tried again, on one checkpoint per run); it is written
atomically after every checkpoint evaluated. ``last.ckpt`` is left out when an
``iter_*.ckpt`` holds the same iteration. Prints a table (run, checkpoint, iteration, minutes, source,
metrics) and writes one PNG: x minutes, y the metric, a panel per metric, a line per run labelled by its
method (``--label``, once per run in order, overrides).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

METRICS = ("cluster", "cond_acc")
CACHE_VERSION = 1


class UsageError(Exception):
    """A mistake the user can fix: printed as one line, exit status 2."""


# ------------------------------------------------------------------ pure pieces (no torch)
def iteration_of_name(name: str) -> Optional[int]:
    m = re.fullmatch(r"iter_(\d+)\.ckpt", name)
    return int(m.group(1)) if m else None


def checkpoints_of(run_dir: Path) -> List[Path]:
    """The run's iter_*.ckpt in iteration order, then last.ckpt (when present)."""
    ckpt_dir = run_dir / "checkpoints"
    iters = sorted((p for p in ckpt_dir.glob("iter_*.ckpt") if iteration_of_name(p.name) is not None),
                   key=lambda p: iteration_of_name(p.name))
    last = ckpt_dir / "last.ckpt"
    return iters + ([last] if last.is_file() else [])


def minutes_of(blob: dict, ckpt: Path, run_dir: Path) -> tuple:
    """(minutes, source) of a checkpoint: the Timer's recorded training time ("timer"), else the
    checkpoint file's mtime minus the run's config.yaml mtime ("mtime"), else (None, "none")."""
    timer = (blob.get("callbacks") or {}).get("Timer") or {}
    seconds = (timer.get("time_elapsed") or {}).get("train")
    if isinstance(seconds, (int, float)) and seconds >= 0:
        return float(seconds) / 60.0, "timer"
    config = run_dir / "config.yaml"
    if config.is_file():
        return max(0.0, (ckpt.stat().st_mtime - config.stat().st_mtime) / 60.0), "mtime"
    return None, "none"


def metric_key(name: str, n: int) -> str:
    """The cache's name for a metric: cluster reads the whole evaluation split, others depend on n."""
    return name if name == "cluster" else f"{name}@n={n}"


def file_stamp(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def load_cache(path: Path) -> Dict[str, dict]:
    """{checkpoint path: entry}; an absent file is an empty cache, an unreadable one a UsageError."""
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--cache {path}: unreadable ({exc}); delete it or give another path") from None
    if not isinstance(doc, dict) or doc.get("version") != CACHE_VERSION or not isinstance(doc.get("checkpoints"), dict):
        raise UsageError(f"--cache {path}: not a cache this script wrote (version {CACHE_VERSION}); "
                         f"delete it or give another path")
    return doc["checkpoints"]


def save_cache(path: Path, entries: Dict[str, dict]) -> None:
    from lsgan.io import atomic_file

    text = json.dumps({"version": CACHE_VERSION, "checkpoints": entries}, indent=1, sort_keys=True)
    with atomic_file(path, "w") as fh:
        fh.write(text + "\n")


def cached(entries: Dict[str, dict], ckpt: Path) -> Optional[dict]:
    """The cache entry of this checkpoint file, when it was made from the file as it is now."""
    entry = entries.get(str(ckpt))
    if entry is None or entry.get("stamp") != file_stamp(ckpt):
        return None
    return entry


def default_labels(methods: Sequence[str], run_dirs: Sequence[Path]) -> List[str]:
    """Each run's method, with its folder name added where two runs share a method."""
    return [m if methods.count(m) == 1 else f"{m} ({d.name})" for m, d in zip(methods, run_dirs)]


# ------------------------------------------------------------------ evaluation
def clusterer_missing(method) -> Optional[str]:
    """Why ``cluster`` does not apply to the method (None when it has a clusterer)."""
    import torch

    if method.accepts_exemplars:
        return f"method={method.mcfg.name} conditions on a feature vector, it has no clusterer"
    try:
        method.condition_of(torch.zeros(1, *method.data_info.shape, device=method.device))
    except NotImplementedError as exc:
        return " ".join(str(exc).split())
    return None


def evaluate_checkpoint(ckpt: Path, names: Sequence[str], n: int, overrides: Sequence[str], device: str,
                        dm_cache: dict) -> Dict[str, dict]:
    """{metric_key: {"value", ...} | {"skipped": reason}} of one checkpoint, through the metric suite."""
    from lsgan.loading import load_datamodule, load_method, resolve_device
    from lsgan.metrics.suite import MetricSuite

    method, cfg = load_method(ckpt, resolve_device(device), overrides)
    out: Dict[str, dict] = {}
    todo = list(names)
    if "cluster" in todo:
        reason = clusterer_missing(method)
        if reason is not None:
            out[metric_key("cluster", n)] = {"skipped": reason}
            todo.remove("cluster")
    if not todo:
        return out
    key = (str(ckpt.parent.parent), tuple(overrides))
    if key not in dm_cache:  # the run's data, loaded once for all its checkpoints
        dm_cache.clear()
        dm_cache[key] = load_datamodule(cfg)
    suite = MetricSuite(method, dm_cache[key], cfg, evaluator="auto" if "cond_acc" in todo else None, log=None)
    for name, res in suite.compute(todo, n).items():
        if name not in todo:
            continue  # a companion (variety beside cond_acc) the picture does not draw
        keep = {"skipped": res["skipped"]} if "skipped" in res else {
            k: res[k] for k in ("value", "nmi", "balanced_acc", "seconds") if k in res}
        out[metric_key(name, n)] = keep
    return out


def read_point(ckpt: Path, run_dir: Path) -> dict:
    """Iteration, minutes and their source, read from the checkpoint file."""
    from lsgan.resume import read_checkpoint

    blob = read_checkpoint(ckpt, key="checkpoint", training=False)
    minutes, source = minutes_of(blob, ckpt, run_dir)
    return {"iteration": int((blob.get("lsgan") or {}).get("iteration", blob.get("global_step", 0))),
            "minutes": minutes, "source": source}


# ------------------------------------------------------------------ picture and table
def draw(rows: List[dict], names: Sequence[str], n: int, title: str, out: Path) -> None:
    from lsgan.io import atomic_path
    from lsgan.metrics.clustering import agg_figure

    fig = agg_figure(figsize=(5.2 * len(names), 3.8))
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        k = metric_key(name, n)
        for label in dict.fromkeys(r["label"] for r in rows):
            pts = sorted((r["minutes"], r["metrics"][k]["value"]) for r in rows
                         if r["label"] == label and r["minutes"] is not None and "value" in r["metrics"].get(k, {}))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set_xlabel("training minutes")
        ax.set_ylabel({"cluster": "clustering ACC (Hungarian, test split)",
                       "cond_acc": f"conditional accuracy (n = {n})"}[name])
        ax.set_xlim(left=0)
        ax.set_ylim(0, 1)  # both are accuracies: a zoomed axis makes a 0.01 change look like a trend
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120)


def table(rows: List[dict], names: Sequence[str], n: int) -> str:
    head = ["run", "checkpoint", "iteration", "minutes", "source"] + list(names)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["label"], r["checkpoint"], str(r["iteration"]),
                 "?" if r["minutes"] is None else f"{r['minutes']:.1f}", r["source"]]
        for name in names:
            res = r["metrics"].get(metric_key(name, n), {})
            cells.append(f"{res['value']:.4f}" if "value" in res else "skipped" if "skipped" in res else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------ command line
def parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run dirs (each with checkpoints/ and config.yaml)")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    p.add_argument("--cache", type=Path, default=None, help="the results cache (default: --out with .json)")
    p.add_argument("--metrics", nargs="+", default=["cluster"], choices=METRICS)
    p.add_argument("--label", action="append", default=None, help="a run's line label, once per run in order")
    p.add_argument("--n", type=int, default=1000, help="generated samples for cond_acc")
    p.add_argument("--root", default=None, help="data.root for the runs' data (default: as each run saved it)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--title", default="", help="the picture's title")
    a = p.parse_args(argv)
    if a.label is not None and len(a.label) != len(a.runs):
        raise UsageError(f"--label: given {len(a.label)} times for {len(a.runs)} runs; give one per run, in order")
    if a.n < 2:
        raise UsageError(f"--n {a.n}: need at least 2 generated samples")
    for d in a.runs:
        if not (d / "checkpoints").is_dir():
            raise UsageError(f"{d}: not a run dir (no checkpoints/ folder)")
        if not checkpoints_of(d):
            raise UsageError(f"{d}: no iter_*.ckpt or last.ckpt in its checkpoints/ folder")
    if a.out.suffix.lower() != ".png":
        raise UsageError(f"--out {a.out}: give a .png file name")
    return a


def run_dir_method(run_dir: Path) -> str:
    from omegaconf import OmegaConf

    cfg_file = run_dir / "config.yaml"
    if not cfg_file.is_file():
        return run_dir.name
    return str(OmegaConf.select(OmegaConf.load(cfg_file), "method.name", default=run_dir.name))


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    a = parse(argv)
    run_dirs = [d.expanduser().absolute() for d in a.runs]
    methods = [run_dir_method(d) for d in run_dirs]
    labels = a.label or default_labels(methods, run_dirs)
    cache_path = a.cache or a.out.with_suffix(".json")
    entries = load_cache(cache_path)
    overrides = [f"data.root={a.root}"] if a.root else []
    dm_cache: dict = {}
    rows: List[dict] = []
    for run_dir, label in zip(run_dirs, labels):
        points: Dict[int, Path] = {}
        skips: Dict[str, str] = {}  # metric: why it does not apply to this run
        for ckpt in checkpoints_of(run_dir):
            entry = cached(entries, ckpt) or {}
            if not entry:
                entry = {"stamp": file_stamp(ckpt), **read_point(ckpt, run_dir), "metrics": {}}
            if entry["iteration"] in points:  # last.ckpt saved at an iteration an iter_*.ckpt holds
                continue
            points[entry["iteration"]] = ckpt
            # a skip is not taken from the cache (an evaluator trained since makes cond_acc apply), but its
            # reason, about the method or the data, holds for every checkpoint of the run
            missing = [m for m in a.metrics if "value" not in entry["metrics"].get(metric_key(m, a.n), {})]
            for m in [m for m in missing if m in skips]:
                entry["metrics"][metric_key(m, a.n)] = {"skipped": skips[m]}
                missing.remove(m)
            if missing:
                print(f"[acc_vs_minutes] {label}: evaluating {ckpt.name} (iteration {entry['iteration']}): "
                      f"{', '.join(missing)}", flush=True)
                entry["metrics"].update(evaluate_checkpoint(ckpt, missing, a.n, overrides, a.device, dm_cache))
                entries[str(ckpt)] = entry
                save_cache(cache_path, entries)  # after each checkpoint: an interrupted run keeps what it measured
            for m in a.metrics:
                res = entry["metrics"].get(metric_key(m, a.n), {})
                if "skipped" in res and m not in skips:
                    print(f"[acc_vs_minutes] {label}: {m} skipped: {res['skipped']}", flush=True)
                    skips[m] = res["skipped"]
            rows.append({"label": label, "run": str(run_dir), "checkpoint": ckpt.name, **entry})
    print(table(rows, a.metrics, a.n))
    draw(rows, a.metrics, a.n, a.title, a.out)
    print(f"[acc_vs_minutes] wrote {a.out} (cache {cache_path})")
    return rows


if __name__ == "__main__":
    from lsgan.errors import CLIError, ConfigError, NoSpaceError

    try:
        main()
    except (UsageError, CLIError, ConfigError, NoSpaceError) as exc:  # a checkpoint, data root or disk to fix
        print(f"acc_vs_minutes: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(2)
