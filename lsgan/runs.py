"""One table of every run under a folder: ``python -m lsgan.runs [DIR ...] [--csv OUT]``.

A run is a folder holding the ``config.yaml`` that ``lsgan.run`` writes. Each row names the run's
method and dataset, the overrides it was started with (``overrides.yaml``, written by the CLI;
empty for runs started from Python or before it existed), its last logged iteration and the last
value of each evaluation metric logged during training (``metrics.every``) from ``metrics.csv``.
Losses are left out: they are the training curves, not results.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

import yaml

FIXED = ("run", "method", "dataset", "iteration", "overrides")


def find_runs(roots: Iterable[Path]) -> List[Path]:
    """Every run folder at or below ``roots`` (a folder with lsgan's ``config.yaml``), sorted."""
    # a run dir also has metrics.csv or checkpoints/ (Hydra's .hydra/config.yaml has neither)
    return sorted({cfg.parent for root in map(Path, roots) for cfg in root.rglob("config.yaml")
                   if (cfg.parent / "metrics.csv").is_file() or (cfg.parent / "checkpoints").is_dir()})


def last_metrics(metrics_csv: Path) -> Dict[str, str]:
    """{"iteration": last step, metric column: its last non-empty value} of a run's metrics.csv."""
    from lsgan.metrics.suite import METRICS  # the canonical metric names

    out: Dict[str, str] = {}
    if not metrics_csv.is_file():
        return out
    with open(metrics_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("step"):
                out["iteration"] = row["step"]
            out.update({k: v for k, v in row.items() if k and v and k.split("/")[0] in METRICS})
    return out


def run_row(run: Path, root: Path) -> Dict[str, str]:
    cfg = yaml.safe_load((run / "config.yaml").read_text()) or {}
    overrides_file = run / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    row = {"run": str(run.relative_to(root)) if run != root else ".",
           "method": str((cfg.get("method") or {}).get("name", "?")),
           "dataset": str((cfg.get("data") or {}).get("name", "?")),
           "iteration": "", "overrides": " ".join(overrides or [])}
    row.update(last_metrics(run / "metrics.csv"))
    return row


def table(roots: Sequence[Path]) -> List[Dict[str, str]]:
    """One row per run under ``roots`` (paths relative to the root each was found under)."""
    return [run_row(run, root) for root in map(Path, roots) for run in find_runs([root])]


def columns(rows: List[Dict[str, str]]) -> List[str]:
    extra = sorted({k for r in rows for k in r} - set(FIXED))
    return list(FIXED) + extra


def _short(value: str) -> str:
    try:
        return f"{float(value):.4g}" if "." in value or "e" in value else value
    except ValueError:
        return value


def format_table(rows: List[Dict[str, str]]) -> str:
    cols = columns(rows)
    cells = [cols] + [[_short(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cols))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in cells)


def main(argv: Sequence[str] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lsgan.runs", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="*", default=["runs"], help="folders to scan (default: runs)")
    parser.add_argument("--csv", metavar="OUT", help="also write the table as CSV to OUT")
    args = parser.parse_args(argv)
    missing = [d for d in args.dirs if not Path(d).is_dir()]
    if missing:
        print(f"error: not a folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    rows = table([Path(d) for d in args.dirs])
    if not rows:
        print(f"no runs (folders with lsgan's config.yaml) under {', '.join(args.dirs)}", file=sys.stderr)
        return 1
    print(format_table(rows))
    if args.csv:
        from lsgan.io import atomic_file

        with atomic_file(args.csv, "w") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns(rows), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
