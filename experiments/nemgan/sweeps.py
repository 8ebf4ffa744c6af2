"""The NEMGAN experiments of issue 6 as Hydra multirun sweeps, defined once here (README.md lists them).

    python experiments/nemgan/sweeps.py print              # the exact commands
    python experiments/nemgan/sweeps.py check              # compose + validate every run of every sweep
    python experiments/nemgan/sweeps.py run imbalance_04   # launch one sweep (python -m lsgan.run -m ...)
    python experiments/nemgan/sweeps.py smoke ring8 /tmp/x # the sweep with tiny nets and 2 steps (does it start?)

A sweep is a list of commands (Hydra sweeps a cartesian product, so settings that must move
together — a class ratio and the prior weights that match it — are separate commands). Runs land
in ``runs/nemgan/<sweep>/<job>_<overrides>/``; ``collect.py <sweep dir>`` writes the table.
``LSGAN_DATA`` sets data.root (default ../shared/data).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/: the shared _common module
from _common import expand, sweeps_main  # noqa: E402

DATA = os.environ.get("LSGAN_DATA", "../shared/data")
SEEDS = "seed=0,1,2"
# MNIST setting: SNGAN standard CNN at 32 px, batch 64 (method defaults: ns loss, Adam 2e-4 / 0.5).
MNIST = ["dataset=mnist", "model=dcgan", "data.batch_size=64", "trainer.steps=20000", "trainer.ckpt_every=5000",
         "trainer.sample_every=5000"]
RING = ["dataset=ring8", "model=mlp", "prior.k=8", "data.batch_size=256", "trainer.steps=20000",
        "trainer.ckpt_every=5000", "trainer.sample_every=5000"]


def _ratio(classes: str, ratio: str, prior_weights: str = None) -> List[str]:
    """Two-class MNIST at a ratio, with the prior's P_Y equal to it unless given."""
    return [f"data.classes=[{classes}]", f"data.class_ratio=[{ratio}]", "prior.k=2",
            f"prior.weights=[{prior_weights or ratio}]"]


# sweep name -> list of override lists (one multirun command each)
SWEEPS: Dict[str, List[List[str]]] = {
    # h(x) accuracy under class imbalance, prior matching the data (paper: 99 / 99 / 90 %, 3/5: 98.2 %)
    "imbalance_04": [MNIST + _ratio("0,4", r) + [SEEDS] for r in ("0.5,0.5", "0.25,0.75", "0.02,0.98")],
    "imbalance_35": [MNIST + _ratio("3,5", "0.3,0.7") + [SEEDS]],
    # k = 10 MNIST (paper: h(x) 96.09 %, FID 4.37)
    "mnist_k10": [MNIST + ["prior.k=10", SEEDS]],
    # mode counting: stacked MNIST (paper: 1000 / 993 modes) and ring8 (all 8 modes)
    "stacked_mnist": [["dataset=stacked_mnist", "model=dcgan", "data.batch_size=64", "trainer.steps=20000",
                       "trainer.ckpt_every=5000", "trainer.sample_every=5000", "prior.k=10", SEEDS]],
    "ring8": [RING + ["seed=0,1,2,3,4"]],
    # ablations on k = 10 MNIST: without h1 less variety, without h2 classes mix, GAN-only no separation
    "ablations": [MNIST + ["prior.k=10", "loss=full,no_h1,no_h2,gan_only", SEEDS]],
    # biased priors on 3/5 at 30:70: P_Y off by 0-20 %, unsupervised vs 5 %-per-class semi-supervision
    "biased_prior": [MNIST + _ratio("3,5", "0.3,0.7", "0.3,0.7],[0.35,0.65],[0.4,0.6],[0.45,0.55],[0.5,0.5") + [
        "method.semi_fraction=0,0.05", "method.semi_every=100", SEEDS]],
}


def command(name: str, overrides: List[str], python: str = "python") -> List[str]:
    return ([python, "-m", "lsgan.run", "-m", "method=nemgan"]
            + overrides + [f"data.root={DATA}", f"hydra.sweep.dir=runs/nemgan/{name}", "logger=csv"])


def _no_duplicate_keys(name: str, overrides: List[str]) -> None:
    keys = [o.split("=", 1)[0] for o in overrides]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise SystemExit(f"sweep {name}: keys given twice: {', '.join(dup)}")


def job_dirname(run: List[str], excluded) -> str:
    """Hydra's job folder name for one run: ``<num>_<sorted overrides minus excluded keys>``."""
    return "999_" + ",".join(sorted(o for o in run if o.split("=", 1)[0] not in excluded))


def check() -> int:
    """Compose and validate every single run of every sweep (reads no data) and check its job
    folder name fits a file name (255 bytes); returns the count."""
    import yaml

    from lsgan.config import validate
    from lsgan.run import CONF_DIR, compose_config

    base = yaml.safe_load((CONF_DIR / "config.yaml").read_text())
    excluded = set(base["hydra"]["job"]["config"]["override_dirname"]["exclude_keys"])
    n = 0
    for name, commands in SWEEPS.items():
        for overrides in commands:
            _no_duplicate_keys(name, command(name, overrides)[4:])
            for run in expand(["method=nemgan"] + overrides + [f"data.root={DATA}"]):
                validate(compose_config(run))
                if len(job_dirname(run, excluded).encode()) > 255:
                    raise SystemExit(f"sweep {name}: job folder name too long for {run}")
                n += 1
        print(f"ok  {name}")
    return n


# smoke: the same sweep with tiny nets, 2 steps and one seed, to see every command start and finish
SMOKE = {"trainer.steps": "2", "trainer.ckpt_every": "0", "trainer.sample_every": "0", "seed": "0",
         "data.batch_size": "16", "trainer.progress_bar": "false"}
SMOKE_EXTRA = ["model.g_width=8", "model.d_width=8", "model.mlp_width=16", "data.n_points=512", "data.max_train=512"]


def smoke_overrides(overrides: List[str]) -> List[str]:
    keys = {o.split("=", 1)[0] for o in overrides}
    out = [f"{o.split('=', 1)[0]}={SMOKE[o.split('=', 1)[0]]}" if o.split("=", 1)[0] in SMOKE else o
           for o in overrides]
    return out + [f"{k}={v}" for k, v in SMOKE.items() if k not in keys] + SMOKE_EXTRA


def smoke(name: str, folder: str) -> None:
    for i, overrides in enumerate(SWEEPS[name]):
        cmd = command(name, smoke_overrides(overrides), sys.executable)
        # short job folders: the tiny-net overrides would push Hydra's names past 255 bytes
        cmd = [c for c in cmd if not c.startswith("hydra.sweep.dir=")] + [
            f"hydra.sweep.dir={folder}/{i}", "hydra.sweep.subdir=${hydra.job.num}"]
        subprocess.run(cmd, check=True)


def main(argv: List[str]) -> None:
    sweeps_main(argv, {name: [command(name, o) for o in cmds] for name, cmds in SWEEPS.items()}, check, smoke)


if __name__ == "__main__":
    main(sys.argv[1:])
