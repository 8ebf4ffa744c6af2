"""The slcGAN experiments of issue 7 as Hydra multirun sweeps (one place; README.md lists them).

    python experiments/slcgan/sweeps.py print          # the exact commands
    python experiments/slcgan/sweeps.py check          # compose + validate every run of every sweep
    python experiments/slcgan/sweeps.py run mnist_k    # launch one sweep (python -m lsgan.run -m ...)

Each sweep writes its runs under ``runs/slcgan/<sweep>/<job>_<overrides>/``; ``collect.py`` reads
them. ``DATA`` is where the .npz files are (override with LSGAN_DATA=...).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/: the shared _common module
from _common import check_sweeps, sweeps_main  # noqa: E402

DATA = os.environ.get("LSGAN_DATA", "../shared/data")
GPU = ["trainer.accelerator=gpu", "trainer.precision=bf16-mixed"]
# Paper setting on CIFAR: ResNet nets, batch 256, Adam 1e-4, D twice per G (method defaults).
CIFAR = ["model=resnet", "data.batch_size=256", "trainer.steps=100000", "trainer.ckpt_every=5000",
         "trainer.sample_every=5000"] + GPU
MNIST = ["model=dcgan", "data.batch_size=64", "trainer.steps=20000", "trainer.ckpt_every=5000",
         "method.augment.flip=0"]  # a mirrored digit is a different shape, not another view of it

SWEEPS: Dict[str, List[str]] = {
    # K small / medium / large per dataset
    "mnist_k": ["dataset=mnist", "method.num_clusters=10,50"] + MNIST,
    "cifar10_k": ["dataset=cifar10", "method.num_clusters=10,50,100"] + CIFAR,
    # K = 20 scored against the 20 superclasses (paper: ACC 21.5 %)
    "cifar100_coarse": ["dataset=cifar100_coarse", "method.num_clusters=20"] + CIFAR,
    # K = 100 / 500 scored against the 100 fine classes (paper: ACC 15.7 % with K = 100)
    "cifar100_k": ["dataset=cifar100", "method.num_clusters=100,500"] + CIFAR,
    # ablation of the multi-view term (paper: linear probe 68.3 % with L_aug, 63.7 % without)
    "cifar10_no_aug": ["dataset=cifar10", "method.num_clusters=10", "loss=full,no_aug"] + CIFAR,
    "mnist_no_aug": ["dataset=mnist", "method.num_clusters=10", "loss=full,no_aug"] + MNIST,
}


def command(name: str) -> List[str]:
    return (["python", "-m", "lsgan.run", "-m", "method=slcgan"] + SWEEPS[name]
            + [f"data.root={DATA}", f"hydra.sweep.dir=runs/slcgan/{name}", "logger=csv"])


def main(argv: List[str]) -> None:
    sweeps_main(argv, {name: [command(name)] for name in SWEEPS},
                lambda: check_sweeps('slcgan', SWEEPS, [f'data.root={DATA}']))


if __name__ == "__main__":
    main(sys.argv[1:])
