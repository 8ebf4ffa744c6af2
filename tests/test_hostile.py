"""A hostile but fair user: every mistake they can fix is one line, and nothing already written is lost.

Each case is a real API or CLI call; it asserts the exit code or exception, that the message is
one line naming the bad field or file, and that an existing run dir is left as it was.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lsgan.config import ConfigError, validate
from lsgan.run import train
from tests.conftest import REPO, SHARED, needs_shared
from tests.test_run import CLI_ENV, cli, state, stop_with_signal_and_resume


@pytest.fixture
def sngan_cfg(tiny_cfg):
    def _make(*overrides):
        return tiny_cfg("method=sngan", "dataset=digits", *overrides)
    return _make


def snapshot(run_dir: Path) -> dict:
    """Every file of a run dir with its bytes (what a failed command must not change)."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def one_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text[-2000:]
    return lines[0]


# --------------------------------------------------------------------------- resume with changed settings
@pytest.mark.parametrize("change,needle", [
    (("method.lr_d=1000000.0", "method.lr_g=1000000.0"), "method.lr_d: 0.0002 -> 1000000.0"),
    (("model.d_width=8",), "model.d_width: 16 -> 8"),
    (("seed=3",), "seed: 0 -> 3"),
    (("data.batch_size=8",), "data.batch_size: 16 -> 8"),
])
def test_resume_with_settings_that_change_what_was_trained_is_refused(sngan_cfg, tmp_path, change, needle):
    train(sngan_cfg("trainer.steps=2"), tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError) as err:
        train(sngan_cfg("trainer.steps=4", *change), tmp_path)
    msg = str(err.value)
    shapes_change = change == ("model.d_width=8",)  # force_resume cannot help there: it is not suggested
    assert needle in msg and ("force_resume=true" in msg) != shapes_change and "\n" not in msg
    assert snapshot(tmp_path) == before  # config.yaml, checkpoints and CSV untouched


@pytest.mark.parametrize("change,needle", [
    (("model.g_width=32",), "G."),                        # a wider G: its tensors do not fit
    (("method=clustergan", "prior.dim=16", "prior.k=4"), "not fit"),  # another method's checkpoint
])
def test_a_forced_resume_that_cannot_load_is_one_line_and_writes_nothing(sngan_cfg, tmp_path, change, needle):
    train(sngan_cfg("trainer.steps=2"), tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError) as err:
        train(sngan_cfg("trainer.steps=4", "force_resume=true", *change), tmp_path)
    msg = str(err.value)
    assert "do not fit" in msg and needle in msg and "keep the networks' shapes" in msg and "\n" not in msg
    assert snapshot(tmp_path) == before


def test_safe_changes_apply_and_force_resume_overrides_the_check(sngan_cfg, tmp_path):
    train(sngan_cfg("trainer.steps=2"), tmp_path)
    more = train(sngan_cfg("trainer.steps=3", "trainer.log_every=3", "metrics.n_samples=10"), tmp_path)
    assert more.iteration == 3  # budget and cadence are safe to change
    forced = train(sngan_cfg("trainer.steps=4", "method.lr_g=0.001", "force_resume=true"), tmp_path)
    assert forced.iteration == 4


def test_resume_from_a_changed_extractor_is_refused(tiny_cfg, tmp_path):
    cfg = ["method=coupled", "dataset=digits", "extractor.pca_dim=null", "trainer.steps=2"]
    train(tiny_cfg(*cfg), tmp_path)
    with pytest.raises(ConfigError, match=r"extractor\.seed: 0 -> 1"):
        train(tiny_cfg(*cfg, "extractor.seed=1", "trainer.steps=3"), tmp_path)


# --------------------------------------------------------------------------- unreadable checkpoints
def test_truncated_last_ckpt_falls_back_to_the_newest_readable_one(sngan_cfg, tmp_path, capsys):
    train(sngan_cfg("trainer.steps=4", "trainer.ckpt_every=2"), tmp_path)
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # a write cut short
    res = train(sngan_cfg("trainer.steps=5", "trainer.ckpt_every=2"), tmp_path)
    out = capsys.readouterr().out
    assert "last.ckpt: unreadable: truncated" in out and "resuming from the newest readable checkpoint" in out
    assert "iter_0000004.ckpt (iteration 4)" in out and res.iteration == 5
    assert state(last)["lsgan"]["iteration"] == 5  # last.ckpt is good again


def test_no_readable_checkpoint_is_one_line(sngan_cfg, tmp_path):
    train(sngan_cfg("trainer.steps=2"), tmp_path)
    (tmp_path / "checkpoints" / "last.ckpt").write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="no readable checkpoint .*not a torch checkpoint"):
        train(sngan_cfg("trainer.steps=3"), tmp_path)


@pytest.mark.parametrize("content,needle", [
    (b"hello, I am a text file\n", "not a torch checkpoint"),
    (None, "truncated"),  # a real checkpoint cut in half
    (b"npz", "not an lsgan checkpoint"),  # an .npz written by numpy
])
def test_sample_and_evaluate_on_a_bad_checkpoint_are_one_line(sngan_cfg, tmp_path, content, needle):
    good = train(sngan_cfg("trainer.steps=1"), tmp_path / "run").checkpoint
    bad = tmp_path / "bad.ckpt"
    if content is None:
        bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    elif content == b"npz":
        with open(bad, "wb") as fh:
            np.savez(fh, x=np.zeros(3))
        torch.save({"just": "a dict"}, bad)
    else:
        bad.write_bytes(content)
    for module in ("lsgan.sample", "lsgan.evaluate"):
        res = subprocess.run([sys.executable, "-m", module, f"ckpt={bad}"], cwd=REPO, env=CLI_ENV,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2, res.stderr[-2000:]
        line = one_line(res.stderr)
        assert line.startswith(f"error: ckpt={bad}") and needle in line, line


# --------------------------------------------------------------------------- one writer per run dir
def test_a_second_process_in_a_busy_run_dir_stops_in_one_line(sngan_cfg, tmp_path):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / ".lock").write_text(f"{os.getppid()} {socket.gethostname()} {int(time.time())}\n")  # a live owner
    with pytest.raises(ConfigError, match=f"is in use by process {os.getppid()}"):
        train(sngan_cfg("trainer.steps=1"), tmp_path)
    assert not (tmp_path / "checkpoints").exists() and (tmp_path / ".lock").exists()  # the owner keeps its lock


def test_a_stale_lock_is_taken_over_and_released(sngan_cfg, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / ".lock").write_text(f"{dead.pid} {socket.gethostname()} 0\n")
    assert train(sngan_cfg("trainer.steps=1"), tmp_path).iteration == 1
    assert not (tmp_path / ".lock").exists()


def test_a_failed_first_run_leaves_no_stray_run_dir(sngan_cfg, tmp_path):
    run_dir = tmp_path / "new"
    with pytest.raises(ConfigError, match="data.batch_size=4000 is larger than the training split"):
        train(sngan_cfg("data.batch_size=4000"), run_dir)
    assert not run_dir.exists()


# --------------------------------------------------------------------------- data files
@pytest.mark.parametrize("write,needle", [
    (lambda p, good: p.write_bytes(good[: len(good) // 3]), "is truncated or corrupt"),
    (lambda p, good: p.write_bytes(os.urandom(2000)), "is not an .npz archive"),
])
def test_unreadable_npz_is_one_line(tmp_path, sngan_cfg, write, needle):
    src = tmp_path / "good.npz"
    np.savez_compressed(src, x=np.random.randint(0, 255, (64, 28, 28), dtype=np.uint8))
    bad = tmp_path / "bad.npz"
    write(bad, src.read_bytes())
    with pytest.raises(ConfigError) as err:
        train(sngan_cfg("dataset=npz", f"data.path={bad}", "data.size=28"), tmp_path / "run")
    assert needle in str(err.value) and str(bad) in str(err.value) and "\n" not in str(err.value)


def test_image_folder_skips_unreadable_images_with_one_warning(tmp_path, sngan_cfg, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("LSGAN_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "imgs" / "a"
    folder.mkdir(parents=True)
    for i in range(20):
        Image.fromarray(np.full((12, 12, 3), i * 10, dtype=np.uint8)).save(folder / f"{i:02d}.png")
    (folder / "05.png").write_bytes(b"\x89PNG broken")
    (folder / "11.png").write_bytes((folder / "12.png").read_bytes()[:30])
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image\(s\) of 20 .*05\.png"):
        res = train(sngan_cfg("dataset=image_folder", f"data.path={tmp_path / 'imgs'}", "data.size=28",
                              "data.batch_size=8", "trainer.steps=1"), tmp_path / "run")
    assert res.iteration == 1
    for f in folder.iterdir():
        f.write_bytes(b"junk")
    with pytest.raises(ConfigError, match="none of the 20 image files could be read"):
        train(sngan_cfg("dataset=image_folder", f"data.path={tmp_path / 'imgs'}", "data.size=28",
                        "data.batch_size=8", "trainer.steps=1"), tmp_path / "run2")


# --------------------------------------------------------------------------- values and keys on the CLI
@pytest.mark.parametrize("arg,needle", [
    ("data.batch_size=-3", "data.batch_size=-3"),
    ("method.lr_g=-1", "method.lr_g=-1"),
    ("trainer.steps=-5", "trainer.steps=-5"),
    ("trainer.max_steps=5", "did you mean trainer.steps"),
    ("seed=-1", "seed=-1"),
    ("data.size=0", "data.size=0"),
    ("data.num_workers=-1", "data.num_workers=-1"),
    ("data.max_train=0", "data.max_train=0"),
    ("trainer.ckpt_every=-1", "trainer.ckpt_every=-1"),
    ("trainer.log_every=0", "trainer.log_every=0"),
    ("trainer.accelerator=tpu", "trainer.accelerator"),
])
def test_bad_values_and_keys_are_one_line_before_any_work(tmp_path, arg, needle):
    run_dir = tmp_path / "run"
    res = cli("method=sngan", "dataset=digits", "trainer.progress_bar=false", f"run_dir={run_dir}", arg, timeout=120)
    assert res.returncode in (1, 2)
    assert needle in one_line(res.stderr)
    assert not run_dir.exists()


def test_a_refused_resume_from_the_cli_leaves_the_run_dir_as_it_was(tmp_path):
    run_dir = tmp_path / "run"
    args = ["method=sngan", "dataset=digits", "trainer.progress_bar=false", "trainer.steps=2", "model.g_width=8",
            "model.d_width=8", f"run_dir={run_dir}"]
    assert cli(*args, timeout=120).returncode == 0
    before = snapshot(run_dir)
    res = cli(*[a.replace("model.g_width=8", "model.g_width=16") for a in args], timeout=120)
    assert res.returncode == 1 and "model.g_width: 8 -> 16" in one_line(res.stderr)
    assert snapshot(run_dir) == before and not (run_dir / ".hydra").exists()


def test_a_gpu_asked_for_on_a_machine_without_one_is_one_line(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    run_dir = tmp_path / "run"
    res = cli("method=sngan", "dataset=digits", "trainer.accelerator=gpu", f"run_dir={run_dir}", timeout=120)
    assert res.returncode == 1 and "no CUDA GPU" in one_line(res.stderr) and not run_dir.exists()


# --------------------------------------------------------------------------- preemption
def test_sigusr1_saves_a_checkpoint_exits_and_the_same_command_resumes(tmp_path):
    stop_with_signal_and_resume(tmp_path, signal.SIGUSR1)  # what SLURM sends before a preemption


def test_ctrl_c_saves_a_checkpoint_exits_130_and_the_same_command_resumes(tmp_path):
    stop_with_signal_and_resume(tmp_path, signal.SIGINT)  # how a person stops a run


@needs_shared
def test_mnist_from_the_shared_folder_still_reads(sngan_cfg, tmp_path):
    """The stricter npz reader accepts the real files."""
    res = train(sngan_cfg("dataset=mnist", f"data.root={SHARED}", "data.max_train=64", "trainer.steps=1"), tmp_path)
    assert res.iteration == 1


def test_numbered_checkpoints_are_pruned_to_keep_checkpoints(sngan_cfg, tmp_path):
    res = train(sngan_cfg("trainer.steps=12", "trainer.ckpt_every=2", "trainer.keep_checkpoints=3"), tmp_path / "run")
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.ckpt"))
    assert kept == ["iter_0000008.ckpt", "iter_0000010.ckpt", "iter_0000012.ckpt", "last.ckpt"]
    assert res.iteration == 12


@pytest.mark.parametrize("devices", ["2", "[0,1]"])
def test_several_devices_without_trainer_ddp_take_lsgans_ddp(devices):
    from lsgan.run import compose_config

    cfg = validate(compose_config(["method=sngan", "dataset=digits", "trainer.accelerator=cpu", f"trainer.devices={devices}"]))
    assert cfg.trainer.strategy == "ddp"  # find_unused_parameters=True (lsgan.run.build_strategy), as trainer=ddp
    one = validate(compose_config(["method=sngan", "dataset=digits", "trainer.accelerator=cpu"]))
    assert one.trainer.strategy == "auto"


def test_sample_and_evaluate_take_a_run_dir_for_its_last_checkpoint(sngan_cfg, tmp_path):
    train(sngan_cfg("trainer.steps=2"), tmp_path / "run")
    res = subprocess.run([sys.executable, "-m", "lsgan.sample", f"ckpt={tmp_path / 'run'}", "n=4"], cwd=REPO,
                         env=CLI_ENV, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "run" / "sample" / "samples.npz").is_file()
    (tmp_path / "empty").mkdir()
    res = subprocess.run([sys.executable, "-m", "lsgan.evaluate", f"ckpt={tmp_path / 'empty'}"], cwd=REPO,
                         env=CLI_ENV, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "no checkpoints/last.ckpt" in one_line(res.stderr)
