"""The random-number state a checkpoint carries, so a resumed run draws the same numbers.

Lightning restores nets, optimizers and loops, not the global RNGs (torch, CUDA, NumPy, Python's
``random``). A method saves :func:`capture` under
``checkpoint["lsgan"]["rng"]`` and, on resume, calls :func:`restore` right before its next
training step.
"""
from __future__ import annotations

import random

import numpy as np
import torch


def capture() -> dict:
    """Every global RNG's state. Only tensors and plain Python values, so checkpoints load with
    ``torch.load(weights_only=True)``."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict) -> None:
    """Set every global RNG to ``state`` (from :func:`capture`); CUDA's only where both sides have it."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
