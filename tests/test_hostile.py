"""A hostile but fair user: every mistake they can fix is one line, and nothing already written is lost.

Each case is a real API or CLI call; it asserts the exit code or exception, that the message is
one line naming the bad field or file, and that an existing run dir is left as it was.
"""
from __future__ import annotations

import errno
import os
import shlex
import shutil
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
from lsgan.errors import NoSpaceError
from lsgan.run import train
from tests.conftest import REPO, SHARED, TINY, needs_shared
from tests.test_run import CLI_ENV, cli, state, stop_with_signal_and_resume


@pytest.fixture
def sngan_cfg(tiny_cfg):
    def _make(*overrides):
        return tiny_cfg("method=sngan", "dataset=digits", *overrides)
    return _make


def snapshot(run_dir: Path) -> dict:
    """Every file of a run dir with its bytes (what a failed command must not change), but run.log: the run's
    console, to which a refused command appends its error line (``log_only_grew`` checks that)."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != "run.log"}


def log_only_grew(run_dir: Path, before: bytes, needle: str) -> None:
    """run.log kept every byte it had and gained the refusal's line."""
    now = (run_dir / "run.log").read_bytes()
    assert now.startswith(before) and needle in now[len(before):].decode(), now[-2000:]


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
    ("trainer.devices=0", "trainer.devices=0: accepted values: a count >= 1"),  # was Lightning's traceback
])
def test_bad_values_and_keys_are_one_line_before_any_work(tmp_path, arg, needle):
    run_dir = tmp_path / "run"
    res = cli("method=sngan", "dataset=digits", "trainer.progress_bar=false", f"run_dir={run_dir}", arg, timeout=120)
    assert res.returncode in (1, 2)
    assert needle in one_line(res.stderr)
    assert not run_dir.exists()


def test_a_refused_run_keeps_an_empty_run_dir_the_user_made(tmp_path):
    """A run refused after Hydra made its dir removes the dir only when the run made it (the test above)."""
    mine = tmp_path / "mine"
    mine.mkdir()
    res = cli("method=sngan", "dataset=digits", "trainer.progress_bar=false", f"run_dir={mine}", "seed=-1",
              timeout=120)
    assert res.returncode == 1 and one_line(res.stderr).startswith("error: seed=-1: ")
    assert mine.is_dir() and not any(mine.iterdir())


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


# --------------------------------------------------------------------------- a full disk
def _disk_fills_at(monkeypatch, where: str) -> None:
    """The next checkpoint write finds the disk full: in torch.save's writes to the file, or at its rename."""
    if where == "write":
        real = torch.save

        def save(obj, f, *args, **kwargs):
            if hasattr(f, "fileno"):  # a real file; the counting sink that measures the size still works
                f.write(b"x" * 100_000)
                f.flush()
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(obj, f, *args, **kwargs)

        monkeypatch.setattr(torch, "save", save)
    else:
        real_replace = os.replace

        def replace(src, dst, **kwargs):
            if str(dst).endswith(".ckpt"):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_replace(src, dst, **kwargs)

        monkeypatch.setattr(os, "replace", replace)


def leftovers(run_dir: Path) -> list:
    return [p.name for p in run_dir.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".last")]


@pytest.mark.parametrize("where", ["write", "rename"])
def test_a_full_disk_at_a_checkpoint_is_one_line_keeps_last_ckpt_and_the_run_resumes(sngan_cfg, tmp_path,
                                                                                     monkeypatch, capsys, where):
    train(sngan_cfg("trainer.steps=2"), tmp_path)
    last = tmp_path / "checkpoints" / "last.ckpt"
    good = last.read_bytes()
    with monkeypatch.context() as patch:
        _disk_fills_at(patch, where)
        with pytest.raises(NoSpaceError) as err:
            train(sngan_cfg("trainer.steps=4"), tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"no space left on device writing {last} (needs ~") and msg.endswith(" MB free)"), msg
    needed = float(msg.split("needs ~")[1].split(" MB")[0])
    assert abs(needed - len(good) / 1e6) < 0.2 and "\n" not in msg  # the checkpoint's own size
    assert last.read_bytes() == good and leftovers(tmp_path) == [] and not (tmp_path / ".lock").exists()
    capsys.readouterr()
    res = train(sngan_cfg("trainer.steps=4"), tmp_path)  # space is back: the same command resumes
    assert "(iteration 2)" in capsys.readouterr().out and res.iteration == 4
    assert state(last)["lsgan"]["iteration"] == 4


def test_a_full_disk_from_the_cli_is_one_line_and_exit_1(sngan_cfg, tmp_path):
    run_dir = tmp_path / "run"
    train(sngan_cfg("trainer.steps=2"), run_dir)
    good = (run_dir / "checkpoints" / "last.ckpt").read_bytes()
    args = ["method=sngan", "dataset=digits", *[o for o in TINY if not o.startswith("trainer.steps")],
            "trainer.steps=3", f"run_dir={run_dir}"]
    # the CLI in a process whose disk fills at the next checkpoint write
    script = ("import errno, os, sys, torch\n"
              "real = torch.save\n"
              "def save(obj, f, *a, **k):\n"
              "    if hasattr(f, 'fileno'):\n"
              "        raise OSError(errno.ENOSPC, 'No space left on device')\n"
              "    return real(obj, f, *a, **k)\n"
              "torch.save = save\n"
              "from lsgan.run import main\n"
              "sys.argv = ['lsgan.run'] + sys.argv[1:]\n"
              "main()\n")
    res = subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, env=CLI_ENV, capture_output=True, text=True,
                         timeout=240)
    assert res.returncode == 1, res.stderr[-2000:]
    line = one_line(res.stderr)
    assert line.startswith(f"error: no space left on device writing {run_dir / 'checkpoints' / 'last.ckpt'} (needs ~")
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == good and leftovers(run_dir) == []


def test_files_of_a_killed_checkpoint_write_are_removed_by_the_next_run(sngan_cfg, tmp_path, capsys):
    train(sngan_cfg("trainer.steps=2"), tmp_path)
    ckpts = tmp_path / "checkpoints"
    for name in (".last-k2x9ab.tmp", "last.ckpt.4242.tmp", ".best-k2x9ab.ckpt"):  # this and older versions' names
        (ckpts / name).write_bytes(b"x" * 5000)
    capsys.readouterr()
    assert train(sngan_cfg("trainer.steps=3"), tmp_path).iteration == 3
    assert "removed 3 unfinished checkpoint file(s)" in capsys.readouterr().out
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt"]


def _can_mount_a_small_disk() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "d=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs \"$d\""],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.slow
def test_a_really_full_disk_keeps_the_last_checkpoint_and_a_rerun_after_freeing_space_resumes(tmp_path):
    """The same on a real small filesystem (a tmpfs in a private mount namespace)."""
    if not _can_mount_a_small_disk():
        pytest.skip("cannot mount a small tmpfs here (needs unshare and user namespaces)")
    mnt, run_dir = tmp_path / "disk", tmp_path / "disk" / "run"
    mnt.mkdir()
    args = ["method=sngan", "dataset=digits", "trainer.progress_bar=false", "model.g_width=8", "model.d_width=8",
            "trainer.ckpt_every=0", f"run_dir={run_dir}"]
    first = " ".join(shlex.quote(a) for a in [*args, "trainer.steps=2"])
    again = " ".join(shlex.quote(a) for a in [*args, "trainer.steps=4"])
    py = f"{shlex.quote(sys.executable)} -m lsgan.run"
    # 1: train 2 iterations; 2: fill the disk, resume to 4 (fails at the end); 3: free it, the same command resumes
    script = f"""
mount -t tmpfs -o size=8m tmpfs {mnt} || exit 99
{py} {first} > {tmp_path}/out1 2>&1 || exit 91
ckpt=$(stat -c %s {run_dir}/checkpoints/last.ckpt)
free=$(df -B1 --output=avail {mnt} | tail -1)
head -c $((free - ckpt / 2)) /dev/zero > {mnt}/filler 2>/dev/null
cp {run_dir}/checkpoints/last.ckpt {tmp_path}/good.ckpt
{py} {again} > {tmp_path}/out2 2>&1; echo $? > {tmp_path}/rc2
ls -a {run_dir}/checkpoints > {tmp_path}/ls2
rm {mnt}/filler
{py} {again} > {tmp_path}/out3 2>&1; echo $? > {tmp_path}/rc3
cp {run_dir}/checkpoints/last.ckpt {tmp_path}/final.ckpt
"""
    res = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=REPO, env=CLI_ENV, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, (res.stderr + (tmp_path / "out1").read_text())[-2000:]
    assert (tmp_path / "rc2").read_text().strip() == "1"
    line = one_line((tmp_path / "out2").read_text().split("\n", 1)[1])  # after the "resuming from" line
    assert line.startswith(f"error: no space left on device writing {run_dir}/checkpoints/last.ckpt (needs ~"), line
    assert (tmp_path / "ls2").read_text().split() == [".", "..", "last.ckpt"]  # no temporary file
    assert (tmp_path / "rc3").read_text().strip() == "0", (tmp_path / "out3").read_text()[-2000:]
    assert "(iteration 2)" in (tmp_path / "out3").read_text()
    assert state(tmp_path / "final.ckpt")["lsgan"]["iteration"] == 4


# --------------------------------------------------------------------------- evaluate: nothing measured
def test_evaluate_with_every_requested_metric_skipped_is_one_line_and_writes_nothing(sngan_cfg, tmp_path):
    train(sngan_cfg("trainer.steps=1"), tmp_path / "run")
    out = tmp_path / "eval"
    out.mkdir()
    (out / "metrics.json").write_text('{"earlier": 1}\n')  # an earlier evaluation is not overwritten by skips
    res = subprocess.run([sys.executable, "-m", "lsgan.evaluate", f"ckpt={tmp_path / 'run'}", "metrics=[cond_acc]",
                          f"out={out}", f"metrics.cache_dir={tmp_path / 'no_evaluators'}"], cwd=REPO, env=CLI_ENV,
                         capture_output=True, text=True, timeout=240)
    assert res.returncode == 2, res.stderr[-2000:]
    line = one_line(res.stderr)
    assert line.startswith("error: metrics=[cond_acc]: nothing measured, every requested metric was skipped: "
                           "cond_acc (no evaluator classifier at "), line
    assert "variety" not in line  # a metric the user did not ask for
    assert (out / "metrics.json").read_text() == '{"earlier": 1}\n' and sorted(os.listdir(out)) == ["metrics.json"]


def test_evaluate_records_a_skip_only_for_a_metric_the_user_asked_for():
    from lsgan.evaluate import kept_results

    value, skip = {"value": 0.5}, {"skipped": "why"}
    # variety comes with cond_acc: kept when it measured something, dropped when it was skipped
    assert kept_results({"cond_acc": value, "variety": skip}, ["cond_acc"]) == {"cond_acc": value}
    assert kept_results({"cond_acc": value, "variety": value}, ["cond_acc"]) == {"cond_acc": value, "variety": value}
    assert kept_results({"cluster": skip, "knn": value}, ["cluster", "knn"]) == {"cluster": skip, "knn": value}
    with pytest.raises(ConfigError) as err:
        kept_results({"cond_acc": {"skipped": "no evaluator"}, "variety": value, "knn": {"skipped": "no\nfeatures"}},
                     ["cond_acc", "knn"])
    assert str(err.value) == ("metrics=[cond_acc,knn]: nothing measured, every requested metric was skipped: "
                              "cond_acc (no evaluator); knn (no features)")


# --------------------------------------------------------------------------- how soon a mistake is answered
@pytest.mark.parametrize("arg,needle", [
    ("method=nope", "method=nope is not a known choice"),
    ("trainer.max_steps=5", "did you mean trainer.steps"),
    ("+trainer.nope=1", "trainer.nope is not a config key"),
])
def test_a_wrong_choice_or_key_is_answered_before_torch_is_imported(arg, needle):
    script = ("import sys\n"
              "from lsgan.run import main\n"
              "sys.argv = ['lsgan.run'] + sys.argv[1:]\n"
              "try:\n"
              "    main()\n"
              "except SystemExit as exc:\n"
              "    print('exit', exc.code, 'torch' in sys.modules, 'pytorch_lightning' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", script, arg], cwd=REPO, env=CLI_ENV, capture_output=True, text=True,
                         timeout=120)
    assert res.stdout.split() == ["exit", "2", "False", "False"], res.stdout + res.stderr[-2000:]
    assert needle in one_line(res.stderr)


# --------------------------------------------------------------------------- more of a hostile user's mistakes
@pytest.fixture(scope="module")
def sngan_run(tmp_path_factory):
    """One tiny trained sngan run that the tests below read; a test that changes a run copies it first."""
    from tests.conftest import make_cfg

    run = tmp_path_factory.mktemp("hostile") / "run"
    train(make_cfg(TINY + ["method=sngan", "dataset=digits", "trainer.steps=1"]), run)
    return run


def cli_error(main, argv, capsys) -> tuple:
    """(exit code, the one stderr line) of a command line run in this process, as its console script runs it."""
    from lsgan.cli import run_cli

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        run_cli(lambda: main(argv))
    return exit_.value.code, one_line(capsys.readouterr().err)


def test_a_run_dir_that_is_a_file_is_one_line_before_hydra_makes_it(sngan_cfg, tmp_path, monkeypatch, capsys):
    from lsgan.run import main

    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    for run_dir in (notes, notes / "sub"):
        monkeypatch.setattr(sys, "argv", ["lsgan.run", "method=sngan", f"run_dir={run_dir}"])
        with pytest.raises(SystemExit) as exit_:
            main()  # Hydra would make the folder (and fail with a traceback) before lsgan sees the config
        line = one_line(capsys.readouterr().err)
        assert exit_.value.code == 2 and line.startswith(f"error: run_dir={run_dir}: ") and "is a file" in line
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        train(sngan_cfg(), notes)  # the Python API says the same
    assert notes.read_text() == "keep me"


def test_a_read_only_run_dir_is_refused_in_one_line_and_left_as_it_was(sngan_run, tmp_path):
    if not _can_mount_a_small_disk():
        pytest.skip("cannot mount here (needs unshare and user namespaces)")
    shutil.copytree(sngan_run, tmp_path / "ro" / "run")
    run, before = tmp_path / "ro" / "run", snapshot(sngan_run)
    code = ("import sys\n"
            "from lsgan.errors import ConfigError\n"
            "from lsgan.run import train\n"
            "from tests.conftest import TINY, make_cfg\n"
            "try:\n"
            f"    train(make_cfg(TINY + ['method=sngan', 'dataset=digits', 'trainer.steps=2']), '{run}')\n"
            "except ConfigError as exc:\n"
            "    print('train:', exc)\n"
            "from lsgan.cli import run_cli\n"
            "from lsgan.sample import main\n"
            f"run_cli(lambda: main(['ckpt={run}', 'n=2']))\n")  # its default out is <run>/sample
    script = f"mount --bind -o ro {tmp_path / 'ro'} {tmp_path / 'ro'} || exit 99\n{shlex.quote(sys.executable)} -c {shlex.quote(code)}"
    res = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=REPO, env=CLI_ENV, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr[-2000:]
    assert res.stdout.strip() == f"train: run_dir={run}: cannot write in {run} (on a read-only file system); " \
                                 f"give a folder you can write in"
    assert one_line(res.stderr) == f"error: out={run / 'sample'}: cannot write in {run} (on a read-only file " \
                                   f"system); give a folder you can write in"
    assert snapshot(run) == before


@pytest.mark.parametrize("arg,needle", [
    ("trainer.devices=0", "trainer.devices=0: accepted values: a count >= 1, -1 or auto"),
    ("trainer.devices=[]", "trainer.devices=[]: accepted values"),
    ("trainer.devices=-2", "trainer.devices=-2: accepted values"),
    ("trainer.devices=[0,-1]", "trainer.devices=[0, -1]: accepted values"),
    ("trainer.num_nodes=0", "trainer.num_nodes=0: must be an integer >= 1"),
    ("method.lr_g=abc", "method.lr_g: Value 'abc' of type 'str' could not be converted to Float"),
    ("trainer.max_minutes=0", "trainer.max_minutes=0.0: must be > 0, or null for no limit"),
])
def test_values_lightning_or_omegaconf_would_refuse_with_a_traceback_are_one_line(arg, needle):
    from lsgan.run import compose_config

    with pytest.raises(ConfigError) as err:
        validate(compose_config(["method=sngan", "dataset=digits", "trainer.accelerator=cpu", arg]))
    assert needle in str(err.value) and "\n" not in str(err.value)
    for ok in ("trainer.devices=auto", "trainer.devices=-1", "trainer.devices=[0]", "trainer.devices=1"):
        validate(compose_config(["method=sngan", "dataset=digits", "trainer.accelerator=cpu", ok]))


def test_sample_and_evaluate_refuse_an_out_that_is_a_file_before_any_work(sngan_run, tmp_path, monkeypatch, capsys):
    import lsgan.evaluate
    import lsgan.sample

    def never(*args, **kwargs):
        raise AssertionError("work started before out= was checked")

    monkeypatch.setattr(lsgan.sample, "load_method", never)
    monkeypatch.setattr(lsgan.evaluate, "evaluate", never)
    grid = tmp_path / "grid.png"
    grid.write_bytes(b"an earlier picture")
    for main in (lsgan.sample.main, lsgan.evaluate.main):
        code, line = cli_error(main, [f"ckpt={sngan_run}", f"out={grid}"], capsys)
        assert code == 2 and line == f"error: out={grid}: is a file, not a folder; give a folder (it is created when missing)"
    assert grid.read_bytes() == b"an earlier picture"


def test_an_unreadable_evaluator_is_a_skip_with_its_fix_and_train_evaluator_rebuilds_it(sngan_run, tmp_path, capsys):
    from lsgan.evaluate import main as evaluate_main
    from lsgan.metrics.evaluator import load_evaluator
    from lsgan.train_evaluator import main as train_evaluator_main

    cache = tmp_path / "cache"
    made = train_evaluator_main(["dataset=digits", f"metrics.cache_dir={cache}", "max_steps=1", "device=cpu"])
    path = Path(made["path"])
    path.write_bytes(path.read_bytes()[:2000])  # a copy cut short
    out = tmp_path / "eval"
    code, line = cli_error(evaluate_main, [f"ckpt={sngan_run}", "metrics=[cond_acc]", f"out={out}", "n=16",
                                           f"metrics.cache_dir={cache}", "device=cpu"], capsys)
    assert code == 2 and f"cond_acc (evaluator {path} is truncated or corrupt; retrain it with `python -m " \
                         f"lsgan.train_evaluator dataset=digits" in line and line.endswith("force=true`)"), line
    garbage = tmp_path / "evaluator.pt"
    garbage.write_text("not a network")
    code, line = cli_error(evaluate_main, [f"ckpt={sngan_run}", "metrics=[cond_acc]", f"out={out}", "n=16",
                                           f"metrics.evaluator={garbage}", "device=cpu"], capsys)
    assert code == 2 and f"evaluator {garbage} is not a torch file" in line
    assert not out.exists()  # nothing measured, nothing written
    again = train_evaluator_main(["dataset=digits", f"metrics.cache_dir={cache}", "max_steps=1", "device=cpu"])
    assert f"evaluator {path} is truncated or corrupt; training it again" in capsys.readouterr().out
    assert not again["cached"] and load_evaluator(str(path)).meta["n_classes"] == 10


def _altered_checkpoint(run: Path, dest: Path, change) -> Path:
    blob = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    change(blob)
    torch.save(blob, dest)
    return dest


def test_a_checkpoint_whose_config_lacks_a_key_names_it_and_takes_it_from_the_command_line(sngan_run, tmp_path,
                                                                                            capsys):
    from lsgan.sample import main

    old = _altered_checkpoint(sngan_run, tmp_path / "old.ckpt",
                              lambda b: b["hyper_parameters"]["cfg"]["model"].pop("g_width"))  # another version's
    code, line = cli_error(main, [f"ckpt={old}", "n=2", f"out={tmp_path / 's'}"], capsys)
    assert code == 2 and line == (f"error: ckpt={old}: its saved config has no model.g_width (written by another "
                                  f"version of lsgan?); give the value it was trained with: model.g_width=VALUE")
    paths = main([f"ckpt={old}", "n=2", f"out={tmp_path / 's'}", "model.g_width=16"])  # TINY's width
    assert paths["npz"].is_file()


def test_a_checkpoint_with_missing_weights_is_one_line(sngan_run, tmp_path, capsys):
    from lsgan.sample import main

    def halve(blob):
        blob["state_dict"] = {k: v for i, (k, v) in enumerate(blob["state_dict"].items()) if i % 2}

    half = _altered_checkpoint(sngan_run, tmp_path / "half.ckpt", halve)
    code, line = cli_error(main, [f"ckpt={half}", "n=2", f"out={tmp_path / 's'}"], capsys)
    assert code == 2 and line.startswith(f"error: ckpt={half}: its weights do not fit the nets its saved config "
                                         f"describes (Missing key(s) in state_dict: ")


def test_a_weights_only_checkpoint_samples_but_training_does_not_continue_from_it(sngan_run, sngan_cfg, tmp_path):
    from lsgan.sample import main

    keep = ("state_dict", "hyper_parameters", "lsgan")  # what a weights-only export keeps
    weights = _altered_checkpoint(sngan_run, tmp_path / "weights.ckpt",
                                  lambda b: [b.pop(k) for k in list(b) if k not in keep])
    assert main([f"ckpt={weights}", "n=2", f"out={tmp_path / 's'}"])["npz"].is_file()
    new = tmp_path / "new"
    with pytest.raises(ConfigError, match=r"holds weights only \(no pytorch-lightning_version, optimizer_states, "
                                          r"loops\), so training cannot continue from it"):
        train(sngan_cfg("trainer.steps=2", f"resume={weights}"), new)  # was Lightning's KeyError, after config.yaml
    assert not new.exists()
    run = tmp_path / "run"
    shutil.copytree(sngan_run, run)
    shutil.copy(weights, run / "checkpoints" / "last.ckpt")
    before, log = snapshot(run), (run / "run.log").read_bytes()
    with pytest.raises(ConfigError, match=r"no readable checkpoint \(resume=.*last.ckpt: holds weights only"):
        train(sngan_cfg("trainer.steps=2"), run)
    assert snapshot(run) == before  # config.yaml and overrides.yaml were rewritten before
    log_only_grew(run, log, "holds weights only")


def test_the_leaderboard_refuses_a_wrong_dataset_or_key_before_it_trains(tmp_path, capsys):
    from lsgan import leaderboard

    runs = tmp_path / "runs"
    assert leaderboard.main(["dataset=nope", f"runs={runs}"]) == 2  # it started a training run per row
    assert one_line(capsys.readouterr().err).startswith("error: dataset=nope is not a known choice; accepted values: ")
    assert leaderboard.main(["dataset=digits", f"runs={runs}", "model.g_widht=8"]) == 2
    assert one_line(capsys.readouterr().err).startswith("error: model.g_widht is not a config key (keys of model: ")
    assert not runs.exists()


def _one_step_on_an_npz(sngan_cfg, tmp_path):
    """(the npz file, its RNG, the data overrides, the run dir) of one training step on 64 random gray images."""
    data = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    np.savez_compressed(data, x=rng.integers(0, 255, (64, 28, 28), dtype=np.uint8))
    args = ("dataset=npz", f"data.path={data}", "data.size=28")
    run = tmp_path / "run"
    train(sngan_cfg(*args, "trainer.steps=1"), run)
    return data, rng, args, run


def test_a_data_file_replaced_between_a_run_and_its_resume_is_one_line(sngan_cfg, tmp_path):
    data, rng, args, run = _one_step_on_an_npz(sngan_cfg, tmp_path)
    before, log = snapshot(run), (run / "run.log").read_bytes()
    data.write_bytes(data.read_bytes()[:500])  # a copy cut short
    with pytest.raises(ConfigError, match=f"{data} is truncated or corrupt"):
        train(sngan_cfg(*args, "trainer.steps=2"), run)
    np.savez_compressed(data, x=rng.integers(0, 255, (64, 28, 28, 3), dtype=np.uint8))  # colour images now
    with pytest.raises(ConfigError) as err:
        train(sngan_cfg(*args, "trainer.steps=2"), run)
    assert "the data's shape: (1, 28, 28) -> (3, 28, 28)" in str(err.value) and "use a new run_dir" in str(err.value)
    assert snapshot(run) == before
    log_only_grew(run, log, "the data's shape")


def test_a_data_file_replaced_by_other_examples_of_the_same_shape_is_refused_unless_forced(sngan_cfg, tmp_path):
    """Other images, same shape and classes: the checkpoint's fingerprint of the training examples tells it; the
    resume stops in one line (force_resume=true continues on the new data, as for any changed setting)."""
    data, rng, args, run = _one_step_on_an_npz(sngan_cfg, tmp_path)
    before = snapshot(run)
    np.savez_compressed(data, x=rng.integers(0, 255, (64, 28, 28), dtype=np.uint8))  # other images, same shape
    with pytest.raises(ConfigError) as err:
        train(sngan_cfg(*args, "trainer.steps=2"), run)
    msg = str(err.value)
    assert "the training examples (same shape, other content" in msg and "force_resume=true" in msg and "\n" not in msg
    assert snapshot(run) == before
    assert train(sngan_cfg(*args, "trainer.steps=2", "force_resume=true"), run).iteration == 2


def test_a_sweep_whose_job_fails_runs_the_others_and_ends_without_a_traceback(tmp_path):
    args = ["-m", "method=sngan", "dataset=digits", *TINY, "trainer.steps=1", "data.batch_size=4000,16",
            f"hydra.sweep.dir={tmp_path}"]
    res = cli(*args, timeout=240)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    failed = next(i for i, ln in enumerate(lines) if ln.startswith("Error executing job with overrides: ["))
    assert "data.batch_size=4000" in lines[failed]  # Hydra names the job, then its one line follows
    assert lines[failed + 1].startswith("error: data.batch_size=4000 is larger than the training split of dataset=")
    assert len(list(tmp_path.glob("1_*/checkpoints/last.ckpt"))) == 1  # the other job trained


def test_the_runs_table_leaves_out_a_damaged_run_with_one_warning_each(sngan_run, tmp_path, capsys):
    from lsgan.runs import main

    for name in ("good", "bad_csv", "bad_yaml"):
        shutil.copytree(sngan_run, tmp_path / name)
    (tmp_path / "bad_csv" / "metrics.csv").write_bytes(b"\x00\xff not text,,\n1,2\n")
    (tmp_path / "bad_yaml" / "config.yaml").write_text("method: {name: sngan\n  data: [")
    capsys.readouterr()
    assert main([str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    warnings = err.strip().splitlines()
    assert len(warnings) == 2 and "Traceback" not in err, err
    assert warnings[0].startswith(f"warning: {tmp_path / 'bad_csv' / 'metrics.csv'}: not a readable metrics CSV (")
    assert warnings[1].startswith(f"warning: {tmp_path / 'bad_yaml' / 'config.yaml'}: not readable YAML (")
    assert all(w.endswith("left out") for w in warnings)
    assert "good" in out and "bad_" not in out
