"""trainer.compile against eager on one recipe: the compile time (the first step) and the steady speed, alternated.

Both sides are the method's own d_step / g_step driven by method_speed's plain loop (the same nets, losses and
schedule as ``lsgan.run``), so the ratio is compile's alone. Prints the first steps' times, dynamo's graph count
(again after the rounds: unchanged when nothing recompiles) and, per round, eager and compiled iterations/s.

    OMP_NUM_THREADS=1 python benchmarks/compile_speed.py --recipe nemgan_mnist --root ../shared/data
    python benchmarks/compile_speed.py --recipe slcgan_mnist --accelerator gpu trainer.compile_mode=max-autotune
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import method_speed as ms  # noqa: E402  (benchmarks/method_speed.py)


def compare(recipe: str, loop, overrides: List[str], rounds: int, first_steps: int = 1):
    """(seconds of the compiled side's first ``first_steps`` steps, [(eager it/s, compiled it/s)] per round,
    dynamo's graph count after the first steps and after the rounds: equal when nothing recompiled).
    ``loop`` carries what method_speed.PlainLoop reads (root, steps, warmup, accelerator). The rounds
    alternate the two sides and swap their order every round."""
    compiled = ms.PlainLoop(recipe, loop, ["trainer.compile=true", *overrides])
    first = []
    for _ in range(first_steps):  # the nets are built: these are tracing and code generation, then steady steps
        t = time.perf_counter()
        compiled.step()
        ms._sync(compiled.device)
        first.append(time.perf_counter() - t)
    graphs = [_graphs()]
    eager = ms.PlainLoop(recipe, loop, list(overrides))
    rates = []
    for r in range(rounds):
        if r % 2 == 0:
            e, c = eager.rate(loop), compiled.rate(loop)
        else:
            c, e = compiled.rate(loop), eager.rate(loop)
        rates.append((e, c))
    return first, rates, (graphs[0], _graphs())


def _graphs() -> int:
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="nemgan_mnist", choices=ms.RECIPES)
    p.add_argument("--root", default="../shared/data")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=80, help="iterations per timed run (the first --warmup not timed)")
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("overrides", nargs="*", help="extra overrides for both sides (e.g. trainer.compile_mode=...)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    first, rates, graphs = compare(a.recipe, a, a.overrides, a.rounds, first_steps=6)
    print(f"{a.recipe}, {a.threads} thread(s): compiled first steps (s) {[round(x, 2) for x in first]}; "
          f"graphs {graphs[0]}", flush=True)
    for r, (e, c) in enumerate(rates):
        print(f"round {r}: eager {e:.2f} it/s, compiled {c:.2f} it/s, compiled / eager {c / e:.3f}", flush=True)
    ratios = sorted(c / e for e, c in rates)
    print(f"median compiled / eager {ratios[len(ratios) // 2]:.3f}; graphs after {graphs[1]} "
          f"({'unchanged: no recompiles' if graphs[1] == graphs[0] else 'recompiled during the rounds'})", flush=True)


if __name__ == "__main__":
    main()
