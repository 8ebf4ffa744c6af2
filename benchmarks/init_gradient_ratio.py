"""Gradient on G's parameters at init: each conditioning term against the adversarial term.

    python benchmarks/init_gradient_ratio.py experiment=clustergan_mnist
    python benchmarks/init_gradient_ratio.py "method=nemgan dataset=mnist data.size=28" "experiment=slcgan_mnist"

Each argument is one space-separated override list (a recipe); prints the adversarial gradient norm
and each conditioning term's norm with its ratio to it (64 latents, seed 0, MNIST-shaped nets, no data
read). tests/test_conditioning_scale.py asserts ratio >= 0.05 for every recipe in conf/experiment/.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: tests/ helpers
from tests.test_conditioning_scale import MNIST, generator_gradients  # noqa: E402

import torch  # noqa: E402

from lsgan.methods import METHODS  # noqa: E402
from lsgan.run import compose_config  # noqa: E402


def main(argv) -> None:
    for arg in argv or ["experiment=clustergan_mnist", "experiment=nemgan_mnist", "experiment=slcgan_mnist"]:
        torch.manual_seed(0)
        cfg = compose_config(arg.split())
        method = METHODS[cfg.method.name](cfg, MNIST)
        method.train()
        grads = generator_gradients(method)
        adv = grads.pop("adv")
        terms = ", ".join(f"{k} {v:.3g} (ratio {v / adv:.3g})" for k, v in grads.items())
        print(f"{arg}: adversarial {adv:.3g}; {terms}")


if __name__ == "__main__":
    main(sys.argv[1:])
