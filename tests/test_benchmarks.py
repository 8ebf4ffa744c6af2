"""The benchmark scripts' own paths: the GPU device check's CPU dry run, and channels-last training."""
from __future__ import annotations

import subprocess
import sys

import torch

from lsgan.methods import METHODS
from lsgan.methods.base import DataInfo
from lsgan.run import train
from tests.conftest import REPO, SHARED, needs_shared


@needs_shared
def test_device_check_dry_run_takes_every_section_on_the_cpu():
    out = subprocess.run(["bash", "benchmarks/device_check.sh", "--dry-run", "--root", str(SHARED)], cwd=REPO,
                         capture_output=True, text=True, timeout=300, env={"PYTHON": sys.executable,
                                                                          "PATH": "/usr/bin:/bin",
                                                                          "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    for needle in ("## 1. SNGAN-32 ResNet throughput", "| 8 | 32-true |", "| 8 | bf16-mixed |",
                   "## 2. MNIST recipes", "## 3. DDP", "skipped: 0 GPU(s)", "## 4. trainer.compile"):
        assert needle in text, text[-3000:]
    for recipe in ("clustergan_mnist", "nemgan_mnist", "slcgan_mnist", "coupled_mnist"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {recipe} |"))
        assert row.split("|")[2].strip() in ("32-true", "bf16-mixed")  # auto resolved, as the run trained
        assert int(row.split("|")[3]) == 3  # the dry run's 3 iterations were trained
    assert "cluster 0." in text  # figures come from the metric suite
    row = next(line for line in text.splitlines() if line.startswith("| aot_eager |"))
    assert float(row.split("|")[3]) > 0 and float(row.split("|")[4]) > 0  # both sides trained and were timed


def test_channels_last_nets_and_batches_train(tiny_cfg, tmp_path):
    cfg = tiny_cfg("method=clustergan", "prior=onehot_gaussian", "method.adv_loss=hinge", "method.n_dis=1", "prior.dim=16")
    assert cfg.trainer.channels_last  # the default
    m = METHODS["clustergan"](cfg, DataInfo(shape=(1, 32, 32), name="digits"))
    convs = [p for p in m.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    off = METHODS["clustergan"](tiny_cfg("method=clustergan", "prior=onehot_gaussian", "prior.dim=16",
                                         "trainer.channels_last=false"), DataInfo(shape=(1, 32, 32), name="digits"))
    assert all(p.is_contiguous() for p in off.parameters())
    result = train(cfg, tmp_path)
    assert result.iteration == 4 and result.checkpoint.exists()
