"""What every experiments/<method>/collect.py shares: finding finished runs (``lsgan.runs``' reading) and
caching a run's evaluation next to it. (The sweeps themselves are conf/experiment/ files, run with
``python -m lsgan.run -m experiment=<name>``.)

The collectors are run as files (``python experiments/nemgan/collect.py ...``), so they import this
module by putting ``experiments/`` on ``sys.path`` first.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, List, Optional, Tuple


def find_runs(roots: Iterable[str]) -> List[Path]:
    """Every run folder below ``roots`` (``lsgan.runs.find_runs``) that holds ``checkpoints/last.ckpt``."""
    from lsgan.runs import find_runs as all_runs

    return [run for root in roots for run in all_runs([root]) if (run / "checkpoints" / "last.ckpt").is_file()]


def checkpoint_info(ckpt: Path, method: Optional[str] = None) -> Optional[dict]:
    """{"cfg", "iteration"} of a checkpoint; None when ``method`` is given and the run is another method's.
    A config saved before ``loss=`` / ``method.adv_loss`` were split comes back in today's spelling
    (``lsgan.config.upgrade_saved_config``), so old and new runs land in the same columns."""
    import torch

    from lsgan.config import upgrade_saved_config

    blob = torch.load(ckpt, map_location="cpu", weights_only=False)
    cfg = upgrade_saved_config((blob.get("hyper_parameters") or {}).get("cfg") or {})
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
