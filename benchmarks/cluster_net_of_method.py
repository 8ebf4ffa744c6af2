"""The clustering term alone on the cluster net a method config builds (no GAN): clustergan's
hybrid cluster net against nemgan's hybrid mode net (h2 on a net of its own) and variants of it,
each trained by the method's own ``cluster_term`` for N steps; ACC / NMI on 2,000 MNIST test images.
Says whether the mode net's architecture or optimiser, not the GAN, keeps it from clustering real
digits (docs/nemgan.md, Session 7).

    OMP_NUM_THREADS=1 python benchmarks/cluster_net_of_method.py --data ../shared/data --steps 800 --seed 0 \\
        cg_E nm_hyb nm_hyb_b09 nm_hyb_lin nm_hyb_nosn
    ... --seed 1 cg_E nm_hyb_nosn nm_hyb_k nm_hyb_nosn_k

A name ending in ``_k``: the mode net maps straight to the k logits and h2 is the identity.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from lsgan.config import validate
from lsgan.metrics.clustering import clustering_report
from lsgan.nets import build_encoder
from lsgan.run import build_datamodule, build_method, compose_config

HYBRID = ["experiment=nemgan_mnist", "method.encoder=hybrid"]
VARIANTS = {  # name: (overrides, Adam betas)
    "cg_E": (["experiment=clustergan_mnist"], (0.5, 0.9)),
    "nm_hyb": (HYBRID + ["method.h_spectral_norm=true"], (0.5, 0.999)),
    "nm_hyb_b09": (HYBRID + ["method.h_spectral_norm=true"], (0.5, 0.9)),
    "nm_hyb_lin": (HYBRID + ["method.h_spectral_norm=true", "method.h2_depth=0"], (0.5, 0.999)),
    "nm_hyb_nosn": (HYBRID + ["method.h_spectral_norm=false"], (0.5, 0.999)),
}


def images(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).float()[:, None] / 127.5 - 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("variants", nargs="+", help=f"{', '.join(VARIANTS)}, each optionally with _k")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-3)
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 1)))
    d = np.load(os.path.join(a.data, "mnist.npz"))
    x_train, x_test, y_test = images(d["x_train"]), images(d["x_test"]), d["y_test"]
    test = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(0))[:2000]
    for name in a.variants:
        direct = name.endswith("_k")
        overrides, betas = VARIANTS[name[:-2] if direct else name]
        torch.manual_seed(a.seed)
        cfg = validate(compose_config(overrides + [f"data.root={a.data}", "data.max_train=512"]))
        m = build_method(cfg, build_datamodule(cfg))
        if direct:
            m.mode_net = build_encoder(cfg.model, m.data_info.shape, m.prior.k, spectral_norm=bool(cfg.method.h_spectral_norm))
            m.h2 = torch.nn.Identity()
        nets = [m.E.parts[1]] if cfg.method.name == "clustergan" else [m.mode_net, m.h2]
        opt = torch.optim.Adam([q for n in nets for q in n.parameters()], lr=a.lr, betas=betas)
        logits_of = getattr(m, "scaled_cluster_logits", m.cluster_logits)
        for _ in range(a.steps):
            loss, parts = m.cluster_term(x_train[torch.randint(0, len(x_train), (64,))], logits_of)
            opt.zero_grad()
            loss.backward()
            opt.step()
        m.eval()
        with torch.no_grad():
            pred = m.cluster_logits(x_test[test]).argmax(1).numpy()
        r = clustering_report(y_test[test.numpy()], pred)
        print(f"{name} seed {a.seed} steps {a.steps}: ACC {r['acc']:.3f} NMI {r['nmi']:.3f} "
              f"consistency {float(parts['consistency']):.3f} marginal_kl {float(parts['marginal_kl']):.3f}", flush=True)


if __name__ == "__main__":
    main()
