"""The coupled experiments of issue 4 (Durall et al., 2021), defined once; README.md lists them.

    python experiments/coupled/sweeps.py print                 # every exact command, in order
    python experiments/coupled/sweeps.py check                 # compose + validate every run (reads no data)
    python experiments/coupled/sweeps.py run mnist_ablation    # launch one experiment's commands

Runs land in ``runs/coupled/<experiment>/...``; each ends with the conditional accuracy and the
classifier FID in its metrics.csv (``metrics.every`` = the last iteration), which
``collect.py`` turns into tables and the accuracy-vs-label-noise curve. ``LSGAN_DATA`` sets
``data.root`` (default ../shared/data); ``LSGAN_WEIGHTS`` the folder of trained extractors
(default runs/coupled/weights).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/: the shared _common module
from _common import expand, sweeps_main  # noqa: E402

DATA = os.environ.get("LSGAN_DATA", "../shared/data")
WEIGHTS = os.environ.get("LSGAN_WEIGHTS", "runs/coupled/weights")
NOISE_LEVELS = ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]  # fraction of training labels flipped (Fig. 7: 0…100 %)


def _evaluate_at(steps: int, n: int) -> List[str]:
    return [f"trainer.steps={steps}", f"metrics.every={steps}", "metrics.names=[cond_acc,classifier_fid]",
            f"metrics.n_samples={n}"]


# MNIST on CPU or one GPU: SNGAN standard-CNN nets; CIFAR-10 on a GPU: SNGAN ResNet, bf16.
MNIST = ["dataset=mnist", "model=dcgan", "data.batch_size=64", "trainer.ckpt_every=5000",
         "trainer.sample_every=1000"] + _evaluate_at(20000, 5000)
CIFAR = ["dataset=cifar10", "model=resnet", "data.batch_size=64", "trainer.ckpt_every=5000",
         "trainer.sample_every=5000", "trainer.accelerator=gpu", "trainer.precision=bf16-mixed"] + _evaluate_at(100000, 10000)
ROTNET_CIFAR = f"{WEIGHTS}/rotnet-cifar10.pt"


def supervised_weights(noise: str) -> str:
    return f"{WEIGHTS}/supervised-mnist-noise{noise}.pt"


# experiment -> list of commands (each a list of arguments after `python -m <module>`); multirun
# commands ("-m") sweep comma-separated values.
EXPERIMENTS: Dict[str, List[List[str]]] = {
    # Table 3 on MNIST: the four loss variants and the "standard approach", untrained-AlexNet features.
    "mnist_ablation": [
        ["lsgan.run", "-m", "method=coupled", "loss=full,proto_a,proto_b,proto_c,feature_cgan",
         "extractor=alexnet_random"] + MNIST,
        ["lsgan.run", "-m", "method=sngan", "loss=minimax"] + MNIST,  # the unconditional baseline
    ],
    # Table 3 on CIFAR-10 (GPU): RotNet features (self-supervised, trained first).
    "cifar10_ablation": [
        ["lsgan.train_extractor", "extractor=rotnet", "dataset=cifar10", f"extractor.weights={ROTNET_CIFAR}",
         "extractor.train_steps=20000", "extractor.device=cuda"],
        ["lsgan.run", "-m", "method=coupled", "loss=full,proto_a,proto_b,proto_c,feature_cgan", "extractor=rotnet",
         f"extractor.weights={ROTNET_CIFAR}"] + CIFAR,
        ["lsgan.run", "-m", "method=sngan", "loss=minimax"] + CIFAR,
    ],
    # Fig. 7 on MNIST: accuracy vs label noise. Coupled conditions on a classifier trained on
    # noisy labels (one extractor per level; the method itself never reads labels), against the
    # cGAN trained on the same noisy labels.
    "mnist_robustness": (
        [["lsgan.train_extractor", "extractor=supervised", "dataset=mnist", f"data.label_noise={p}",
          f"extractor.weights={supervised_weights(p)}", "extractor.train_steps=3000"] for p in NOISE_LEVELS]
        + [["lsgan.run", "method=coupled", "loss=full", "extractor=supervised", f"data.label_noise={p}",
            f"extractor.weights={supervised_weights(p)}"] + MNIST for p in NOISE_LEVELS]
        + [["lsgan.run", "-m", "method=cgan", "loss=hinge", f"data.label_noise={','.join(NOISE_LEVELS)}"] + MNIST]
    ),
}


def command(experiment: str, args: List[str]) -> List[str]:
    module, rest = args[0], args[1:]
    extra = [f"data.root={DATA}"]
    if module == "lsgan.run":
        where = "hydra.sweep.dir" if "-m" in rest else "hydra.run.dir"
        tag = "multirun" if "-m" in rest else "${method.name}-${loss.name}-noise${data.label_noise}"
        extra += [f"{where}=runs/coupled/{experiment}" + ("" if "-m" in rest else f"/{tag}"), "logger=csv",
                  "trainer.progress_bar=false"]
        if "-m" in rest:
            extra.append("hydra.sweep.subdir=${hydra.job.num}_${method.name}-${loss.name}-noise${data.label_noise}")
    return ["python", "-m", module] + rest + extra


def check() -> int:
    """Compose and validate every training run (the extractor runs: their node); returns runs checked."""
    from lsgan.config import validate
    from lsgan.run import compose_config, precheck_overrides

    n = 0
    for experiment, commands in EXPERIMENTS.items():
        for args in commands:
            for overrides in expand(args[1:]):
                overrides = [o for o in overrides if not o.startswith("hydra.")] + [f"data.root={DATA}"]
                precheck_overrides(overrides)
                cfg = compose_config(overrides)
                if args[0] == "lsgan.run":
                    validate(cfg)
                else:
                    from lsgan.features.cli import validate_feature_nodes
                    from lsgan.features.extractors import check_extractor_config

                    check_extractor_config(validate_feature_nodes(cfg).extractor, need_weights=False)
                n += 1
    return n


def main(argv: List[str]) -> None:
    sweeps_main(argv, {exp: [command(exp, args) for args in cmds] for exp, cmds in EXPERIMENTS.items()}, check)


if __name__ == "__main__":
    main(sys.argv[1:])
