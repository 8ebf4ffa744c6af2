"""ClusterGAN on MNIST within a fixed budget: clustering of the test split (argmax of E's one-hot
head and the authors' k-means on E(x)), conditional accuracy, within-condition variety, classifier
FID and precision / recall of G — all through ``lsgan.metrics``.

    python benchmarks/clustergan_mnist.py --root ../shared/data --threads 1         # CPU, 30 min (1 thread: faster on a shared small CPU)
    python benchmarks/clustergan_mnist.py --root ../shared/data --minutes 5 --evaluator-steps 300
    python benchmarks/clustergan_mnist.py --root DATA --accelerator gpu --steps 2500000 --minutes 600 --width 64
    python benchmarks/clustergan_mnist.py --root DATA --loss ns --sigma 0.1            # the issue's quick variant

Training stops at ``--steps`` iterations or after ``--minutes`` of training wall time, whichever
comes first; the iterations reached are reported. Defaults are the authors' (WGAN-GP λ=10, n_dis=5,
Adam 1e-4 (0.5, 0.9), β_n = β_c = 10, z_n 30-D with σ = 0.1, 28 px, batch 64, no spectral norm on
D); ``--loss``, ``--sigma``, ``--prior``, ``--dim`` and extra ``key=value`` overrides vary them.

The MNIST evaluator classifier is trained once and cached (``~/.cache/lsgan/evaluators``). With
``--evaluator-steps`` (a capped, weaker evaluator) it is written under ``--out`` instead, so the
shared cache never holds an under-trained one. Precision / recall are computed on the
evaluator's penultimate features (Inception's are slow on a CPU; ``--inception`` adds FID and
PRDC on them). Paper target (Mukherjee et al. 2019, Table 2, MNIST): ACC 0.95, NMI 0.89, ARI 0.89
(their ACC is the purity their code computes, see docs/clustergan.md).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from lsgan.run import compose_config

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: the shared _budget module
from _budget import budgeted_run, print_metrics  # noqa: E402

METRICS = ["cluster", "cond_acc", "variety", "classifier_fid", "classifier_prdc"]


def overrides(a) -> list:
    o = ["method=clustergan", "dataset=mnist", f"data.root={a.root}", f"data.size={a.size}", f"method.adv_loss={a.loss}",
         f"prior={a.prior}", f"prior.k={a.k}", f"prior.dim={a.dim}", f"prior.sigma={a.sigma}", f"model={a.arch}",
         f"model.g_width={a.width}", f"model.d_width={a.width}", f"model.spectral_norm={str(a.sn).lower()}",
         f"data.batch_size={a.batch}", f"trainer.steps={a.steps}", f"trainer.accelerator={a.accelerator}",
         "trainer.progress_bar=false", "trainer.ckpt_every=0", "trainer.sample_every=0", "trainer.log_every=50",
         f"seed={a.seed}", f"metrics.ref_n={a.ref_n}"]
    if a.loss != "wgan_gp":  # the authors' 5 critic steps belong to WGAN-GP; other losses use 1
        o.append("method.n_dis=1")
    return o + list(a.override)


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="../shared/data", help="folder with mnist.npz")
    p.add_argument("--out", default="bench_out/clustergan_mnist")
    p.add_argument("--steps", type=int, default=100000, help="training iterations (upper bound)")
    p.add_argument("--minutes", type=float, default=30.0, help="training wall-time budget")
    p.add_argument("--loss", default="wgan_gp", choices=["wgan_gp", "hinge", "ns"],
                   help="the adversarial form (method.adv_loss); clustergan's loss= is always full")
    p.add_argument("--prior", default="onehot_gaussian", choices=["onehot_gaussian", "gmm"])
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--dim", type=int, default=30, help="prior.dim: size of z_n (or of the GMM latent)")
    p.add_argument("--sigma", type=float, default=0.1)
    p.add_argument("--arch", default="dcgan")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--sn", action="store_true", help="spectral norm on D (the authors use none with WGAN-GP)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--n-samples", type=int, default=2000, help="generated images per metric")
    p.add_argument("--ref-n", type=int, default=10000, help="real test images in the reference set")
    p.add_argument("--evaluator-steps", type=int, default=None, help="cap on evaluator training (kept under --out)")
    p.add_argument("--inception", action="store_true", help="also FID / PRDC on InceptionV3 features (slow on CPU)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("override", nargs="*", help="extra config overrides key=value")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    out = Path(a.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    names = METRICS + (["fid", "prdc"] if a.inception else [])
    run = budgeted_run(compose_config(overrides(a)), out, a.minutes, names, a.n_samples, a.accelerator,
                       a.evaluator_steps)
    result, run_cfg, metrics, ev = run["result"], run["cfg"], run["metrics"], run["evaluator"]

    cl = metrics["cluster"]
    table = {
        "acc_argmax": cl.get("acc"), "nmi_argmax": cl.get("nmi"), "ari_argmax": cl.get("ari"),
        "purity_argmax": cl.get("purity"),
        "acc_kmeans": cl.get("kmeans", {}).get("acc"), "nmi_kmeans": cl.get("kmeans", {}).get("nmi"),
        "ari_kmeans": cl.get("kmeans", {}).get("ari"), "purity_kmeans": cl.get("kmeans", {}).get("purity"),
        "cond_acc": metrics["cond_acc"].get("value"), "variety": metrics["variety"].get("value"),
        "classifier_fid": metrics["classifier_fid"].get("value"),
        "precision_eval": metrics["classifier_prdc"].get("precision"),
        "recall_eval": metrics["classifier_prdc"].get("recall"),
    }
    res = {"command": "python benchmarks/clustergan_mnist.py " + " ".join(sys.argv[1:]),
           "overrides": overrides(a),
           "iterations": result.iteration, "g_updates": result.iteration // int(run_cfg.method.n_dis),
           "train_seconds": run["seconds"]["train"], "evaluator": ev,
           "metrics_seconds": run["seconds"]["metrics"], "table": table, "metrics": metrics}
    (out / "results.json").write_text(json.dumps(res, indent=2, default=float))
    print(f"[clustergan-mnist] {result.iteration} iterations ({res['g_updates']} G/E updates) in {res['train_seconds']:.0f} s "
          f"(loss={a.loss}, prior={a.prior}, sigma={a.sigma}, dim={a.dim}); evaluator test acc {ev['test_acc']}")
    print_metrics(metrics, names)
    print("  table: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in table.items()))
    print(f"  results: {out / 'results.json'}")
    return res


if __name__ == "__main__":
    main()
