"""How often slcgan_mnist's clusterer C falls into one cluster in its first few hundred iterations,
per balance form: the recipe (``experiment=slcgan_mnist``) run for ``--steps`` iterations on each
seed, once per ``--variant``, reading C's batch-marginal entropy (log 10 = 2.30 when every cluster
is used evenly, 0 when every image is in one) from each run's metrics.csv.

    OMP_NUM_THREADS=1 python benchmarks/slcgan_early_collapse.py --root ../shared/data --seeds 0 1 2 3 \\
        --variant method.balance_kl=forward --variant method.balance_kl=reverse

Runs go two at a time (``--jobs``), one thread each. A seed counts as collapsed when the entropy of
any logged window falls below ``--collapsed`` (default 0.1). C gets no gradient from G or D in the
recipe (its adversarial weight is 0), so whether it collapses is decided by its own loss, its
initialisation and the seed's batches and views.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor


def run_one(variant: str, seed: int, a, out_dir: str) -> list:
    run_dir = os.path.join(out_dir, f"{variant.replace('=', '_').replace('.', '_')}_s{seed}")
    cmd = [sys.executable, "-m", "lsgan.run", "experiment=slcgan_mnist", f"seed={seed}", variant,
           f"trainer.steps={a.steps}", f"trainer.log_every={a.log_every}", "trainer.progress_bar=false",
           "trainer.sample_every=0", "trainer.ckpt_every=0", "metrics.every=0", f"data.root={a.root}",
           f"run_dir={run_dir}"]
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{variant} seed {seed} failed:\n{done.stderr[-2000:]}")
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        return [(int(r["step"]), float(r["c_marginal_entropy"])) for r in csv.DictReader(f)
                if r.get("c_marginal_entropy")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="../shared/data", help="data.root (holds mnist.npz)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--variant", action="append", default=None,
                   help="one override per variant (repeatable); default: both balance forms")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--collapsed", type=float, default=0.1, help="marginal entropy below which C has collapsed")
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()
    variants = a.variant or ["method.balance_kl=forward", "method.balance_kl=reverse"]
    with tempfile.TemporaryDirectory() as out_dir, ThreadPoolExecutor(a.jobs) as pool:
        jobs = {(v, s): pool.submit(run_one, v, s, a, out_dir) for v in variants for s in a.seeds}
        curves = {key: job.result() for key, job in jobs.items()}
    print(f"C's batch-marginal entropy (log 10 = 2.30), {a.steps} iterations, collapsed below {a.collapsed}")
    for v in variants:
        print(f"\n{v}")
        n_collapsed = 0
        for s in a.seeds:
            curve = curves[(v, s)]
            low = min(h for _, h in curve)
            n_collapsed += low < a.collapsed
            shown = " ".join(f"{step}:{h:.2f}" for step, h in curve[:4])
            print(f"  seed {s}: min {low:.2f}, last {curve[-1][1]:.2f}  ({shown} ...)")
        print(f"  collapsed: {n_collapsed} of {len(a.seeds)}")


if __name__ == "__main__":
    main()
