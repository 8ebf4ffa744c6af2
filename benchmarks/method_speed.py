"""Training speed of each method's MNIST recipe: lsgan against a plain PyTorch loop, and variants.

For every ``experiment=<recipe>`` it measures, alternated in one process so that machine noise
hits every side alike:

* **lsgan**: iterations/s of ``lsgan.run.train`` (Lightning loop, callbacks, logging), timed
  from iteration ``--warmup`` to the last one;
* **plain**: the same method object's ``d_step`` / ``g_step`` — so the same nets, losses and
  n_dis / n_gen schedule — driven by a bare loop: batches indexed straight from the in-memory
  training tensor, torch's Adam, ``loss.backward()``. lsgan / plain is the framework overhead
  (goal ≥ 0.95);
* **variants** (``--variant``): lsgan again with extra overrides, e.g.
  ``trainer.channels_last=false`` or ``trainer.precision=bf16-mixed``, each reported as a speed
  ratio against the recipe as composed.

It also counts the FLOPs of one iteration (torch.utils.flop_counter, forward and backward) and
prints achieved GFLOP/s against a fp32 matmul peak measured in the same run.

    python benchmarks/method_speed.py                                  # all four recipes, 1 and 2 threads
    python benchmarks/method_speed.py --recipes clustergan_mnist --threads 1 \\
        --variant trainer.channels_last=false --variant trainer.precision=bf16-mixed
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
import sys
import types
from pathlib import Path
from typing import Dict, List

import pytorch_lightning as pl
import torch
from torch.utils.flop_counter import FlopCounterMode

from lsgan.config import validate
from lsgan.nets.ema import ema_decay_at
from lsgan.precision import resolve_precision
from lsgan.run import build_datamodule, build_method, compose_config, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import _sync, _Timer  # noqa: E402  (benchmarks/throughput.py)

RECIPES = ("clustergan_mnist", "nemgan_mnist", "slcgan_mnist", "coupled_mnist")


def recipe_cfg(recipe: str, a, extra: List[str]):
    return compose_config([f"experiment={recipe}", f"data.root={a.root}", f"trainer.steps={a.steps}",
                           f"trainer.accelerator={a.accelerator}", "trainer.progress_bar=false",
                           "trainer.sample_every=0", "trainer.ckpt_every=0", "trainer.log_every=50",
                           "metrics.every=0", *extra])


def lsgan_rate(recipe: str, a, extra: List[str]) -> float:
    timer = _Timer(a.warmup, a.steps)
    with tempfile.TemporaryDirectory() as d:
        train(recipe_cfg(recipe, a, extra), d, callbacks=[timer])
    return (a.steps - a.warmup) / timer.elapsed


class PlainLoop:
    """A method's own d_step / g_step without Lightning: plain Adam, plain backward."""

    def __init__(self, recipe: str, a, extra: List[str]):
        cfg = validate(recipe_cfg(recipe, a, extra))
        pl.seed_everything(int(cfg.seed), verbose=False)
        self.cfg = cfg
        device = torch.device("cuda" if a.accelerator == "gpu" else "cpu")
        self.dm = build_datamodule(cfg)
        m = build_method(cfg, self.dm).to(device)
        # what Lightning would give the method: its data module (coupled's features, nemgan's subset)
        m._trainer = types.SimpleNamespace(datamodule=self.dm, is_global_zero=True, world_size=1, global_rank=0)
        groups = m.optimizer_groups()
        names = list(groups)
        opts = [torch.optim.Adam(g.pop("params"), **g) for g in groups.values()]
        wrapped = [types.SimpleNamespace(optimizer=o) for o in opts]  # what frozen_except reads
        m.optimizers = lambda use_pl_optimizer=True: wrapped
        m.opt = lambda name: wrapped[names.index(name)]

        def step_opt(self, name, loss):
            o = opts[names.index(name)]
            o.zero_grad(set_to_none=True)
            loss.backward()
            o.step()

        m.step_opt = types.MethodType(step_opt, m)
        m.configure_model()  # as Lightning's fit does: trainer.compile compiles the nets here
        if hasattr(m, "on_fit_start"):
            m.on_fit_start()
        m.train()
        self.m, self.device = m, device
        self.data = self.dm.train_set
        self.bs = int(cfg.data.batch_size)
        self.gen = torch.Generator().manual_seed(0)
        self.autocast = resolve_precision(str(cfg.trainer.precision), a.accelerator, warn=False) == "bf16-mixed"

    def step(self) -> None:
        m = self.m
        idx = torch.randint(0, len(self.data), (self.bs,), generator=self.gen)
        batch = self.data.__getitems__(idx).to(self.device)
        if m.channels_last:
            batch = batch.channels_last()
        i = m.iteration
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            if i % m.mcfg.n_gen == 0:
                m.d_step(batch)
            if i % m.mcfg.n_dis == 0:
                with m.frozen_except("g") if m.freeze_others_in_g_step else contextlib.nullcontext():
                    m.g_step(batch)
                if m.g_ema is not None:
                    m.g_ema.update(m.G, ema_decay_at(i, int(m.mcfg.ema_start), float(m.mcfg.ema_decay)))
        m.iteration = i + 1

    def rate(self, a) -> float:
        for _ in range(a.warmup):
            self.step()
        _sync(self.device)
        t0 = time.perf_counter()
        for _ in range(a.steps - a.warmup):
            self.step()
        _sync(self.device)
        return (a.steps - a.warmup) / (time.perf_counter() - t0)

    def flops_per_iteration(self) -> float:
        """FLOPs of one iteration (averaged over n_dis·n_gen iterations, so schedules count fairly)."""
        period = int(self.m.mcfg.n_dis) * int(self.m.mcfg.n_gen)
        counter = FlopCounterMode(display=False)
        with counter:
            for _ in range(period):
                self.step()
        return counter.get_total_flops() / period


def matmul_peak_gflops(device, n: int = 2048, reps: int = 8) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES))
    p.add_argument("--root", default="../shared/data")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--steps", type=int, default=60, help="iterations per timed run (the first --warmup not timed)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3, help="alternations of every side; medians are reported")
    p.add_argument("--variant", action="append", default=[], help="space-separated overrides; repeatable")
    p.add_argument("--no-plain", action="store_true", help="skip the plain-PyTorch side")
    p.add_argument("--accelerator", default="cpu")
    a = p.parse_args()
    device = torch.device("cuda" if a.accelerator == "gpu" else "cpu")
    rows = []
    for threads in a.threads:
        torch.set_num_threads(threads)
        peak = statistics.median(matmul_peak_gflops(device) for _ in range(3))
        print(f"== {threads} thread(s): fp32 matmul peak {peak:.0f} GFLOP/s", flush=True)
        for recipe in a.recipes:
            if recipe == a.recipes[0] and threads == a.threads[0]:
                lsgan_rate(recipe, a, [])  # untimed: the process's first run pays imports and oneDNN set-up
            sides: Dict[str, List[float]] = {"lsgan": []}
            plain = None if a.no_plain else PlainLoop(recipe, a, [])
            if plain is not None:
                sides["plain"] = []
            for v in a.variant:
                sides[v] = []
            for r in range(a.rounds):
                order = list(sides) if r % 2 == 0 else list(reversed(sides))
                for side in order:
                    if side == "plain":
                        rate = plain.rate(a)
                    else:
                        rate = lsgan_rate(recipe, a, [] if side == "lsgan" else side.split())
                    sides[side].append(rate)
                print(f"  {recipe} round {r}: " + ", ".join(f"{k} {v[-1]:.2f} it/s" for k, v in sides.items()),
                      flush=True)
            med = {k: statistics.median(v) for k, v in sides.items()}
            flops = plain.flops_per_iteration() if plain is not None else float("nan")
            batch = int(plain.bs) if plain is not None else int(recipe_cfg(recipe, a, []).data.batch_size)
            rows.append((threads, recipe, med, flops, peak, batch))
    print("\n| threads | recipe | lsgan it/s (img/s) | plain it/s | lsgan / plain | GFLOP/it | GFLOP/s (of peak) |"
          + "".join(f" {v} ×|" for v in a.variant))
    print("|---|---|---|---|---|---|---|" + "---|" * len(a.variant))
    for threads, recipe, med, flops, peak, batch in rows:
        plain = med.get("plain", float("nan"))
        gf = flops / 1e9
        achieved = gf * med["lsgan"]
        variants = "".join(f" {med[v] / med['lsgan']:.2f} |" for v in a.variant)
        print(f"| {threads} | {recipe} | {med['lsgan']:.2f} ({med['lsgan'] * batch:.0f}) | {plain:.2f} | {med['lsgan'] / plain:.3f} | "
              f"{gf:.2f} | {achieved:.1f} ({achieved / peak:.0%} of {peak:.0f}) |{variants}")


if __name__ == "__main__":
    main()
