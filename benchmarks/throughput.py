"""Framework overhead: images/s of the sngan training step through lsgan vs a plain PyTorch loop.

Both sides use the same nets (lsgan.nets factories), batch, Adam settings, hinge loss and
schedule (1 D + 1 G update per iteration); they alternate in one process so machine noise hits
both alike. Prints images/s of each, per round and as medians, and their ratio (goal >= 0.95).

    python benchmarks/throughput.py                      # CPU, digits 32 px, DCGAN width 64, batch 64
    python benchmarks/throughput.py --arch resnet --accelerator gpu --batch 256 --precision bf16-mixed
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import pytorch_lightning as pl
import torch

from lsgan.config import validate
from lsgan.data.datasets import load_dataset
from lsgan.losses import d_hinge, g_hinge
from lsgan.nets import build_discriminator, build_generator
from lsgan.run import compose_config as make_cfg, train


class _Timer(pl.Callback):
    """Wall time from the end of iteration `warmup` to the end of the last iteration."""

    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps, self.t0, self.elapsed = warmup, steps, None, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.iteration == self.warmup:
            _sync(pl_module.device)
            self.t0 = time.perf_counter()
        elif pl_module.iteration == self.steps:
            _sync(pl_module.device)
            self.elapsed = time.perf_counter() - self.t0


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def overrides(a) -> list:
    return [f"dataset={a.dataset}", f"model={a.arch}", f"model.g_width={a.width}", f"model.d_width={a.width}",
            f"data.batch_size={a.batch}", f"trainer.steps={a.steps}", f"trainer.precision={a.precision}",
            f"trainer.accelerator={a.accelerator}", "trainer.progress_bar=false", "trainer.sample_every=0",
            "trainer.ckpt_every=0", "trainer.log_every=50", "method=sngan", "method.adv_loss=hinge", f"data.root={a.root}"]


def run_lsgan(a) -> float:
    timer = _Timer(a.warmup, a.steps)
    with tempfile.TemporaryDirectory() as d:
        train(make_cfg(overrides(a)), d, callbacks=[timer])
    return a.batch * (a.steps - a.warmup) / timer.elapsed


def run_plain(a) -> float:
    cfg = validate(make_cfg(overrides(a)))
    device = torch.device("cuda" if a.accelerator == "gpu" else "cpu")
    data = load_dataset(cfg.data, "train").data.to(device)
    shape = tuple(data.shape[1:])
    G = build_generator(cfg.model, cfg.method.z_dim, shape).to(device)
    D = build_discriminator(cfg.model, shape).to(device)
    betas = tuple(cfg.method.betas)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.method.lr_g, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.method.lr_d, betas=betas)
    bf16 = a.precision == "bf16-mixed"
    gen = torch.Generator().manual_seed(0)

    def step():
        idx = torch.randint(0, len(data), (a.batch,), generator=gen)
        x = data[idx.to(device)].float() / 127.5 - 1
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            with torch.no_grad():
                fake = G(torch.randn(a.batch, cfg.method.z_dim, device=device))
            loss_d = d_hinge(D(x), D(fake))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        D.requires_grad_(False)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss_g = g_hinge(D(G(torch.randn(a.batch, cfg.method.z_dim, device=device))))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)

    for _ in range(a.warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(a.steps - a.warmup):
        step()
    _sync(device)
    return a.batch * (a.steps - a.warmup) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--root", default="../shared/data")
    p.add_argument("--arch", default="dcgan")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--precision", default="32-true")
    p.add_argument("--accelerator", default="cpu")
    a = p.parse_args()
    lsgan_ips, plain_ips = [], []
    for r in range(a.rounds):
        if r % 2:  # alternate which side runs first, so drift in machine load hits both alike
            plain_ips.append(run_plain(a))
            lsgan_ips.append(run_lsgan(a))
        else:
            lsgan_ips.append(run_lsgan(a))
            plain_ips.append(run_plain(a))
        print(f"round {r}: lsgan {lsgan_ips[-1]:.1f} img/s   plain {plain_ips[-1]:.1f} img/s", flush=True)
    ml, mp = statistics.median(lsgan_ips), statistics.median(plain_ips)
    print(f"median: lsgan {ml:.1f} img/s, plain {mp:.1f} img/s, ratio {ml / mp:.3f} "
          f"({a.arch} width {a.width}, batch {a.batch}, {a.precision}, {a.accelerator}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
