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
import time
from pathlib import Path


from lsgan.config import validate
from lsgan.loading import load_datamodule, load_method
from lsgan.methods.slcgan import write_figures
from lsgan.metrics.suite import MetricSuite, summary
from lsgan.run import compose_config, train
from lsgan.train_evaluator import train_and_cache
from lsgan.callbacks import WallClockBudget

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
    cfg = compose_config(overrides(a))
    t0 = time.time()
    ev = train_and_cache(validate(cfg), device=a.accelerator, max_steps=a.evaluator_steps)
    t_eval = time.time() - t0

    t0 = time.time()
    result = train(cfg, str(out / "run"), callbacks=[WallClockBudget(a.minutes * 60)])
    t_train = time.time() - t0

    t0 = time.time()
    method, run_cfg = load_method(result.checkpoint, device="cpu" if a.accelerator == "cpu" else "auto")
    dm = load_datamodule(run_cfg)
    suite = MetricSuite(method, dm, run_cfg, evaluator="auto")
    names = METRICS + (["probe"] if a.probe else [])
    metrics = suite.compute(names, n_samples=a.n_samples)
    figures = write_figures(method, dm.eval_set.images(), str(out), seed=a.seed)
    t_metrics = time.time() - t0

    res = {"command": "python benchmarks/slcgan_mnist.py " + " ".join(sys.argv[1:]), "overrides": overrides(a),
           "iterations": result.iteration, "train_seconds": round(t_train, 1),
           "evaluator": {"path": ev["path"], "cached": ev["cached"], "test_acc": ev["test_acc"],
                         "seconds": round(t_eval, 1)},
           "metrics_seconds": round(t_metrics, 1), "metrics": metrics, "figures": figures}
    (out / "results.json").write_text(json.dumps(res, indent=2))
    print(f"[slcgan-mnist] {result.iteration} iterations in {t_train:.0f} s (K={a.k}, loss={a.loss})")
    for name in names:
        print(f"  {name}: {summary(metrics[name])}")
    print(f"  results: {out / 'results.json'}")
    return res


if __name__ == "__main__":
    main()
