"""slcgan_mnist's step before session 13 (C(x) twice per iteration, D over (x, C(x)) at weight 0) against now.

Both sides are the method's d_step / g_step in method_speed.py's bare loop; the "before" instance gets the
old steps back (restated below), so the two alternate in one process:

    OMP_NUM_THREADS=1 python benchmarks/slcgan_shared_passes.py --threads 1 --rounds 7
"""
import argparse
import math
import statistics
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import method_speed as ms  # noqa: E402
from lsgan.losses import slcgan_aug_loss, slcgan_c_adversarial, slcgan_d_hinge, slcgan_marginal_entropy  # noqa: E402

# the steps as they were (lsgan/methods/slcgan.py before session 13), logs left out
def old_d_loss(self, x):
    n = x.shape[0]
    c = self.draw_conditions(n)
    with torch.no_grad():
        fake = self.G(self.draw_z(n), c)
        p_real = self.C.probs(x)
    u_r, s_r = self.D.forward_parts(x, p_real)
    u_f, s_f = self.D.forward_parts(fake, F.one_hot(c, self.num_conditions).float())
    return slcgan_d_hinge(u_r, s_r, u_f, s_f), {}

def old_c_loss(self, x):
    logits = self.C(x)
    p = F.softmax(logits, dim=1)
    _, s_r = self.D.forward_parts(x, p)
    adv = slcgan_c_adversarial(s_r)
    loss = float(self.mcfg.c_adv_weight) * adv
    me = slcgan_marginal_entropy(p)
    if float(self.mcfg.marginal_weight) > 0:
        loss = loss + float(self.mcfg.marginal_weight) * (math.log(self.num_conditions) - me)
    if self.aug_weight > 0:
        loss = loss + self.aug_weight * slcgan_aug_loss(logits, self.C(self.augment(x)), bool(self.mcfg.aug_grad_through_target))
    return loss, {}

def old_d_step(self, batch):
    loss, _ = old_d_loss(self, batch.x)
    self.step_opt("d", loss)
    return {}

def old_g_step(self, batch):
    loss_g, _ = self.g_loss(len(batch))
    self.step_opt("g", loss_g)
    loss_c, _ = old_c_loss(self, batch.x)
    self.step_opt("c", loss_c)
    return {}

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=40, help="iterations per timed run (the first --warmup not timed)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--accelerator", default="cpu")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    new = ms.PlainLoop("slcgan_mnist", a, [])
    old = ms.PlainLoop("slcgan_mnist", a, [])
    old.m.d_step = types.MethodType(old_d_step, old.m)
    old.m.g_step = types.MethodType(old_g_step, old.m)
    rates = {"before": [], "now": []}
    for r in range(a.rounds):
        for name, loop in ([("before", old), ("now", new)] if r % 2 == 0 else [("now", new), ("before", old)]):
            rates[name].append(loop.rate(a))
        print(f"round {r}: before {rates['before'][-1]:.2f} it/s, now {rates['now'][-1]:.2f} it/s", flush=True)
    b, n = statistics.median(rates["before"]), statistics.median(rates["now"])
    print(f"{a.threads} thread(s): median before {b:.2f}, now {n:.2f} it/s, now / before {n / b:.3f}")


if __name__ == "__main__":
    main()
