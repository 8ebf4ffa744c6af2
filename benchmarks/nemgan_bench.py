"""NEMGAN benchmark: MNIST 0/4 at 02:98, MNIST k = 10, and ring8 mode counting, on a fixed
step budget (CPU-friendly by default).

    .venv/bin/python benchmarks/nemgan_bench.py --data-root ../shared/data [--preset quick|paper] \
        [--only mnist04,mnist10,ring8] [--steps-mnist N] [--steps-ring N] [--minutes M] [--out runs/bench/nemgan]

Per run it reports h(x) accuracy (Hungarian ACC of ``condition_of`` on the test split, and the
balanced accuracy — mean per-class recall — since the 0/4 test split keeps the 02:98 ratio),
conditional accuracy (generated samples of each mode classified by the cached MNIST evaluator,
modes mapped to classes one-to-one) and classifier FID (evaluator features, samples drawn
from P_Y vs the same number of test images); for ring8 the modes covered (of 8) and the
high-quality fraction (samples within 3σ of a mode centre). It writes ``results.json``,
``results.md`` and the mode-matching figures (the paper's Fig. 2, the mode × class KL matrix)
under ``--out``. Paper targets: 0/4 at 02:98 h(x) ≈ 90 %; k = 10 h(x) 96.09 %, FID 4.37
(Inception FID, not comparable to classifier FID); ring8 all 8 modes.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# name -> overrides; the mnist runs use the prior weights matching the data's class ratio
RUNS = {
    "mnist04": ["dataset=mnist", "data.classes=[0,4]", "data.class_ratio=[0.02,0.98]",
                "prior.k=2", "prior.weights=[0.02,0.98]"],
    "mnist10": ["dataset=mnist", "prior.k=10"],
    "ring8": ["dataset=ring8", "model=mlp", "prior.k=8", "data.batch_size=256"],
}
CLASS_IDS = {"mnist04": [0, 4], "mnist10": list(range(10))}
PRESETS = {
    # reduced CPU budget: small conv nets at 28 px
    "quick": {"mnist": ["model.g_width=16", "model.d_width=16", "data.size=28", "data.batch_size=32"],
              "steps_mnist": 300, "steps_ring": 1000},
    # the paper-scale setting for a GPU
    "paper": {"mnist": ["model.g_width=64", "model.d_width=64", "data.size=32", "data.batch_size=64"],
              "steps_mnist": 20000, "steps_ring": 20000},
}


def default_data_root() -> str:
    for cand in (os.environ.get("LSGAN_DATA"), REPO.parent / "shared" / "data", Path("/work/shared/data")):
        if cand and (Path(cand) / "mnist.npz").exists():
            return str(cand)
    return str(REPO.parent / "shared" / "data")


def run_one(name: str, args, evaluator) -> dict:
    import torch

    from lsgan.config import validate
    from lsgan.reports.nemgan import evaluate_nemgan, mode_matching_report
    from lsgan.run import compose_config, train

    import pytorch_lightning as pl

    class Grab(pl.Callback):
        def on_train_end(self, trainer, pl_module):
            self.module, self.datamodule = pl_module, trainer.datamodule

    preset = PRESETS[args.preset]
    is_mnist = name.startswith("mnist")
    steps = args.steps_mnist if is_mnist else args.steps_ring
    overrides = (["method=nemgan", f"data.root={args.data_root}", f"trainer.steps={steps}", f"seed={args.seed}",
                  "trainer.progress_bar=false", "trainer.sample_every=0", f"trainer.ckpt_every={steps}",
                  f"trainer.log_every={50 if args.minutes else max(1, steps // 20)}", f"trainer.accelerator={args.accelerator}"]
                 + RUNS[name] + (preset["mnist"] if is_mnist else []) + list(args.override)
                 # a fixed wall-clock budget per run; trainer.steps is then only a cap
                 + ([f"trainer.max_minutes={args.minutes}"] if args.minutes else []))
    run_dir = Path(args.out) / name
    if (run_dir / "checkpoints" / "last.ckpt").exists() and not args.resume:
        raise SystemExit(f"{run_dir} holds a finished run; pass --resume to reuse it or choose another --out")
    grab = Grab()
    t0 = time.time()
    train(compose_config(overrides), str(run_dir), callbacks=[grab])
    train_s = time.time() - t0
    method, dm = grab.module.eval(), grab.datamodule
    numbers = evaluate_nemgan(method, dm, evaluator if is_mnist else None, CLASS_IDS.get(name), n_gen=args.n_gen,
                              seed=args.seed)
    ev_set = dm.eval_set
    real_x = ev_set.images()[:2000]
    if is_mnist and evaluator is not None:
        feats = evaluator.features
        rep = mode_matching_report(method, str(run_dir / "report"), n_per_mode=200, feature_fn=feats,
                                   real_features=feats(real_x), real_labels=ev_set.clean_labels[:2000])
    else:
        rep = mode_matching_report(method, str(run_dir / "report"), n_per_mode=200,
                                   real_features=real_x, real_labels=ev_set.clean_labels[:2000])
    numbers.update(latent_agreement=rep["latent_agreement"], generated_agreement=rep["generated_agreement"])
    with torch.no_grad():
        from lsgan.callbacks import save_sample_grid

        save_sample_grid(method.sample_grid().cpu(), run_dir / "report" / "samples.png", nrow=10)
    cfg = validate(compose_config(overrides))
    return {"name": name, "steps": int(method.iteration), "train_seconds": round(train_s, 1), "overrides": overrides,
            "model": dict(cfg.model), "numbers": numbers}


def markdown(results, evaluator_meta) -> str:
    lines = ["| run | steps | train s | h(x) acc | h(x) balanced acc | cond. acc | classifier FID | modes (of 8) "
             "| high-quality % |", "|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, s="{:.3f}": "–" if v is None else s.format(v)  # noqa: E731
    for r in results:
        n = r["numbers"]
        hq = n.get("high_quality")
        lines.append(f"| {r['name']} | {r['steps']} | {r['train_seconds']} | {fmt(n.get('h_acc'))} | "
                     f"{fmt(n.get('h_bal_acc'))} | {fmt(n.get('cond_acc'))} | "
                     f"{fmt(n.get('classifier_fid'), '{:.2f}')} | "
                     f"{fmt(n.get('modes'), '{}')} | {fmt(None if hq is None else 100 * hq, '{:.1f}')} |")
    if evaluator_meta:
        lines.append(f"\nEvaluator: {evaluator_meta.get('arch')} on MNIST, test accuracy "
                     f"{evaluator_meta.get('test_acc', float('nan')):.4f}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=default_data_root())
    p.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    p.add_argument("--only", default="mnist04,mnist10,ring8", help="comma-separated subset of " + ", ".join(RUNS))
    p.add_argument("--steps-mnist", type=int, default=None)
    p.add_argument("--steps-ring", type=int, default=None)
    p.add_argument("--minutes", type=float, default=None,
                   help="wall-clock training budget per run; the step counts become caps (default 10^6 with it)")
    p.add_argument("--n-gen", type=int, default=2000, help="generated samples per metric")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--evaluator-epochs", type=float, default=1.0, help="if no cached MNIST evaluator exists")
    p.add_argument("--cache-dir", default=None, help="evaluator cache (default: metrics.cache_dir, i.e. $LSGAN_CACHE or ~/.cache/lsgan)")
    p.add_argument("--out", default=str(REPO / "runs" / "bench" / "nemgan"))
    p.add_argument("--resume", action="store_true", help="reuse finished runs under --out (re-evaluates them)")
    p.add_argument("override", nargs="*", help="extra config overrides for every run, e.g. method.norm_weight=2")
    args = p.parse_args()
    preset = PRESETS[args.preset]
    cap = 10 ** 6 if args.minutes else None
    args.steps_mnist = args.steps_mnist or cap or preset["steps_mnist"]
    args.steps_ring = args.steps_ring or cap or preset["steps_ring"]
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        raise SystemExit(f"--only: unknown run(s) {unknown}; accepted: {', '.join(RUNS)}")
    os.makedirs(args.out, exist_ok=True)

    evaluator = None
    if any(n.startswith("mnist") for n in names):
        from lsgan.reports.nemgan import mnist_evaluator

        t0 = time.time()
        evaluator = mnist_evaluator(args.data_root, args.cache_dir, args.evaluator_epochs)
        print(f"[bench] evaluator ready in {time.time() - t0:.0f}s, test acc {evaluator.meta.get('test_acc')}",
              flush=True)
    results = []
    for name in names:
        res = run_one(name, args, evaluator)
        print(f"[bench] {name}: {json.dumps(res['numbers'])} ({res['train_seconds']}s training)", flush=True)
        results.append(res)
        with open(Path(args.out) / "results.json", "w") as f:
            json.dump({"results": results, "evaluator": evaluator.meta if evaluator else None,
                       "command": " ".join(sys.argv)}, f, indent=1, default=str)
    table = markdown(results, evaluator.meta if evaluator else None)
    (Path(args.out) / "results.md").write_text(f"Command: `{' '.join(sys.argv)}`\n\n" + table)
    print(table)


if __name__ == "__main__":
    main()
