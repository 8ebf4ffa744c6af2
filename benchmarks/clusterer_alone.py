"""The clustering term alone: an encoder (the recipes' DCGAN trunk, width 16) trained on MNIST with
lsgan.losses.invariant_clustering_loss on two random views, no GAN, test-set ACC every 500 steps.
Isolates what the clustering term of clustergan / nemgan (and slcGAN's C loss) can do per CPU minute,
and which optimiser settings make C collapse to one cluster.

    OMP_NUM_THREADS=1 python benchmarks/clusterer_alone.py --data ../shared/data/mnist.npz --minutes 3
    ... --lr 1e-4 --spectral-norm --betas 0 0.999      # the paper's C optimiser (docs/slcgan.md)
    ... --one-clean-view                               # p = C(x), q = C(T(x)) as slcGAN's Eq. 5
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from omegaconf import OmegaConf

from lsgan.augment import AugmentConfig, MultiViewAugment
from lsgan.losses import invariant_clustering_loss
from lsgan.metrics.clustering import cluster_acc, nmi
from lsgan.nets import build_encoder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/mnist.npz")
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--steps", type=int, default=100000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--betas", type=float, nargs=2, default=[0.5, 0.999])
    p.add_argument("--spectral-norm", action="store_true")
    p.add_argument("--balance-weight", type=float, default=2.0)
    p.add_argument("--one-clean-view", action="store_true", help="first view is the image itself")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    d = np.load(a.data)
    x_train = torch.from_numpy(d["x_train"]).float().div(127.5).sub(1).unsqueeze(1)
    x_test = torch.from_numpy(d["x_test"]).float().div(127.5).sub(1).unsqueeze(1)
    y_test = d["y_test"].astype(np.int64)
    model = OmegaConf.create({"arch": "dcgan", "d_width": a.width, "mlp_width": 256, "mlp_depth": 3})
    enc = build_encoder(model, (1, 28, 28), 10, a.spectral_norm)
    aug = MultiViewAugment(AugmentConfig(kind="affine"), (1, 28, 28))
    opt = torch.optim.Adam(enc.parameters(), lr=a.lr, betas=tuple(a.betas))

    def evaluate(step: int, start: float) -> None:
        enc.eval()
        with torch.no_grad():
            pred = torch.cat([enc(c).argmax(1) for c in x_test.split(1000)]).numpy()
        enc.train()
        sizes = np.bincount(pred, minlength=10)
        print(f"step {step:6d}  {time.time() - start:6.0f} s  ACC {cluster_acc(y_test, pred):.3f}  "
              f"NMI {nmi(y_test, pred):.3f}  largest/smallest {sizes.max() / max(1, sizes.min()):.1f}", flush=True)

    start, step = time.time(), 0
    while step < a.steps and time.time() - start < a.minutes * 60:
        x = x_train[torch.randint(0, len(x_train), (a.batch_size,))]
        first = x if a.one_clean_view else aug(x)
        loss, _ = invariant_clustering_loss(enc(first), enc(aug(x)), a.balance_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 500 == 0:
            evaluate(step, start)
    evaluate(step, start)


if __name__ == "__main__":
    main()
