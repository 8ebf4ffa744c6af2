"""One table of every run under a folder: ``python -m lsgan.runs [DIR ...] [--metrics A,B] [--group-by KEYS]
[--csv | --markdown]``.

A run is a folder holding the ``config.yaml`` that ``lsgan.run`` writes. Each row names the run's method and
dataset, the overrides it was started with (``overrides.yaml``, written by the CLI, else Hydra's
``.hydra/overrides.yaml``; empty for runs started from Python), its last logged iteration, the last value of each
metric logged during training (``metrics.every``, from ``metrics.csv``; losses are the training curves, not
results, and are left out) and, as ``eval/<metric>`` columns, the numbers of its latest ``lsgan.evaluate``
(``eval/metrics.json``, or ``eval/<checkpoint>/metrics.json``: the one at the highest iteration, then the newest),
with ``eval/iteration`` the iteration that evaluation describes. A metric that was skipped has an empty cell.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import statistics
import sys
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence

import yaml

FIXED = ("run", "method", "dataset", "iteration", "overrides")
EVAL = "eval/"  # lsgan.evaluate's numbers, named as it logs them into the run's W&B / TensorBoard
EVAL_ITERATION = EVAL + "iteration"
DIGITS = 3
NUMBERS = (f"Numbers: {DIGITS} significant digits, never fewer than the integer part (0.9123 -> 0.912, "
           "0.001234 -> 0.00123, 23.46 -> 23.5, 181.9 -> 182, 6.0 -> 6); a std has its mean's decimals. "
           "An empty cell ('-'; nothing in CSV): no number (the metric was skipped, not computed, or not finite).")


# --------------------------------------------------------------------------- reading a run
def find_runs(roots: Iterable[Path]) -> List[Path]:
    """Every run folder at or below ``roots`` (a folder with lsgan's ``config.yaml``), sorted."""
    # a run dir also has metrics.csv or checkpoints/ (Hydra's .hydra/config.yaml has neither)
    return sorted({cfg.parent for root in map(Path, roots) for cfg in root.rglob("config.yaml")
                   if (cfg.parent / "metrics.csv").is_file() or (cfg.parent / "checkpoints").is_dir()})


class UnreadableFile(ValueError):
    """A run's file that cannot be parsed (hand-edited, cut short, another program's): its run is left out."""


def _yaml(path: Path, kind: type):
    """``path`` parsed as YAML holding a ``kind`` (empty: an empty one), or UnreadableFile naming it."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError: not UTF-8 text
        raise UnreadableFile(f"{path}: not readable YAML ({' '.join(str(exc).split())[:100]})") from None
    if not isinstance(doc, (kind, type(None))):
        raise UnreadableFile(f"{path}: holds a {type(doc).__name__}, not a {kind.__name__}")
    return doc or kind()


def read_config(run: Path) -> dict:
    """The run's ``config.yaml`` as a plain dict, in today's spelling (so an old run groups with new ones)."""
    from lsgan.config import upgrade_saved_config

    return upgrade_saved_config(_yaml(Path(run) / "config.yaml", dict))


def read_overrides(run: Path) -> List[str]:
    """The command line's overrides: the CLI's ``overrides.yaml``, else Hydra's copy (a run made before it)."""
    for path in (Path(run) / "overrides.yaml", Path(run) / ".hydra" / "overrides.yaml"):
        if path.is_file():
            return [str(o) for o in _yaml(path, list)]
    return []


def config_value(cfg: dict, key: str) -> Optional[str]:
    """The dotted ``key`` of a config as text (a config group's node: its ``name``); None when it has no such key."""
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, dict):
        node = node.get("name")
    return node if isinstance(node, str) else json.dumps(node, separators=(",", ":"))


def last_metrics(metrics_csv: Path) -> Dict[str, str]:
    """{"iteration": last step, metric column: its last non-empty value} of a run's metrics.csv."""
    from lsgan.metrics.suite import METRICS  # the canonical metric names

    out: Dict[str, str] = {}
    if not Path(metrics_csv).is_file():
        return out
    try:
        with open(metrics_csv, newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("step"):
                    out["iteration"] = str(int(float(row["step"])))
                out.update({k: v for k, v in row.items() if k and v and k.split("/")[0] in METRICS})
    except (OSError, ValueError, csv.Error) as exc:  # ValueError: not UTF-8 text, or a step that is not a number
        raise UnreadableFile(f"{metrics_csv}: not a readable metrics CSV ({' '.join(str(exc).split())[:100]})") from None
    return out


def latest_eval(run: Path) -> Optional[dict]:
    """The run's latest ``lsgan.evaluate`` output (metrics.json's dict): highest iteration, then newest file."""
    found = []
    for path in [Path(run) / "eval" / "metrics.json", *sorted((Path(run) / "eval").glob("*/metrics.json"))]:
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:  # written atomically, so only a hand-edited file gets here
            print(f"warning: {path}: not readable JSON ({exc}); left out", file=sys.stderr)
            continue
        found.append(((int(doc.get("iteration") or 0), path.stat().st_mtime), doc))
    return max(found, key=lambda item: item[0])[1] if found else None


def eval_columns(doc: dict) -> Dict[str, str]:
    """{"eval/iteration", "eval/<metric>[/<key>]": value} of a metrics.json dict; a skipped metric's cell is empty."""
    from lsgan.metrics.results import flatten_scalars  # the same numbers lsgan.evaluate logs

    results = doc.get("metrics") or {}
    row = {EVAL + name: "" for name in results}  # skipped, or no finite value: never a number
    row.update({EVAL + key: repr(value) for key, value in flatten_scalars(results).items()})
    row[EVAL_ITERATION] = str(doc.get("iteration", ""))
    return row


def run_row(run: Path, root: Path, config_keys: Sequence[str] = ()) -> Dict[str, str]:
    """One run's row (every value as text); ``config_keys``: dotted keys of its config added as columns."""
    cfg = read_config(run)
    row = {"run": str(run.relative_to(root)) if run != root else ".",
           "method": config_value(cfg, "method") or "?", "dataset": config_value(cfg, "data") or "?",
           "iteration": "", "overrides": " ".join(read_overrides(run))}
    row.update(last_metrics(run / "metrics.csv"))
    doc = latest_eval(run)
    if doc is not None:
        row.update(eval_columns(doc))
    for key in config_keys:
        value = config_value(cfg, key)
        if value is not None:
            row[key] = value
    return row


def table(roots: Sequence[Path], config_keys: Sequence[str] = ()) -> List[Dict[str, str]]:
    """One row per run under ``roots`` (paths relative to the root each was found under)."""
    rows = []
    for root in map(Path, roots):
        for run in find_runs([root]):
            try:
                rows.append(run_row(run, root, config_keys))
            except UnreadableFile as exc:  # one damaged run does not hide the others
                print(f"warning: {exc}; run {run} left out", file=sys.stderr)
    return rows


# --------------------------------------------------------------------------- columns and groups
def metric_columns(rows: List[Dict[str, str]], exclude: Sequence[str] = ()) -> List[str]:
    """Every metric column: training's, then eval/'s, each sorted."""
    cols = {k for r in rows for k in r} - set(FIXED) - {EVAL_ITERATION} - set(exclude)
    return sorted(cols, key=lambda c: (c.startswith(EVAL), c))


def is_headline(column: str) -> bool:
    """A metric's own value (``cluster``), not one of its sub-numbers (``cluster/nmi``)."""
    return "/" not in column.removeprefix(EVAL)


def select(available: List[str], patterns: Sequence[str]) -> List[str]:
    """The columns named by ``patterns`` (globs), in their order; one that names none raises ValueError."""
    out: List[str] = []
    for pattern in patterns:
        hits = [c for c in available if fnmatchcase(c, pattern)]
        if not hits:
            raise ValueError(f"--metrics: no column {pattern!r}; available: {', '.join(available) or 'none'}")
        out += [c for c in hits if c not in out]
    return out


class Stat(NamedTuple):
    """A column folded over a group: mean and sample std of the ``count`` runs (of ``n``) that have a number."""

    mean: float
    std: Optional[float]
    count: int
    n: int


def number(text: str) -> Optional[float]:
    """A cell's number; None for an empty or non-finite cell."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def group(rows: List[Dict[str, str]], keys: Sequence[str], columns: Sequence[str]) -> List[dict]:
    """One row per distinct value of ``keys``: the keys, ``n`` (runs) and a :class:`Stat` (or None) per column."""
    groups: Dict[tuple, List[Dict[str, str]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k, "") for k in keys), []).append(row)
    out = []
    for key in sorted(groups, key=lambda k: [(0, number(v), "") if number(v) is not None else (1, 0, v) for v in k]):
        members = groups[key]
        folded: dict = {**dict(zip(keys, key)), "n": str(len(members))}
        for col in columns:
            values = [v for v in (number(r.get(col)) for r in members) if v is not None]
            folded[col] = Stat(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None,
                               len(values), len(members)) if values else None
        out.append(folded)
    return out


# --------------------------------------------------------------------------- formatting
def decimals(value: float) -> int:
    """Decimals that leave DIGITS significant digits, none when the integer part has as many (or is all)."""
    if not math.isfinite(value) or float(value).is_integer():
        return 0
    return max(0, DIGITS - 1 - math.floor(math.log10(abs(value))))


def fmt(value: float, places: Optional[int] = None) -> str:
    return f"{value:.{decimals(value) if places is None else places}f}"


def _cells(value, numeric: bool, folded: bool, csv_: bool) -> List[str]:
    """A value's cell(s): a :class:`Stat` is "mean ± std" in a table, two cells (mean, std) in CSV."""
    if folded:
        if value is None:
            out = ["", ""] if csv_ else [""]
        else:
            std = "" if value.std is None else fmt(value.std, decimals(value.mean))
            partial = f" ({value.count} of {value.n})" if value.count < value.n else ""
            out = [fmt(value.mean), std] if csv_ else [fmt(value.mean) + (f" ± {std}" if std else "") + partial]
    elif numeric:
        text, value = value or "", number(value)
        out = ["" if value is None else text if text.lstrip("-").isdigit() else fmt(value)]
    else:
        out = [value or ""]
    return out if csv_ else [c or "-" for c in out]


def render(rows: List[dict], columns: Sequence[str], style: str = "text", numeric: Sequence[str] = (),
           folded: Sequence[str] = ()) -> str:
    """``rows`` as an aligned table (``style`` text), a Markdown table or CSV; ``numeric`` columns are rounded
    (NUMBERS), ``folded`` ones hold :class:`Stat` values (CSV: a ``<column>_std`` column beside each)."""
    csv_ = style == "csv"
    header = [h for c in columns for h in ((c, c + "_std") if csv_ and c in folded else (c,))]
    body = [[cell for c in columns for cell in _cells(row.get(c), c in numeric, c in folded, csv_)] for row in rows]
    if csv_:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([header] + body)
        return out.getvalue().rstrip("\n")
    if style == "markdown":
        lines = [[c.replace("|", "\\|") for c in line] for line in [header] + body]
        return "\n".join(["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(header)]
                         + ["| " + " | ".join(line) + " |" for line in lines[1:]])
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in [header] + body)


# --------------------------------------------------------------------------- the command line
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lsgan.runs", description=__doc__.split("\n\n")[1],
                                epilog=NUMBERS)
    p.add_argument("dirs", nargs="*", default=["runs"], help="folders to scan (default: runs)")
    p.add_argument("--metrics", metavar="A,B", help="metric columns to show, in this order; globs work "
                   "('eval/cluster*': the headline and its sub-numbers). Default: each metric's headline value, "
                   "from training and from eval/")
    p.add_argument("--group-by", metavar="KEYS", help="one row per value of these columns or dotted config keys "
                   "(method, dataset, seed, prior.k, loss, ...): each number as mean ± sample std over the group's "
                   "runs that have it ('(1 of 2)' when not all do), and n, the group's run count")
    style = p.add_mutually_exclusive_group()
    style.add_argument("--csv", action="store_true", help="CSV on stdout (grouped: a <column>_std beside each)")
    style.add_argument("--markdown", action="store_true", help="a Markdown table")
    return p


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] = None) -> int:
    args = parser().parse_intermixed_args(argv)  # DIRs after the flags too
    missing = [d for d in args.dirs if not Path(d).is_dir()]
    if missing:
        hint = " (--csv prints to stdout: --csv > FILE)" if any(d.endswith(".csv") for d in missing) else ""
        return _fail(f"not a folder: {', '.join(missing)}{hint}")
    keys = [k.strip() for k in (args.group_by or "").split(",") if k.strip()]
    config_keys = [k for k in keys if k not in FIXED]
    rows = table([Path(d) for d in args.dirs], config_keys)
    if not rows:
        print(f"no runs (folders with lsgan's config.yaml) under {', '.join(args.dirs)}", file=sys.stderr)
        return 1
    for key in config_keys:
        if not any(key in r for r in rows):
            return _fail(f"--group-by: {key!r} is neither a column ({', '.join(FIXED)}) nor a key of any run's "
                         f"config.yaml (e.g. seed, prior.k, loss)")
    available = metric_columns(rows, exclude=config_keys)
    try:
        metrics = select(available, [m.strip() for m in args.metrics.split(",") if m.strip()]) if args.metrics \
            else [c for c in available if is_headline(c)]
    except ValueError as exc:
        return _fail(str(exc))
    # the iteration an evaluation describes goes before its numbers: they may be older than training's
    first_eval = next((i for i, m in enumerate(metrics) if m.startswith(EVAL)), None)
    if first_eval is not None:
        metrics.insert(first_eval, EVAL_ITERATION)
    style = "csv" if args.csv else "markdown" if args.markdown else "text"
    if keys:
        numbers = [c for c in ["iteration", *metrics] if c not in keys]
        print(render(group(rows, keys, numbers), [*keys, "n", *numbers], style, folded=numbers))
    else:
        numbers = ["iteration", *metrics]
        print(render(rows, [*FIXED, *metrics], style, numeric=numbers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
