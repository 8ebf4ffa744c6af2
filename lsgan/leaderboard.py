"""The equal-terms leaderboard: every method's recipe on one dataset, same budget, same evaluation.

    python -m lsgan.leaderboard dataset=mnist data.root=../shared/data seeds=3 budget_minutes=30

Each row is a recipe (``experiment=<row>``: coupled, clustergan, nemgan, slcgan, and the sngan and cgan
baselines) trained ``seeds`` times for ``budget_minutes`` of wall time on one thread each (``parallel`` runs at a
time), then evaluated by ``lsgan.evaluate`` with the same metrics, evaluator, reference split and number of
samples. The table (mean ± std over seeds, no best-of-N) goes to ``<out>/leaderboard_<dataset>.md`` with one
sample grid per row, a CSV beside it, and the console.

A board resumes: a run that finished training (its ``board.json``) is not trained again, one already
evaluated with the same ``n`` is not evaluated again. A run interrupted mid-training starts over, so every row
keeps exactly its budget. Each evaluated run's figures also go to a per-run record beside the table
(``<out>/leaderboard_<dataset>_runs.csv``); a run recorded there for the same budget and ``n`` is not run
again and the table folds the record, so a board can be finished in pieces, on several machines, or after its
run folders are gone.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Sequence

ROWS = ("coupled", "clustergan", "nemgan", "slcgan", "sngan", "cgan")
METRICS = ("cluster", "cond_acc", "variety", "classifier_fid", "classifier_prdc", "intra_fid")
# (header, column of lsgan.runs' table)
COLUMNS = (("ACC", "eval/cluster"), ("NMI", "eval/cluster/nmi"), ("ARI", "eval/cluster/ari"),
           ("cond. acc", "eval/cond_acc"), ("variety", "eval/variety"), ("classifier FID", "eval/classifier_fid"),
           ("precision", "eval/classifier_prdc/precision"), ("recall", "eval/classifier_prdc/recall"),
           ("intra-FID", "eval/intra_fid"), ("iterations", "eval/iteration"))
# The papers' own figure for the same dataset (their GPU budgets), shown beside each row.
PAPER = {
    "mnist": {"coupled": "cond. acc 0.72", "clustergan": "ACC 0.95", "nemgan": "h(x) ACC 0.961",
              "slcgan": "ACC 0.973"},
    "cifar10": {"coupled": "cond. acc 0.68, FID 29.71 (Inception)", "slcgan": "ACC 0.471"},
}
DEFAULTS = {"dataset": None, "seeds": "3", "budget_minutes": "30", "rows": ",".join(ROWS), "parallel": "2",
            "n": "10000", "runs": "runs/leaderboard", "out": "docs", "data.root": None}
# A per-run record's columns before the figures: which run, under which terms.
RECORD_KEYS = ("row", "seed", "budget_minutes", "n", "train_minutes", "device")
HELP = f"""usage: python -m lsgan.leaderboard dataset=NAME [key=value ...]

Train and evaluate every recipe on one dataset on equal terms; write the table.

keys (shown with their defaults):
  dataset=NAME            required: a dataset config (mnist, cifar10, ...)
  data.root=DIR           where the data is (passed to every run and evaluation)
  seeds=3                 seeds per row (0 .. seeds-1): mean ± std, no best-of-N
  budget_minutes=30       wall-clock training budget of every run, one thread each
  rows={DEFAULTS['rows']}
                          recipes (experiment=<row>); sngan and cgan are the baselines
  parallel=2              runs at a time (one core each)
  n=10000                 generated samples per evaluation
  runs=runs/leaderboard   where the runs go (<runs>/<dataset>/<row>/seed<k>)
  out=docs                where leaderboard_<dataset>.md / .csv, the per-run record
                          leaderboard_<dataset>_runs.csv and the grids go
  a.b=value               any other dotted key goes to every training run alike (e.g. model.g_width=32)

Metrics: {', '.join(METRICS)} (lsgan.evaluate; a metric that does not apply to a row is skipped).
Rerunning the same command resumes the board; a run in the per-run record (same budget and n) is not run
again, wherever it was run.

example:
  python -m lsgan.leaderboard dataset=mnist data.root=../shared/data seeds=3 budget_minutes=30
"""


class BoardError(ValueError):
    """A bad argument: one line naming it."""


def parse(argv: Sequence[str]) -> Dict[str, str]:
    """The board's keys; any other dotted ``key=value`` (e.g. ``model.g_width=32``) goes to every training run
    (the same for every row: equal terms), kept under ``extra`` as a list."""
    args: Dict = dict(DEFAULTS, extra=[])
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key not in DEFAULTS and "." in key.lstrip("+~"):
            args["extra"].append(arg)
            continue
        if not eq or key not in DEFAULTS:
            raise BoardError(f"{arg}: not a key=value of lsgan.leaderboard (keys: {', '.join(DEFAULTS)}, "
                             f"or a dotted key=value for every training run)")
        args[key] = value
    if not args["dataset"]:
        raise BoardError("dataset=: required (e.g. dataset=mnist)")
    for key in ("seeds", "parallel", "n"):
        if not args[key].isdigit() or int(args[key]) < 1:
            raise BoardError(f"{key}={args[key]}: need an integer >= 1")
    try:
        if float(args["budget_minutes"]) <= 0:
            raise ValueError
    except ValueError:
        raise BoardError(f"budget_minutes={args['budget_minutes']}: need a number > 0") from None
    unknown = [r for r in args["rows"].split(",") if r not in ROWS]
    if unknown:
        raise BoardError(f"rows={args['rows']}: {unknown[0]} is not a row; accepted: {', '.join(ROWS)}")
    from lsgan.compose import precheck_overrides
    from lsgan.errors import ConfigError

    for row in args["rows"].split(","):  # a wrong dataset or key: one line here, not a failure in every run started
        try:
            precheck_overrides([f"experiment={row}", f"dataset={args['dataset']}", *args["extra"]], check_keys=True)
        except ConfigError as exc:
            raise BoardError(str(exc)) from None
    return args


def run_dir(args: Dict[str, str], row: str, seed: int) -> Path:
    return Path(args["runs"]) / args["dataset"] / row / f"seed{seed}"


def _common(args: Dict[str, str]) -> List[str]:
    return [f"data.root={args['data.root']}"] if args["data.root"] else []


def train_one(args: Dict, row: str, seed: int) -> None:
    """Train one run for the budget unless it already finished; an interrupted one starts over."""
    where = run_dir(args, row, seed)
    if (where / "board.json").is_file():
        return
    if where.exists():
        shutil.rmtree(where)  # interrupted mid-training: the budget must be spent in one go
    cmd = [sys.executable, "-m", "lsgan.run", f"experiment={row}", f"dataset={args['dataset']}", f"seed={seed}",
           f"trainer.max_minutes={args['budget_minutes']}", f"run_dir={where}", "trainer.progress_bar=false",
           *_common(args), *args["extra"]]
    started = time.time()
    _call(cmd, where.parent / f"{where.name}.train.log")
    from lsgan.io import atomic_file

    with atomic_file(where / "board.json", "w") as fh:
        json.dump({"minutes": round((time.time() - started) / 60, 2), "command": cmd[1:], "device": device()}, fh)


def device() -> str:
    """The machine a run trained on (a wall-clock budget buys a different number of iterations on each): the CPU's
    model and its instruction set, which decides the precision ``trainer.precision=auto`` picks."""
    import platform

    import torch

    from lsgan.precision import native_bf16

    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model or 'CPU'} ({torch.backends.cpu.get_cpu_capability()}), {'bf16' if native_bf16('cpu') else 'fp32'}"


def evaluate_one(args: Dict[str, str], row: str, seed: int) -> None:
    where = run_dir(args, row, seed)
    marker = where / "eval" / "board"
    if marker.is_file() and marker.read_text().strip() == args["n"]:
        return
    cmd = [sys.executable, "-m", "lsgan.evaluate", f"ckpt={where / 'checkpoints' / 'last.ckpt'}",
           f"metrics=[{','.join(METRICS)}]", f"n={args['n']}", "report=false", "log_run=false", *_common(args)]
    _call(cmd, where.parent / f"{where.name}.eval.log", nothing_ok=True)  # a row none of the metrics applies to
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(args["n"] + "\n")


def ensure_evaluator(args: Dict, jobs: Sequence[tuple]) -> None:
    """Train the dataset's evaluator classifier once, before any run is evaluated (every row is judged by
    the same one); nothing to do for unlabelled data or when the cache has it."""
    import shlex

    from omegaconf import OmegaConf

    from lsgan.data.profile import profile_data
    from lsgan.metrics.resolve import evaluator_path, train_evaluator_command

    done = [run_dir(args, row, seed) for row, seed in jobs]
    done = [d for d in done if (d / "config.yaml").is_file()]
    if not done:
        return
    cfg = OmegaConf.load(done[0] / "config.yaml")
    if cfg.data.get("attr") is None and cfg.data.name.startswith("celeba"):
        return
    size = int(cfg.data.size)
    if os.path.isfile(os.path.expanduser(evaluator_path(cfg, size, profile_data(cfg.data).channels))):
        return
    command = shlex.split(train_evaluator_command(cfg, size))
    _call([sys.executable, *command[1:]], Path(args["runs"]) / args["dataset"] / "evaluator.log")


def _call(cmd: List[str], log: Path, nothing_ok: bool = False) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
    if rc != 0 and not (nothing_ok and "nothing measured" in log.read_text()):
        raise RuntimeError(f"{' '.join(cmd[1:4])} ... failed (exit {rc}); its output: {log}")


def record_path(args: Dict[str, str]) -> Path:
    return Path(args["out"]) / f"leaderboard_{args['dataset']}_runs.csv"


def _record_rows(args: Dict[str, str]) -> List[Dict[str, str]]:
    """Every row of the per-run record, whatever its terms."""
    import csv

    path = record_path(args)
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _same_terms(r: Dict[str, str], args: Dict[str, str]) -> bool:
    """Whether a recorded run was made under this board's terms (budget and ``n``)."""
    try:
        same_budget = float(r.get("budget_minutes")) == float(args["budget_minutes"])
    except (TypeError, ValueError):
        return False
    return same_budget and r.get("n") == args["n"]


def read_record(args: Dict[str, str]) -> Dict[tuple, Dict[str, str]]:
    """The recorded runs of this board's terms, keyed by (row, seed)."""
    return {(r["row"], int(r["seed"])): r for r in _record_rows(args) if _same_terms(r, args)}


_record_lock = threading.Lock()


def record_one(args: Dict[str, str], row: str, seed: int) -> None:
    """Add one evaluated run's figures to the per-run record (rewritten whole, atomically; other terms' rows
    are kept)."""
    import csv
    import io

    from lsgan import runs as R
    from lsgan.io import atomic_file

    where = run_dir(args, row, seed)
    figures = R.run_row(where, where)
    train = json.loads((where / "board.json").read_text())
    entry = {"row": row, "seed": str(seed), "budget_minutes": args["budget_minutes"], "n": args["n"],
             "train_minutes": str(train.get("minutes", "")), "device": train.get("device", ""),
             **{c: figures.get(c, "") for _, c in COLUMNS}}
    with _record_lock:
        path = record_path(args)
        kept = [r for r in _record_rows(args)
                if not (r["row"] == row and r["seed"] == str(seed) and _same_terms(r, args))]
        fields = [*RECORD_KEYS, *[c for _, c in COLUMNS]]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        order = {name: i for i, name in enumerate(ROWS)}
        for r in sorted([*kept, entry], key=lambda r: (order.get(r["row"], len(ROWS)), int(r["seed"]),
                                                      float(r.get("budget_minutes") or 0), r.get("n", ""))):
            writer.writerow(r)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, "w") as fh:
            fh.write(buf.getvalue())


def board_rows(args: Dict[str, str], record: Dict[tuple, Dict[str, str]]) -> List[dict]:
    """The rows (one per recipe, seeds folded into mean ± std by ``lsgan.runs.group``), from the per-run
    record: every recipe and seed recorded under these terms, so a board run for some rows or seeds still
    writes the whole table."""
    from lsgan import runs as R

    asked = args["rows"].split(",")
    rows = []
    for row in [r for r in ROWS if r in asked or any(name == r for name, _ in record)]:
        table = [r for (name, _), r in sorted(record.items()) if name == row]
        folded = R.group(table, ["row"], [c for _, c in COLUMNS]) if table else [{"row": row, "n": "0"}]
        folded[0]["paper"] = PAPER.get(args["dataset"], {}).get(row, "-")
        rows.append(folded[0])
    return rows


def render(args: Dict[str, str], rows: List[dict], style: str) -> str:
    from lsgan import runs as R

    named = [{**{h: r.get(c) for h, c in COLUMNS}, "method": r["row"], "seeds": r["n"], "paper": r["paper"]}
             for r in rows]
    headers = ["method", "seeds", *[h for h, _ in COLUMNS], "paper"]
    return R.render(named, headers, style, folded=[h for h, _ in COLUMNS])


def write(args: Dict[str, str], rows: List[dict], record: Dict[tuple, Dict[str, str]]) -> Path:
    from lsgan.io import atomic_file

    out = Path(args["out"])
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    d = args["dataset"]
    grids = []
    for row in [r["row"] for r in rows]:
        grid = run_dir(args, row, 0) / "samples" / "latest.png"
        if grid.is_file():
            shutil.copyfile(grid, figures / f"leaderboard_{d}_{row}.png")
        if (figures / f"leaderboard_{d}_{row}.png").is_file():  # also one written where seed 0 ran
            grids.append(f"**{row}**\n\n![{row}](figures/leaderboard_{d}_{row}.png)\n")
    devices = "; ".join(sorted({r.get("device") or "not recorded" for r in record.values()})) or "-"
    seeds = max([int(args["seeds"]), *(seed + 1 for _, seed in record)])
    header = (f"# Leaderboard: {d}\n\nEqual terms: the training split of `dataset={d}`; every run "
              f"{args['budget_minutes']} minutes of wall time on one CPU thread (the iterations each reached are a "
              f"column; trained on: {devices}); the seeds column says how many seeds each row has, mean ± std, no "
              f"best-of-N; every run evaluated by `lsgan.evaluate` on {args['n']} generated samples with the same "
              f"evaluator classifier and reference split (docs/evaluation.md). ACC / NMI / ARI: the method's own "
              f"clusterer on the evaluation split (Hungarian); cond. acc, variety, classifier FID, precision / recall, "
              f"intra-FID: the generated images, on the evaluator's features. `-`: the metric does not apply to that "
              f"row. The paper column is the paper's own figure at its (GPU) budget. Every run's figures: "
              f"`leaderboard_{d}_runs.csv`."
              f"\n\nReproduce (a rerun skips the runs already in that file):\n\n```\npython -m lsgan.leaderboard "
              f"dataset={d}{' data.root=' + args['data.root'] if args['data.root'] else ''} seeds={seeds} "
              f"budget_minutes={args['budget_minutes']}\n```\n\n")
    md = out / f"leaderboard_{d}.md"
    with atomic_file(md, "w") as fh:
        fh.write(header + render(args, rows, "markdown") + "\n\n## Samples (seed 0)\n\n" + "\n".join(grids))
    with atomic_file(out / f"leaderboard_{d}.csv", "w") as fh:
        fh.write(render(args, rows, "csv") + "\n")
    return md


def main(argv: Sequence[str] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(HELP)
        return 0
    try:
        args = parse(argv)
    except BoardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    recorded = read_record(args)
    jobs = [(row, seed) for seed in range(int(args["seeds"])) for row in args["rows"].split(",")
            if (row, seed) not in recorded]
    try:
        with ThreadPoolExecutor(int(args["parallel"])) as pool:
            for _ in pool.map(lambda job: train_one(args, *job), jobs):
                pass
            ensure_evaluator(args, jobs)
            for _ in pool.map(lambda job: (evaluate_one(args, *job), record_one(args, *job)), jobs):
                pass
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    record = read_record(args)
    rows = board_rows(args, record)
    print(render(args, rows, "text"))
    print(f"wrote {write(args, rows, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
