"""The benchmark scripts' own paths: the GPU device check's CPU dry run, channels-last training, and
acc_vs_minutes (the minutes a checkpoint records, the results cache, input checks)."""
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


def _acc_vs_minutes():
    import importlib.util

    spec = importlib.util.spec_from_file_location("acc_vs_minutes", REPO / "benchmarks" / "acc_vs_minutes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_acc_vs_minutes_reads_the_timer_caches_results_and_reevaluates_a_rewritten_checkpoint(tiny_cfg, tmp_path,
                                                                                            capsys):
    import os

    avm = _acc_vs_minutes()
    cfg = tiny_cfg("method=clustergan", "prior=onehot_gaussian", "prior.dim=16", "trainer.ckpt_every=2",
                   "trainer.max_minutes=5")
    run = train(cfg, tmp_path / "run").run_dir
    out, cache = tmp_path / "fig" / "acc.png", tmp_path / "fig" / "acc.json"
    argv = [str(run), "--out", str(out), "--label", "cg"]
    rows = avm.main(argv)
    assert [(r["checkpoint"], r["iteration"]) for r in rows] == [("iter_0000002.ckpt", 2), ("iter_0000004.ckpt", 4)]
    assert all(r["source"] == "timer" and 0 < r["minutes"] < 5 for r in rows)
    assert rows[0]["minutes"] < rows[1]["minutes"]
    acc = [r["metrics"]["cluster"]["value"] for r in rows]
    assert all(0 < a <= 1 for a in acc)
    assert out.stat().st_size > 0 and cache.is_file()
    printed = capsys.readouterr().out
    assert printed.count("evaluating") == 2 and "| cg | iter_0000004.ckpt | 4 |" in printed

    again = avm.main(argv)  # every checkpoint cached: nothing evaluated, the same numbers
    assert "evaluating" not in capsys.readouterr().out
    assert [r["metrics"]["cluster"]["value"] for r in again] == acc

    ckpt = run / "checkpoints" / "iter_0000002.ckpt"
    os.utime(ckpt, ns=(ckpt.stat().st_atime_ns, ckpt.stat().st_mtime_ns + 10**9))  # as if saved anew
    avm.main(argv)
    printed = capsys.readouterr().out
    assert printed.count("evaluating") == 1 and "evaluating iter_0000002.ckpt" in printed


def test_acc_vs_minutes_falls_back_to_file_times_and_refuses_bad_input(tmp_path):
    import os

    import pytest

    avm = _acc_vs_minutes()
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("method: {name: slcgan}\n")
    ckpt = run / "checkpoints" / "iter_0000010.ckpt"
    ckpt.write_bytes(b"x")
    start = (run / "config.yaml").stat().st_mtime
    os.utime(ckpt, (start + 90, start + 90))
    assert avm.minutes_of({"callbacks": {"Timer": {"time_elapsed": {"train": 120.0}}}}, ckpt, run) == (2.0, "timer")
    assert avm.minutes_of({}, ckpt, run) == pytest.approx((1.5, "mtime"))
    with pytest.raises(avm.UsageError, match="--label: given 2 times for 1 runs"):
        avm.parse([str(run), "--out", str(tmp_path / "a.png"), "--label", "a", "--label", "b"])
    with pytest.raises(avm.UsageError, match="not a run dir"):
        avm.parse([str(tmp_path), "--out", str(tmp_path / "a.png")])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(avm.UsageError, match="--cache .*bad.json: not a cache"):
        avm.load_cache(tmp_path / "bad.json")
