"""C's clustering of the MNIST test set at every checkpoint of an slcgan run: ACC and the largest /
smallest cluster, for the online C and, when the run kept one (``method.c_ema_decay``), its EMA.
Shows how far C moves between checkpoints, i.e. how much one end-of-run figure depends on the moment.

    python benchmarks/slcgan_c_along_run.py --run runs/<name> --root ../shared/data

The images are the run's own evaluation split (its data config, read by lsgan.data.load_dataset).
"""
from __future__ import annotations

import argparse
import glob
import os

import torch

from lsgan.data.datasets import load_dataset
from lsgan.loading import load_method
from lsgan.metrics.clustering import cluster_acc


def describe(ids: torch.Tensor, y: torch.Tensor, k: int) -> str:
    sizes = torch.bincount(ids, minlength=k)
    return f"ACC {cluster_acc(y, ids):.4f}, clusters {int((sizes > 0).sum())}, largest/smallest {sizes.max().item()}/{sizes.min().item()}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="the run directory (holds checkpoints/)")
    p.add_argument("--root", default=None, help="data.root (default: the run's)")
    a = p.parse_args()
    ckpts = sorted(glob.glob(os.path.join(a.run, "checkpoints", "iter_*.ckpt"))) + \
        [os.path.join(a.run, "checkpoints", "last.ckpt")]
    _, cfg = load_method(ckpts[-1])
    if a.root is not None:
        cfg.data.root = a.root
    ds = load_dataset(cfg.data, cfg.data.eval_split, int(cfg.get("seed", 0)), train=False)
    x, y = ds.images(), ds.clean_labels
    for ck in ckpts:
        m, _ = load_method(ck)
        k = m.num_conditions
        online = m.C.assign(x)
        line = f"{os.path.basename(ck):>20} (iteration {m.iteration}): online C {describe(online, y, k)}"
        if getattr(m, "c_ema", None) is not None:
            line += f" | EMA of C {describe(m.c_ema.module.assign(x), y, k)}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
