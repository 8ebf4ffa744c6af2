"""What an independent 10-class MNIST evaluator calls the samples of each mode of a nemgan checkpoint.

For runs on a subset of the digits (``experiment=nemgan_mnist04``) the run's own evaluator is trained on
that subset only and calls anything that is not a 4 a "0"; the 10-class one can say "8" (docs/nemgan.md,
session 10). Needs the 28-px MNIST evaluator
(``python -m lsgan.train_evaluator dataset=mnist data.size=28 data.root=../shared/data``).

    python experiments/nemgan/mode_verdict.py <run>/checkpoints/last.ckpt [--n 1000] [--evaluator PATH]
"""
from __future__ import annotations

import argparse

import torch

from lsgan.io import cache_root
from lsgan.loading import load_method
from lsgan.metrics.evaluator import evaluator_cache_path, load_evaluator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpt")
    ap.add_argument("--n", type=int, default=1000, help="samples per mode")
    ap.add_argument("--evaluator", default=evaluator_cache_path(cache_root(), "mnist", 28, 1),
                    help="default: the cached 28-px MNIST evaluator ($LSGAN_CACHE or ~/.cache/lsgan)")
    args = ap.parse_args()
    torch.manual_seed(0)
    method, _ = load_method(args.ckpt)
    evaluator = load_evaluator(args.evaluator)
    for mode in range(method.num_conditions):
        with torch.no_grad():
            probs = evaluator.logits(method.sample(args.n, condition=mode)).softmax(dim=1)
        counts = torch.bincount(probs.argmax(dim=1), minlength=probs.shape[1])
        shares = ", ".join(f'"{d}" {c / args.n:.1%}' for d, c in enumerate(counts.tolist()) if c)
        print(f"mode {mode}: {shares} (mean top probability {probs.max(dim=1).values.mean():.3f})")


if __name__ == "__main__":
    main()
