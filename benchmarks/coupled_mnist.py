"""CPU MNIST benchmark of method=coupled (full triple coupled loss) against the SNGAN baseline.

Both runs train for the same wall-clock budget (``--minutes`` each, also capped at ``--steps``)
with the same nets, batch size and data, then are evaluated on the MNIST test split with the
cached MNIST evaluator classifier (``python -m lsgan.train_evaluator dataset=mnist``; trained
here if missing):

- conditional accuracy: for n test exemplars x, the evaluator class of G(z, E(x)) == label of x
  (``lsgan.metrics`` exemplar accuracy via the metric suite). The unconditional baseline cannot
  take an exemplar, so its number is the same comparison for G(z): chance level by construction
  (the paper's 8 %).
- classifier FID: FID on the evaluator's penultimate features, n generated vs the test split.
- for coupled, optionally (``--latent``) the border-effect report (``lsgan.metrics.latent``):
  kNN label agreement of E's features and accuracy of interior vs border points, with a t-SNE figure.

The kNN statistics of the untrained-AlexNet features alone are benchmarks/knn_alexnet_mnist.py.

    python benchmarks/coupled_mnist.py --data ../shared/data --minutes 30            # the issue's budget
    python benchmarks/coupled_mnist.py --data ../shared/data --minutes 2 --max-train 10000 \\
        --n-eval 1000 --evaluator-epochs 1                                           # a reduced run
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

PAPER = {"coupled_accuracy": 0.72, "baseline_accuracy_cifar10": 0.08}
# each run's objective (loss=) and adversarial form (method.adv_loss): the paper's full coupled loss (its BCE game,
# non-saturating G) and its baseline, the unconditional SNGAN with the minimax loss
SETTINGS = {"coupled": ("full", "ns"), "sngan": ("full", "minimax")}


class TrainedModule(pl.Callback):
    """Keeps the trained module and data module, and the training-loop seconds (setup excluded)."""

    def __init__(self):
        self.start = None
        self.module = None
        self.datamodule = None
        self.train_seconds = 0.0

    def on_train_start(self, trainer, pl_module):
        self.start = time.time()
        self.module, self.datamodule = pl_module, trainer.datamodule

    def on_train_end(self, trainer, pl_module):
        self.train_seconds = time.time() - self.start


def overrides_for(args, method: str):
    loss, adv = SETTINGS[method]
    over = [f"method={method}", f"loss={loss}", f"method.adv_loss={adv}", "dataset=mnist", f"data.root={args.data}",
            f"data.batch_size={args.batch_size}", f"model.g_width={args.width}", f"model.d_width={args.width}",
            f"trainer.steps={args.steps}", f"trainer.max_minutes={args.minutes}", "trainer.accelerator=cpu",
            "trainer.progress_bar=false",
            "trainer.sample_every=0", "trainer.ckpt_every=0", "trainer.log_every=50", f"seed={args.seed}"]
    if args.max_train:
        over.append(f"data.max_train={args.max_train}")
    if args.evaluator_epochs is not None:
        over.append(f"metrics.evaluator_epochs={args.evaluator_epochs}")
    if method == "coupled":
        over += ["extractor=alexnet_random", f"extractor.layer={args.layer}"]
        if args.pool:
            over.append(f"extractor.pool={args.pool}")
    return over


def run_one(args, method: str, evaluator, out: Path) -> dict:
    from lsgan.metrics.conditional import exemplar_conditional_accuracy
    from lsgan.metrics.suite import MetricSuite
    from lsgan.run import compose_config, train
    from lsgan.generation import exemplar_indices

    cfg = compose_config(overrides_for(args, method))
    loss, adv = SETTINGS[method]
    budget = TrainedModule()
    run_dir = out / f"{method}-{loss}-{adv}"
    shutil.rmtree(run_dir, ignore_errors=True)  # train() would resume an old run's last.ckpt
    t0 = time.time()
    train(cfg, run_dir, callbacks=[budget])
    wall = time.time() - t0
    m, dm = budget.module, budget.datamodule
    from lsgan.config import validate

    vcfg = validate(cfg)
    vcfg.metrics.ref_n = args.n_ref
    suite = MetricSuite(m, dm, vcfg, evaluator=evaluator, log=None)
    names = ["classifier_fid"] + (["cond_acc"] if method == "coupled" else [])
    res = suite.compute(names, n_samples=args.n_eval)
    row = {"method": method, "loss": loss, "adv_loss": adv, "iterations": int(m.iteration), "train_seconds": round(budget.train_seconds, 1),
           "wall_seconds_incl_setup": round(wall, 1), "classifier_fid": res["classifier_fid"].get("value")}
    if method == "coupled":
        row["cond_acc"] = res["cond_acc"].get("value")
        row["variety"] = res.get("variety", {}).get("value")
    else:
        # G(z) has no exemplar: compare its evaluator class with the labels of as many test exemplars (chance).
        idx = exemplar_indices(len(dm.eval_set), args.n_eval, args.seed)
        with torch.no_grad():
            m.eval()
            images = torch.cat([m.sample(len(c)).cpu() for c in idx.split(256)])
        pred = evaluator.predict(images)
        row["cond_acc"] = exemplar_conditional_accuracy(dm.eval_set.clean_labels[idx], pred, 10)["accuracy"]
        row["cond_acc_note"] = "unconditional: G(z) vs random exemplar labels (chance)"
    if method == "coupled" and args.latent:
        from lsgan.metrics.latent import latent_report

        rep = latent_report(m, dm.eval_set, evaluator, n=args.latent, seed=args.seed, out_dir=str(run_dir / "latent"))
        row["latent_knn"] = {str(k): v for k, v in rep["knn_label_agreement"].items() if isinstance(k, int)}
        row["border"] = {k: rep["border"][k] for k in ("accuracy_interior", "accuracy_border", "border_fraction")}
        row["border_figure"] = rep.get("figure")
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data", help="folder with mnist.npz (data.root)")
    ap.add_argument("--minutes", type=float, default=30.0, help="training wall-clock budget per run")
    ap.add_argument("--steps", type=int, default=100000, help="iteration cap per run")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--width", type=int, default=32, help="model.g_width = model.d_width (DCGAN nets)")
    ap.add_argument("--layer", default="conv3", help="AlexNet layer of the extractor")
    ap.add_argument("--pool", type=int, default=None, help="extractor.pool (None: full map)")
    ap.add_argument("--max-train", type=int, default=None, help="data.max_train (fewer images to extract features of)")
    ap.add_argument("--n-eval", type=int, default=2000, help="generated samples per evaluation")
    ap.add_argument("--n-ref", type=int, default=10000, help="real test images in the FID reference")
    ap.add_argument("--evaluator-epochs", type=float, default=None, help="if the evaluator must be trained")
    ap.add_argument("--latent", type=int, default=0, help="exemplars for the border-effect report (0 = skip)")
    ap.add_argument("--skip-baseline", action="store_true", help="same as --runs coupled")
    ap.add_argument("--runs", default="coupled,sngan", help="which of coupled,sngan to train (comma-separated)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench_coupled_mnist")
    args = ap.parse_args()

    from lsgan.metrics.evaluator import load_evaluator
    from lsgan.run import compose_config
    from lsgan.train_evaluator import train_and_cache

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = train_and_cache(compose_config(overrides_for(args, "sngan")))
    evaluator = load_evaluator(info["path"])
    print(f"[bench] evaluator {info['path']} test accuracy {info['test_acc']}", flush=True)
    runs = [r for r in args.runs.split(",") if r and not (args.skip_baseline and r == "sngan")]
    if not runs or set(runs) - {"coupled", "sngan"}:
        raise SystemExit(f"--runs {args.runs!r}: accepted values: coupled, sngan (comma-separated)")
    rows = [run_one(args, m, evaluator, out) for m in runs]
    summary = {"args": vars(args), "evaluator": {"path": info["path"], "test_acc": info["test_acc"]},
               "paper": PAPER, "rows": rows}
    (out / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    print("\n| method | loss / adv. loss | iterations | train s | cond. accuracy | classifier FID |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['loss']} / {r['adv_loss']} | {r['iterations']} | {r['train_seconds']} | "
              f"{r['cond_acc']:.3f} | {r['classifier_fid']:.2f} |")


if __name__ == "__main__":
    main()
