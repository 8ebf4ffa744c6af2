"""The clustering term on real images alone (no GAN), on a recipe's own mode net: how well does it
cluster 0/4 at 02:98 with each form of balance? A few CPU-minutes per form, so a balance can be
ruled in or out before a 30-minute GAN run (docs/nemgan.md, session 10).

    OMP_NUM_THREADS=1 python experiments/nemgan/clustering_term_probe.py --root ../shared/data \\
        --steps 1200 --seed 0 soft sinkhorn

Forms: ``soft`` (the recipe before session 10: views as each other's targets, forward KL at weight 2),
``soft_reverse`` (reverse KL at weight 10), ``sinkhorn`` (method.assign=sinkhorn at the recipe's
eps / pool), ``sinkhorn_heads5`` (the same with five SeLa heads, the one the others agree with read). Training images: the training split's 0s and 4s subsampled to 02:98, as the run sees
them; printed: balanced Hungarian accuracy of the net's argmax on all 0/4 test images (balanced
classes) four times along the way, and the share it puts in mode 0.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from lsgan.config import validate
from lsgan.metrics.clustering import clustering_report
from lsgan.run import build_datamodule, build_method, compose_config

FORMS = {
    "soft": ["method.assign=soft", "method.balance_kl=forward", "method.balance_weight=2"],
    "soft_reverse": ["method.assign=soft", "method.balance_kl=reverse", "method.balance_weight=10"],
    "sinkhorn": ["method.assign=sinkhorn", "method.balance_weight=0"],
    "sinkhorn_heads5": ["method.assign=sinkhorn", "method.balance_weight=0", "method.sinkhorn_heads=5"],
}


def images(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).float()[:, None] / 127.5 - 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default="../shared/data", help="folder holding mnist.npz")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--experiment", default="nemgan_mnist04")
    ap.add_argument("forms", nargs="+", choices=sorted(FORMS))
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 1)))
    d = np.load(os.path.join(args.root, "mnist.npz"))
    rng = np.random.default_rng(0)
    zeros, fours = np.flatnonzero(d["y_train"] == 0), np.flatnonzero(d["y_train"] == 4)
    zeros = rng.choice(zeros, int(round(len(fours) * 2 / 98)), replace=False)
    x_train = images(d["x_train"][np.concatenate([zeros, fours])])
    test = np.flatnonzero((d["y_test"] == 0) | (d["y_test"] == 4))
    x_test, y_test = images(d["x_test"][test]), (d["y_test"][test] == 4).astype(int)
    for form in args.forms:
        torch.manual_seed(args.seed)
        cfg = validate(compose_config([f"experiment={args.experiment}", f"data.root={args.root}",
                                       "data.max_train=512", *FORMS[form]]))
        method = build_method(cfg, build_datamodule(cfg))
        net, term = method.mode_net, method.cluster_term
        assert net is not None and term is not None, f"--experiment {args.experiment}: needs a mode net and its clustering term"
        opt = torch.optim.Adam(net.parameters(), lr=float(cfg.method.lr_h), betas=tuple(cfg.method.betas))
        for step in range(1, args.steps + 1):
            batch = x_train[torch.randint(0, len(x_train), (int(cfg.data.batch_size),))]
            loss, parts = term(batch, net)
            if loss.requires_grad:  # assign=sinkhorn is off while its pool of images fills
                opt.zero_grad()
                loss.backward()
                opt.step()
            if step % max(1, args.steps // 4) == 0:
                net.eval()
                with torch.no_grad():
                    pred = term.select(net(x_test)).argmax(1).numpy()
                net.train()
                report = clustering_report(y_test, pred)
                print(f"{form} seed {args.seed} step {step}: balanced ACC {report['balanced_acc']:.3f}, "
                      f"mode-0 share {np.mean(pred == 0):.3f}, "
                      + ", ".join(f"{k} {float(v):.3f}" for k, v in parts.items()), flush=True)


if __name__ == "__main__":
    main()
