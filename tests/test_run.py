"""The training CLI end to end: real steps, resume, errors, schedule, loggers, DDP, multirun."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from lsgan.config import ConfigError
from lsgan.methods import METHODS
from lsgan.divergence import DivergenceError
from lsgan.run import precheck_overrides, train
from tests.conftest import REPO, TINY

CLI_ENV = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def tiny_cfg(tiny_cfg):
    """The baselines' machinery tests run sngan unless they name a method (the default is coupled)."""
    def _make(*overrides):
        named = any(o.startswith("method=") for o in overrides)
        return tiny_cfg(*overrides) if named else tiny_cfg("method=sngan", *overrides)
    return _make


def cli(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "lsgan.run", *args], cwd=REPO, env=CLI_ENV,
                          capture_output=True, text=True, timeout=timeout)


def read_csv(path: Path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def state(path: Path):
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.parametrize("method", ["sngan", "cgan"])
def test_baselines_train_and_write_run_dir(tiny_cfg, tmp_path, method):
    res = train(tiny_cfg(f"method={method}", "trainer.sample_every=2"), tmp_path)
    assert res.iteration == 4
    for f in ("config.yaml", "checkpoints/last.ckpt", "samples/latest.png", "samples/iter_0000002.png", "metrics.csv"):
        assert (tmp_path / f).is_file(), f
    rows = read_csv(tmp_path / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["loss_d"]) == float(r["loss_d"]) for r in rows)  # finite, present
    ck = state(tmp_path / "checkpoints/last.ckpt")
    assert ck["lsgan"]["iteration"] == 4


@pytest.mark.parametrize("loss", ["ns", "minimax", "wgan_gp"])
def test_sngan_losses_take_real_steps(tiny_cfg, tmp_path, loss):
    cfg = tiny_cfg(f"method.adv_loss={loss}", "trainer.steps=2")
    before = None
    res = train(cfg, tmp_path)
    ck = state(res.checkpoint)
    g_keys = [k for k in ck["state_dict"] if k.startswith("G.")]
    assert g_keys
    # parameters moved away from a fresh initialisation with the same seed
    from lsgan.run import build_datamodule, build_method
    from lsgan.config import validate
    import pytorch_lightning as pl
    pl.seed_everything(0, verbose=False)
    fresh = build_method(validate(cfg), build_datamodule(validate(cfg))).state_dict()
    moved = [k for k in g_keys if ck["state_dict"][k].dtype.is_floating_point
             and not torch.equal(ck["state_dict"][k], fresh[k])]
    assert moved, before


def test_resume_matches_uninterrupted_run(tiny_cfg, tmp_path):
    extra = ("method.ema_decay=0.9", "trainer.ckpt_every=2")
    straight = train(tiny_cfg("trainer.steps=8", *extra), tmp_path / "a")
    train(tiny_cfg("trainer.steps=4", *extra), tmp_path / "b")
    resumed = train(tiny_cfg("trainer.steps=8", *extra), tmp_path / "b")  # same run dir -> resumes
    assert resumed.iteration == 8
    a, b = state(straight.checkpoint), state(resumed.checkpoint)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    for oa, ob in zip(a["optimizer_states"], b["optimizer_states"]):
        for pa, pb in zip(oa["state"].values(), ob["state"].values()):
            assert torch.equal(pa["exp_avg"], pb["exp_avg"])
    steps = [int(r["step"]) for r in read_csv(tmp_path / "b" / "metrics.csv")]
    assert steps == list(range(1, 9))  # the CSV was appended to, not replaced


def test_explicit_resume_path(tiny_cfg, tmp_path):
    first = train(tiny_cfg("trainer.steps=2"), tmp_path / "a")
    res = train(tiny_cfg("trainer.steps=3", f"resume={first.checkpoint}"), tmp_path / "c")
    assert res.iteration == 3
    with pytest.raises(ConfigError, match="resume="):
        train(tiny_cfg("resume=/nonexistent.ckpt"), tmp_path / "d")


def test_labels_never_reach_unsupervised_step(tiny_cfg, tmp_path, monkeypatch):
    seen = {}
    orig = METHODS["sngan"].d_step  # cgan inherits it

    def spy(self, batch):
        seen[self.mcfg.name] = batch.y
        return orig(self, batch)

    monkeypatch.setattr(METHODS["sngan"], "d_step", spy)
    for name in ("sngan", "cgan"):
        train(tiny_cfg(f"method={name}", "trainer.steps=1"), tmp_path / name)
    assert seen["sngan"] is None
    assert seen["cgan"] is not None and seen["cgan"].dtype == torch.int64


@pytest.mark.parametrize("n_dis,n_gen,d_calls,g_calls", [(3, 1, 6, 2), (1, 3, 2, 6), (1, 1, 6, 6)])
def test_update_schedule(tiny_cfg, tmp_path, monkeypatch, n_dis, n_gen, d_calls, g_calls):
    calls = {"d": 0, "g": 0}
    cls = METHODS["sngan"]
    od, og = cls.d_step, cls.g_step
    monkeypatch.setattr(cls, "d_step", lambda self, b: (calls.__setitem__("d", calls["d"] + 1), od(self, b))[1])
    monkeypatch.setattr(cls, "g_step", lambda self, b: (calls.__setitem__("g", calls["g"] + 1), og(self, b))[1])
    train(tiny_cfg("trainer.steps=6", f"method.n_dis={n_dis}", f"method.n_gen={n_gen}"), tmp_path)
    assert calls == {"d": d_calls, "g": g_calls}


def test_divergence_guard_keeps_last_good_checkpoint(tiny_cfg, tmp_path, monkeypatch):
    cls = METHODS["sngan"]
    orig = cls.g_step

    def poisoned(self, batch):
        out = orig(self, batch)
        if self.iteration == 2:
            out["loss_g"] = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(cls, "g_step", poisoned)
    with pytest.raises(DivergenceError, match="non-finite loss at iteration 2: loss_g"):
        train(tiny_cfg("trainer.steps=6", "trainer.ckpt_every=1"), tmp_path)
    ck = state(tmp_path / "checkpoints" / "last.ckpt")
    assert ck["lsgan"]["iteration"] == 2
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


@pytest.mark.parametrize("override,needle", [
    ("method.n_dis=abc", "method.n_dis"),
    ("data.batch_size=1.5", "data.batch_size"),
    ("trainer.precision=fp8", "trainer.precision"),
    ("method.adv_loss=wgan_gp", "method.adv_loss='wgan_gp' is not accepted by method=cgan; accepted values: hinge, ns, "
                                "minimax"),
    ("loss=wgan_gp", "loss=wgan_gp: loss= names the objective/ablation (accepted for method=cgan: full); the "
                     "adversarial form is method.adv_loss=wgan_gp, which method=cgan does not accept"),
    ("trainer.max_minutes=0", "trainer.max_minutes=0"),
])
def test_bad_config_values_fail_in_one_line(tiny_cfg, tmp_path, override, needle):
    extra = ["method=cgan"] if "wgan_gp" in override else []
    with pytest.raises(ConfigError) as err:
        train(tiny_cfg(override, *extra), tmp_path)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg


def test_unknown_group_choice_lists_accepted_values():
    with pytest.raises(ConfigError) as err:
        precheck_overrides(["method=sngan,nosuch"])
    assert "method=nosuch" in str(err.value) and "cgan" in str(err.value) and "sngan" in str(err.value)


def test_missing_dataset_is_one_clear_line(tiny_cfg, tmp_path):
    with pytest.raises(ConfigError) as err:
        train(tiny_cfg("dataset=mnist", f"data.root={tmp_path / 'nowhere'}"), tmp_path / "run")
    msg = str(err.value)
    assert "mnist" in msg and "nowhere" in msg and "\n" not in msg


def test_cli_error_exit_code_and_single_line():
    out = cli("method=nosuch")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "accepted values" in out.stderr
    out = cli(*TINY, "method.n_dis=abc", "run_dir=/tmp/lsgan_bad_cfg")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("error: method.n_dis")


def test_cli_run_with_wandb_offline(tmp_path):
    out = cli(*TINY, "logger=wandb", "logger.mode=offline", f"run_dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "metrics.csv").is_file()
    assert list((tmp_path / "wandb").glob("offline-run-*")), "no offline W&B run written"
    assert "checkpoint:" in out.stdout


def test_wandb_one_run_per_job_and_the_same_run_on_resume(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    w = ("logger=wandb", "logger.mode=offline", "trainer.sample_every=2")
    train(tiny_cfg("trainer.steps=2", *w), tmp_path / "job0")  # two jobs of one process, as a sweep runs them
    train(tiny_cfg("trainer.steps=2", "method.lr_g=0.001", *w), tmp_path / "job1")
    ids = [(tmp_path / j / "wandb_id").read_text().strip() for j in ("job0", "job1")]
    assert ids[0] != ids[1]
    for job, run_id in zip(("job0", "job1"), ids):
        runs = list((tmp_path / job / "wandb").glob(f"offline-run-*-{run_id}"))
        assert len(runs) == 1, list((tmp_path / job / "wandb").iterdir())
        assert list(runs[0].rglob("samples_*.png")), "the sample grid was not logged as an image"
    train(tiny_cfg("trainer.steps=4", *w), tmp_path / "job0")  # resumed: the same W&B run id
    assert (tmp_path / "job0" / "wandb_id").read_text().strip() == ids[0]
    assert len(list((tmp_path / "job0" / "wandb").glob(f"offline-run-*-{ids[0]}"))) == 2
    assert not list((tmp_path / "job0" / "wandb").glob(f"offline-run-*-{ids[1]}"))


def test_wandb_multirun_makes_one_offline_run_per_job(tmp_path):
    """A 2-job sweep through the CLI: each job dir holds its own offline W&B run (its own id, kept in
    the job dir's wandb_id) named with the swept key, and nothing else opened a W&B run."""
    out = cli("-m", *TINY, "method=sngan", "trainer.steps=2", "seed=0,1", "logger=wandb", "logger.mode=offline",
              f"hydra.sweep.dir={tmp_path}", timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = sorted(p for p in tmp_path.iterdir() if (p / "config.yaml").is_file())
    assert [j.name.split("_")[0] for j in jobs] == ["0", "1"]
    ids = []
    for seed, job in enumerate(jobs):
        run_id = (job / "wandb_id").read_text().strip()
        runs = list((job / "wandb").glob("offline-run-*"))
        assert [r.name.rsplit("-", 1)[1] for r in runs] == [run_id], runs
        # the run's name, as W&B stores it in the offline run's record file: swept key included
        name = f"sngan-digits-full-hinge-s{seed} {job.name}"
        assert f"seed={seed}" in name and name.encode() in (runs[0] / f"run-{run_id}.wandb").read_bytes()
        ids.append(run_id)
    assert len(set(ids)) == 2
    assert not (tmp_path / "wandb").exists()  # no run outside the job dirs


def test_wandb_group_is_the_experiment_named_on_the_command_line(tiny_cfg):
    from lsgan.loggers import run_group

    cfg = tiny_cfg()
    assert run_group(cfg, ["experiment=clustergan_mnist", "seed=1"]) == "clustergan_mnist"
    assert run_group(cfg, ["seed=1"]) == run_group(cfg) == f"{cfg.method.name}-{cfg.data.name}"


def test_ddp_two_cpu_processes(tmp_path):
    out = cli(*TINY, "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "trainer.steps=6",
              "trainer.ckpt_every=3", f"run_dir={tmp_path}", timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ckpts == ["iter_0000003.ckpt", "iter_0000006.ckpt", "last.ckpt"]
    assert state(tmp_path / "checkpoints" / "last.ckpt")["lsgan"]["iteration"] == 6
    assert out.stdout.count("[lsgan] done") == 1  # rank 0 reports once


def test_multirun_submitit_local(tmp_path):
    out = cli("-m", "hydra/launcher=submitit_local", "method=sngan,cgan", *TINY, "trainer.steps=2",
              f"hydra.sweep.dir={tmp_path}", timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = sorted(p for p in tmp_path.iterdir() if (p / "config.yaml").exists())
    assert len(runs) == 2
    assert [r.name.split("_")[:2] for r in runs] == [["0", "sngan-digits"], ["1", "cgan-digits"]]  # job dirs say what ran
    for r in runs:
        assert (r / "checkpoints" / "last.ckpt").is_file()
        assert (r / "overrides.yaml").is_file() and not (r / ".hydra").exists()  # lsgan's record, not Hydra's


def test_a_sweep_with_run_dir_trains_each_job_in_its_own_folder_under_it(tmp_path):
    """Under -m, run_dir=DIR is the sweep's dir (as hydra.sweep.dir=DIR): each job trains in its own DIR/<n>_...,
    never in DIR itself, so no job resumes or overwrites another's checkpoints."""
    sweep = tmp_path / "sweep"
    out = cli("-m", *TINY, "method=sngan", "dataset=digits", "trainer.steps=1", "seed=0,1", f"run_dir={sweep}",
              timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    # named as any sweep's jobs: number, method-dataset, then the keys set (the swept seed among them)
    assert [j.name.split("_")[:2] for j in jobs] == [["0", "sngan-digits"], ["1", "sngan-digits"]]
    for seed, job in enumerate(jobs):
        assert f"seed={seed}" in job.name.split(",")
        ckpt = state(job / "checkpoints" / "last.ckpt")
        assert ckpt["lsgan"]["iteration"] == 1 and ckpt["hyper_parameters"]["cfg"]["seed"] == seed
        assert OmegaConf.load(job / "config.yaml").run_dir == str(job)  # the job's record names its own dir
    assert not (sweep / "checkpoints").exists() and not (sweep / "config.yaml").exists()


def test_bf16_mixed_precision_runs_on_cpu(tiny_cfg, tmp_path):
    res = train(tiny_cfg("trainer.precision=bf16-mixed", "trainer.steps=2"), tmp_path)
    rows = read_csv(tmp_path / "metrics.csv")
    assert res.iteration == 2 and all(float(r["loss_d"]) == float(r["loss_d"]) for r in rows)


def test_run_stopped_early_still_writes_grid_and_checkpoint(tiny_cfg, tmp_path):
    import pytorch_lightning as pl

    class StopNow(pl.Callback):  # any callback that stops the run (trainer.max_minutes is tested below)
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            trainer.should_stop = True

    res = train(tiny_cfg("trainer.steps=50", "trainer.ckpt_every=1"), tmp_path, callbacks=[StopNow()])
    assert res.iteration < 50
    assert (tmp_path / "samples" / "latest.png").is_file()
    assert state(tmp_path / "checkpoints" / "last.ckpt")["lsgan"]["iteration"] == res.iteration


def test_max_minutes_stops_training_and_keeps_its_state(tiny_cfg, tmp_path):
    # 0.6 ms: Lightning's timer stops after the first iteration; the end-of-training hooks still run
    res = train(tiny_cfg("trainer.steps=50", "trainer.ckpt_every=0", "trainer.max_minutes=0.00001"), tmp_path)
    assert 1 <= res.iteration < 50
    assert state(tmp_path / "checkpoints" / "last.ckpt")["lsgan"]["iteration"] == res.iteration
    assert (tmp_path / "samples" / "latest.png").is_file()


def test_metrics_csv_is_written_while_training(tiny_cfg, tmp_path):
    import pytorch_lightning as pl

    seen = {}

    class Peek(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if pl_module.iteration == 5:  # mid-run: rows of iterations 2 and 4 must already be on disk
                seen["rows"] = read_csv(tmp_path / "metrics.csv")

    train(tiny_cfg("trainer.steps=6", "trainer.log_every=2"), tmp_path, callbacks=[Peek()])
    assert [int(float(r["step"])) for r in seen["rows"]] == [2, 4]


def stop_with_signal_and_resume(tmp_path, sig):
    """Start a long CLI run, send ``sig`` once it has logged a few rows, check it saved and exited
    promptly with 128 + sig and no traceback, then resume it with the same command."""
    import time

    run_dir = tmp_path / "run"
    args = ["method=sngan", *[o for o in TINY if not o.startswith("trainer.steps")], "trainer.steps=100000",
            f"run_dir={run_dir}"]
    proc = subprocess.Popen([sys.executable, "-m", "lsgan.run", *args], cwd=REPO, env=CLI_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    csv_path = run_dir / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and not (csv_path.exists() and len(csv_path.read_text().splitlines()) > 3):
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[0][-2000:]
    sent = time.time()
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert time.time() - sent < 15  # it finishes the batch, saves and exits
    assert proc.returncode == 128 + int(sig), out[-2000:]
    assert f"stopped by {sig.name} at iteration" in out and "Traceback" not in out
    stopped_at = int(state(run_dir / "checkpoints" / "last.ckpt")["lsgan"]["iteration"])
    assert stopped_at >= 3
    assert not (run_dir / ".lock").exists()  # the run dir is free again
    res = cli(*[a if not a.startswith("trainer.steps") else f"trainer.steps={stopped_at + 2}" for a in args])
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert f"resuming from {run_dir / 'checkpoints' / 'last.ckpt'} (iteration {stopped_at})" in res.stdout


def test_sigterm_saves_a_checkpoint_exits_promptly_and_the_same_command_resumes(tmp_path):
    import signal

    stop_with_signal_and_resume(tmp_path, signal.SIGTERM)


# tiny latents where a method's prior needs them
LOAD_EXTRA = {"clustergan": ["prior.dim=16", "prior.k=4"], "nemgan": ["prior.dim=20"], "slcgan": ["method.num_clusters=4"]}


@pytest.mark.parametrize("method", ["sngan", "cgan", "coupled", "clustergan", "nemgan", "slcgan"])
def test_lightning_load_from_checkpoint_works(tiny_cfg, tmp_path, method):
    overrides = [f"method={method}"] + LOAD_EXTRA.get(method, [])
    res = train(tiny_cfg(*overrides, "trainer.steps=2"), tmp_path / "run")
    m = METHODS[method].load_from_checkpoint(str(res.checkpoint), map_location="cpu")
    assert type(m) is METHODS[method] and m.iteration == 2
    assert m.sample(2).shape[0] == 2


def test_a_checkpoint_written_before_a_method_key_existed_still_loads(tiny_cfg, tmp_path):
    from lsgan.loading import load_method

    res = train(tiny_cfg("method=clustergan", "prior.dim=16", "prior.k=4", "trainer.steps=1"), tmp_path / "run")
    blob = torch.load(res.checkpoint, map_location="cpu", weights_only=False)
    del blob["hyper_parameters"]["cfg"]["method"]["mode_seeking_weight"]  # as a checkpoint from before the option
    torch.save(blob, tmp_path / "old.ckpt")
    m, _ = load_method(tmp_path / "old.ckpt")
    assert m.mcfg.mode_seeking_weight == 0.0


def test_gradient_clipping_bounds_every_networks_gradient_norm(tiny_cfg, tmp_path):
    import pytorch_lightning as pl

    norms = []

    class Record(pl.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())

    train(tiny_cfg("trainer.gradient_clip_val=0.01", "trainer.steps=3"), tmp_path, callbacks=[Record()])
    assert len(norms) == 6 and max(norms) <= 0.01 * (1 + 1e-4)  # D and G, three iterations each
    with pytest.raises(ConfigError, match="trainer.gradient_clip_val=-1.0: must be > 0"):
        train(tiny_cfg("trainer.gradient_clip_val=-1"), tmp_path / "bad")


def test_metrics_reach_callback_metrics_and_ckpt_monitor_keeps_best(tmp_path):
    import pytorch_lightning as pl
    from lsgan.run import compose_config

    seen = []

    class Look(pl.Callback):
        def on_train_end(self, trainer, pl_module):
            seen.append(dict(trainer.callback_metrics))

    cfg = compose_config(["method=sngan", "dataset=ring8", "model=mlp", "model.mlp_width=16", "model.mlp_depth=1",
                          "data.n_points=500", "data.batch_size=32", "trainer.steps=4", "trainer.progress_bar=false",
                          "trainer.accelerator=cpu", "trainer.sample_every=0", "trainer.ckpt_every=0",
                          "metrics.every=2", "metrics.names=[modes]", "metrics.n_samples=200", "metrics.modes_n=200",
                          "trainer.ckpt_monitor=modes", f"metrics.cache_dir={tmp_path / 'cache'}"])
    train(cfg, tmp_path / "run", callbacks=[Look()])
    assert "modes" in seen[0] and float(seen[0]["modes"]) >= 0
    assert (tmp_path / "run" / "checkpoints" / "best.ckpt").is_file()
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert best["lsgan"]["iteration"] in (2, 4)


@pytest.mark.parametrize("override,needle", [
    ("trainer.ckpt_monitor=cond_acc", "needs metrics during training"),
    ("trainer.ckpt_mode=lowest", "trainer.ckpt_mode='lowest' is not accepted"),
])
def test_ckpt_monitor_misconfigurations_are_one_line(override, needle):
    from lsgan.config import validate
    from lsgan.run import compose_config

    with pytest.raises(ConfigError, match=needle):
        validate(compose_config([override]))


@pytest.mark.parametrize("arg,needle", [
    ("trainer.max_steps=5", "trainer.max_steps is not a config key; did you mean trainer.steps? (keys of trainer: steps,"),
    ("+foo.bar=1", "foo.bar is not a config key (top-level keys: seed,"),
    ("method.lr_x=3", "method.lr_x is not a config key (keys of method: name,"),
])
def test_unknown_keys_with_or_without_plus_fail_in_one_line(tmp_path, arg, needle):
    out = cli("method=sngan", arg, f"run_dir={tmp_path / 'run'}", timeout=120)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: " + needle), out.stderr[-1000:]
    assert not (tmp_path / "run").exists()  # nothing written


def test_resume_accepts_a_path_containing_equals_signs(tiny_cfg, tmp_path):
    from lsgan.run import quote_path_override

    assert quote_path_override("resume=runs/a/seed=1,x=2/last.ckpt") == "resume='runs/a/seed=1,x=2/last.ckpt'"
    assert quote_path_override("method.lr_g=1e-4,3e-4") == "method.lr_g=1e-4,3e-4"  # a sweep stays a sweep
    run_dir = tmp_path / "seed=3,trainer.steps=2"
    res = train(tiny_cfg("trainer.steps=2"), run_dir)
    out = cli("method=sngan", *[o for o in TINY if not o.startswith("trainer.steps")], "trainer.steps=3",
              f"resume={res.checkpoint}", f"run_dir={tmp_path / 'resumed'}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(iteration 2)" in out.stdout
    import yaml  # the CLI keeps its command line for python -m lsgan.runs

    assert "trainer.steps=3" in yaml.safe_load((tmp_path / "resumed" / "overrides.yaml").read_text())


def test_divergence_at_the_first_iteration_does_not_claim_a_checkpoint(tiny_cfg, tmp_path, monkeypatch):
    cls = METHODS["sngan"]
    orig = cls.g_step

    def poisoned(self, batch):
        out = orig(self, batch)
        out["loss_g"] = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(cls, "g_step", poisoned)
    with pytest.raises(DivergenceError, match="at iteration 0: loss_g; training stopped, no checkpoint was written"):
        train(tiny_cfg("trainer.steps=3"), tmp_path)


def test_a_rerun_that_fails_on_its_data_leaves_config_yaml_alone(tiny_cfg, tmp_path):
    train(tiny_cfg("trainer.steps=1"), tmp_path)
    before = (tmp_path / "config.yaml").read_text()
    with pytest.raises(Exception):
        train(tiny_cfg("trainer.steps=2", "dataset=mnist", f"data.root={tmp_path / 'nowhere'}"), tmp_path)
    assert (tmp_path / "config.yaml").read_text() == before
