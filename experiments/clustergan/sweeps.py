"""The ClusterGAN experiments of issue 5 as Hydra multirun sweeps (defined once; README.md lists them).

    python experiments/clustergan/sweeps.py print             # the exact commands
    python experiments/clustergan/sweeps.py check             # compose + validate every run (no data read)
    python experiments/clustergan/sweeps.py run latent_size   # launch one sweep (python -m lsgan.run -m ...)

Runs land in ``runs/clustergan/<sweep>/<job>_<overrides>/``; ``collect.py`` evaluates them and
writes the table. ``DATA`` is the folder with mnist.npz (override with LSGAN_DATA=...); add
``trainer.accelerator=gpu`` via LSGAN_EXTRA="..." (space-separated overrides) on a GPU machine.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/: the shared _common module
from _common import check_sweeps, sweeps_main  # noqa: E402

DATA = os.environ.get("LSGAN_DATA", "../shared/data")
EXTRA = os.environ.get("LSGAN_EXTRA", "").split()
# The authors' MNIST setting: 28 px, batch 64, WGAN-GP critic without spectral norm (method and
# loss defaults carry the rest: n_dis 5, Adam 1e-4 (0.5, 0.9), beta_n = beta_c = 10, sigma 0.1).
# 100k iterations = 20k G/E updates (the authors ran far longer; this is a GPU-hours budget).
MNIST = ["dataset=mnist", "data.size=28", "data.batch_size=64", "model=dcgan", "model.spectral_norm=false",
         "trainer.steps=100000", "trainer.ckpt_every=10000", "trainer.sample_every=10000"]

SWEEPS: Dict[str, List[str]] = {
    # student study "Latent space representation": d = 20 / 100 / 200 (here d = size of z_n)
    "latent_size": ["prior.dim=20,100,200"] + MNIST,
    # one-hot + narrow Gaussian vs a continuous Gaussian mixture; both 40-D in total
    # (onehot_gaussian: 30 + 10, gmm: 40 — each prior file's own dim)
    "prior": ["prior=onehot_gaussian,gmm"] + MNIST,
    # what restores within-cluster variety: the authors' WGAN-GP vs the quick non-saturating
    # loss, and the spread of z_n (sigma 0.1 as the authors, 1.0 as the PyTorch port)
    "variety": ["loss=wgan_gp,ns", "prior.sigma=0.1,1.0"] + MNIST,
}


def command(name: str) -> List[str]:
    return (["python", "-m", "lsgan.run", "-m", "method=clustergan"] + SWEEPS[name] + EXTRA
            + [f"data.root={DATA}", f"hydra.sweep.dir=runs/clustergan/{name}", "logger=csv"])


def _same_z_dim(cfg) -> None:
    if cfg.method.z_dim != cfg.prior.dim:
        raise SystemExit(f"method.z_dim={cfg.method.z_dim} differs from prior.dim={cfg.prior.dim}")


def main(argv: List[str]) -> None:
    sweeps_main(argv, {name: [command(name)] for name in SWEEPS},
                lambda: check_sweeps('clustergan', SWEEPS, EXTRA + [f'data.root={DATA}'], _same_z_dim))


if __name__ == "__main__":
    main(sys.argv[1:])
