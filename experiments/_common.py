"""What every experiments/<method>/ script shares: expanding a multirun command into its single
runs, checking that each composes and validates, finding finished runs, and caching a run's
evaluation next to it.

The scripts are run as files (``python experiments/nemgan/sweeps.py ...``), so they import this
module by putting ``experiments/`` on ``sys.path`` first.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple


def split_top_level(value: str) -> List[str]:
    """Hydra's sweep syntax: commas outside brackets separate values (``[0.3,0.7],[0.5,0.5]`` is two)."""
    parts, depth, cur = [], 0, ""
    for ch in value:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


def expand(args: Iterable[str]) -> List[List[str]]:
    """The single runs of one multirun command: the cartesian product of its swept values.
    Arguments without ``=`` (``-m``) are dropped."""
    axes = []
    for item in args:
        if "=" not in item:
            continue
        key, value = item.split("=", 1)
        axes.append([f"{key}={v}" for v in split_top_level(value)])
    return [list(combo) for combo in itertools.product(*axes)]


def check_sweeps(method: str, sweeps: Dict[str, List[str]], tail: List[str],
                 extra_check: Optional[Callable[[object], None]] = None) -> int:
    """Compose and validate every single run of every sweep (reads no data); ``tail`` is appended
    to each run (data.root, env extras). Prints one line per sweep; returns the run count."""
    from lsgan.config import validate
    from lsgan.run import compose_config, precheck_overrides

    n = 0
    for name, overrides in sweeps.items():
        runs = expand([f"method={method}"] + overrides + tail)
        for run in runs:
            precheck_overrides(run)
            cfg = validate(compose_config(run))
            if cfg.method.name != method:
                raise SystemExit(f"sweep {name}: composed method={cfg.method.name}, expected {method}")
            if extra_check is not None:
                extra_check(cfg)
            n += 1
        print(f"ok  {name}: {len(runs)} runs")
    return n


def find_runs(roots: Iterable[str]) -> List[Path]:
    """Every run folder below ``roots`` that holds ``checkpoints/last.ckpt``."""
    return [ckpt.parent.parent for root in roots for ckpt in sorted(Path(root).rglob("checkpoints/last.ckpt"))]


def checkpoint_info(ckpt: Path, method: Optional[str] = None) -> Optional[dict]:
    """{"cfg", "iteration"} of a checkpoint; None when ``method`` is given and the run is another method's."""
    import torch

    blob = torch.load(ckpt, map_location="cpu", weights_only=False)
    cfg = (blob.get("hyper_parameters") or {}).get("cfg") or {}
    if method is not None and cfg.get("method", {}).get("name") != method:
        return None
    return {"cfg": cfg, "iteration": int(blob.get("lsgan", {}).get("iteration", 0))}


def method_runs(roots: Iterable[str], method: str) -> List[Tuple[Path, dict]]:
    """(run folder, :func:`checkpoint_info`) of every ``method`` run below ``roots``; other methods'
    runs are skipped, and finding none at all is a one-line SystemExit."""
    runs = [(run, info) for run in find_runs(roots)
            if (info := checkpoint_info(run / "checkpoints" / "last.ckpt", method)) is not None]
    if not runs:
        raise SystemExit(f"no method={method} checkpoints under {', '.join(roots)}")
    return runs


def read_cached(path: Path, **expected) -> Optional[dict]:
    """A cached evaluation, when its recorded fields equal ``expected`` (iteration, protocol...)."""
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a damaged cache is recomputed, never trusted
    return old if all(old.get(k) == v for k, v in expected.items()) else None


def write_cached(path: Path, result: dict) -> None:
    """Write ``result`` as JSON atomically: an interrupted collect leaves no half file."""
    from lsgan.io import atomic_file

    with atomic_file(path, "w") as f:
        json.dump(result, f, indent=1, default=float)


def sweeps_main(argv: List[str], commands: Dict[str, List[List[str]]], check: Callable[[], int],
                smoke: Optional[Callable[[str, str], None]] = None) -> None:
    """The command line every sweeps.py offers over its ``commands`` (name -> list of commands):

    ``print`` every exact command; ``check`` (compose + validate, reads no data); ``run NAME
    [key=value ...]`` (extra overrides appended to each command); ``smoke NAME DIR`` where offered."""
    import shlex
    import subprocess
    import sys

    actions = ("print", "check", "run") + (("smoke",) if smoke else ())
    if not argv or argv[0] not in actions:
        raise SystemExit("usage: sweeps.py print | check | run NAME [key=value ...]"
                         + (" | smoke NAME SWEEP_DIR" if smoke else "") + f"; NAME: {', '.join(commands)}")
    if argv[0] == "print":
        for name, cmds in commands.items():
            print(f"# {name}")
            for cmd in cmds:
                print(shlex.join(cmd))
            print()
        return
    if argv[0] == "check":
        print(f"{check()} runs compose and validate")
        return
    if len(argv) < 2 or argv[1] not in commands:
        raise SystemExit(f"{argv[0]} NAME: NAME must be one of {', '.join(commands)}")
    if argv[0] == "smoke":
        if len(argv) < 3:
            raise SystemExit("smoke NAME SWEEP_DIR: give a scratch folder for the runs")
        smoke(argv[1], argv[2])
        return
    for cmd in commands[argv[1]]:
        cmd = [sys.executable if c == "python" and i == 0 else c for i, c in enumerate(cmd)] + argv[2:]
        print("+ " + shlex.join(cmd), flush=True)
        subprocess.run(cmd, check=True)
