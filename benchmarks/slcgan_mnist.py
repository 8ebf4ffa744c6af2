"""slcGAN on MNIST on the CPU within a fixed budget: clustering ACC of C, conditional accuracy
and classifier FID of G, optionally a linear probe of C's features (all through ``lsgan.metrics``).

    python benchmarks/slcgan_mnist.py --root ../shared/data                    # 2000 iterations
    python benchmarks/slcgan_mnist.py --root ../shared/data --steps 300 --minutes 5 --evaluator-steps 400

Training stops at ``--steps`` iterations or after ``--minutes`` of training wall time, whichever
comes first; the iterations actually reached are reported. The MNIST evaluator classifier is
trained once and cached (``~/.cache/lsgan/evaluators``); ``--evaluator-steps`` caps its training
on a first run. Writes ``results.json``, the two figures and the run directory under ``--out``.
Paper target (Noroozi 2020, K = 10, full training): clustering ACC 97.3 %.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lsgan.reports.slcgan import write_figures
from lsgan.run import compose_config

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: the shared _budget module
from _budget import budgeted_run, print_metrics  # noqa: E402

METRICS = ["cluster", "cond_acc", "classifier_fid"]


def overrides(a) -> list:
    return ["method=slcgan", "dataset=mnist", f"data.root={a.root}", f"data.size={a.size}",
            f"method.num_clusters={a.k}", f"loss={a.loss}", f"model={a.arch}", f"model.g_width={a.width}",
            f"model.d_width={a.width}", f"data.batch_size={a.batch}", f"trainer.steps={a.steps}",
            f"trainer.accelerator={a.accelerator}", "trainer.progress_bar=false", "trainer.ckpt_every=0",
            "trainer.sample_every=0", "trainer.log_every=25", f"seed={a.seed}",
            "method.augment.flip=0",   # a mirrored digit is a different shape, not another view
            f"metrics.ref_n={a.ref_n}"] + list(a.override)


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="../shared/data", help="folder with mnist.npz")
    p.add_argument("--out", default="bench_out/slcgan_mnist")
    p.add_argument("--steps", type=int, default=2000, help="training iterations (upper bound)")
    p.add_argument("--minutes", type=float, default=30.0, help="training wall-time budget")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--loss", default="full", choices=["full", "no_mi", "no_aug"])
    p.add_argument("--arch", default="dcgan")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--n-samples", type=int, default=2000, help="generated images per metric")
    p.add_argument("--ref-n", type=int, default=5000, help="real images: FID reference and probe training set")
    p.add_argument("--evaluator-steps", type=int, default=None, help="cap on evaluator training (first run only)")
    p.add_argument("--probe", action="store_true",
                   help="also a linear probe of C's penultimate features (slow on CPU: logistic regression on ref-n images)")
    p.add_argument("override", nargs="*", help="extra config overrides key=value")
    a = p.parse_args()

    out = Path(a.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    names = METRICS + (["probe"] if a.probe else [])
    run = budgeted_run(compose_config(overrides(a)), out, a.minutes, names, a.n_samples, a.accelerator,
                       a.evaluator_steps)
    result, metrics = run["result"], run["metrics"]
    figures = write_figures(run["method"], run["datamodule"].eval_set.images(), str(out), seed=a.seed)

    res = {"command": "python benchmarks/slcgan_mnist.py " + " ".join(sys.argv[1:]), "overrides": overrides(a),
           "iterations": result.iteration, "train_seconds": run["seconds"]["train"], "evaluator": run["evaluator"],
           "metrics_seconds": run["seconds"]["metrics"], "metrics": metrics, "figures": figures}
    (out / "results.json").write_text(json.dumps(res, indent=2))
    print(f"[slcgan-mnist] {result.iteration} iterations in {res['train_seconds']:.0f} s (K={a.k}, loss={a.loss})")
    print_metrics(metrics, names)
    print(f"  results: {out / 'results.json'}")
    return res


if __name__ == "__main__":
    main()
