"""Shared test helpers: config composition, tiny settings, the shared data folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lsgan.run import compose_config

# Tiny nets run faster on one thread, and pytest-xdist runs one worker per core; subprocess
# CLI tests inherit the same setting through the environment.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    for cand in (os.environ.get("LSGAN_DATA"), REPO.parent / "shared" / "data", "/work/shared/data"):
        if cand and (Path(cand) / "mnist.npz").exists():
            return Path(cand)
    return None


SHARED = shared_data_dir()
needs_shared = pytest.mark.skipif(SHARED is None, reason="../shared/data not present")

# Small nets and batches: every CLI test is a few real optimizer steps on CPU.
TINY = [
    "model.g_width=16", "model.d_width=16", "data.batch_size=16", "trainer.steps=4",
    "trainer.progress_bar=false", "trainer.accelerator=cpu", "trainer.log_every=1",
    "trainer.sample_every=0", "trainer.ckpt_every=0",
]


def make_cfg(overrides=()):
    return compose_config(overrides)


@pytest.fixture
def tiny_cfg():
    def _make(*overrides):
        return make_cfg(TINY + list(overrides))
    return _make
