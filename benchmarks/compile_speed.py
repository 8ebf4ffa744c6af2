"""trainer.compile against eager on one recipe: the compile time (the first step) and the steady speed, alternated.

Both sides are the method's own d_step / g_step driven by method_speed's plain loop (the same nets, losses and
schedule as ``lsgan.run``), so the ratio is compile's alone. Prints the first steps' times, dynamo's graph count
(it stays put over the rounds when nothing recompiles) and, per round, eager and compiled iterations/s.

    OMP_NUM_THREADS=1 python benchmarks/compile_speed.py --recipe nemgan_mnist --root ../shared/data
    python benchmarks/compile_speed.py --recipe slcgan_mnist --accelerator gpu trainer.compile_mode=max-autotune
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import method_speed as ms  # noqa: E402  (benchmarks/method_speed.py)


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
    compiled = ms.PlainLoop(a.recipe, a, ["trainer.compile=true", *a.overrides])
    first = []
    for _ in range(6):
        t = time.perf_counter()
        compiled.step()
        ms._sync(compiled.device)
        first.append(time.perf_counter() - t)
    print(f"{a.recipe}, {a.threads} thread(s): compiled first steps (s) {[round(x, 2) for x in first]}; "
          f"graphs {torch._dynamo.utils.counters['stats']['unique_graphs']}", flush=True)
    eager = ms.PlainLoop(a.recipe, a, list(a.overrides))
    ratios = []
    for r in range(a.rounds):  # alternated, and the order swapped each round
        if r % 2 == 0:
            e, c = eager.rate(a), compiled.rate(a)
        else:
            c, e = compiled.rate(a), eager.rate(a)
        ratios.append(c / e)
        print(f"round {r}: eager {e:.2f} it/s, compiled {c:.2f} it/s, compiled / eager {c / e:.3f}", flush=True)
    ratios.sort()
    print(f"median compiled / eager {ratios[len(ratios) // 2]:.3f}; graphs after "
          f"{torch._dynamo.utils.counters['stats']['unique_graphs']} (unchanged: no recompiles)", flush=True)


if __name__ == "__main__":
    main()
