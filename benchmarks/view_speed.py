"""Natural-image views: the batched crop / flip / colour jitter of ``lsgan.augment`` against the same
transforms run image by image with torchvision v2, inside the slcGAN recipe on CIFAR-10.

Both sides run in one process on one ``PlainLoop`` (benchmarks/method_speed.py: the method's own
d_step / g_step, no Lightning), alternated round by round so machine noise hits both alike; only
C's view function differs. Reports training iterations/s and the view function's time per batch.

    OMP_NUM_THREADS=1 python benchmarks/view_speed.py --root ../shared/data
    python benchmarks/view_speed.py --dataset celeba64 --steps 20
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from method_speed import PlainLoop  # noqa: E402  (benchmarks/method_speed.py)


def per_image_views(cfg, size: int):
    """The v2 pipeline of the same transforms, applied image by image (a v2 transform called on a
    batch would draw one set of parameters for all of it)."""
    pipeline = v2.Compose([
        v2.RandomResizedCrop(size, scale=tuple(cfg.crop_scale), ratio=tuple(cfg.crop_ratio), antialias=True),
        v2.RandomHorizontalFlip(p=float(cfg.flip)),
        v2.ColorJitter(float(cfg.brightness), float(cfg.contrast), float(cfg.saturation), float(cfg.hue))])

    def views(x: torch.Tensor) -> torch.Tensor:
        unit = (x.detach() + 1.0) / 2.0
        return torch.stack([pipeline(img) for img in unit]).clamp(0.0, 1.0) * 2.0 - 1.0

    return views


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--steps", type=int, default=40, help="iterations per timed round (the first --warmup not timed)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    a.accelerator = "cpu"
    torch.set_num_threads(a.threads)
    loop = PlainLoop("slcgan", a, [f"dataset={a.dataset}"])
    aug = loop.m.augment
    if aug is None or aug.kind != "crop_jitter":
        raise SystemExit(f"dataset={a.dataset}: the recipe picks {getattr(aug, 'kind', None)} views, not crop_jitter")
    sides = {"batched": aug.forward, "per-image": per_image_views(loop.cfg.method.augment, aug.size)}
    batch = torch.rand(int(loop.cfg.data.batch_size), *loop.m.data_info.shape) * 2 - 1
    rates = {k: [] for k in sides}
    view_ms = {k: [] for k in sides}
    for r in range(a.rounds):
        for name, fn in sides.items():
            aug.forward = fn
            rates[name].append(loop.rate(a))
            t0 = time.perf_counter()
            for _ in range(10):
                fn(batch)
            view_ms[name].append((time.perf_counter() - t0) / 10 * 1000)
            print(f"round {r + 1} {name}: {rates[name][-1]:.2f} it/s, views {view_ms[name][-1]:.1f} ms/batch", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    ms = {k: statistics.median(v) for k, v in view_ms.items()}
    print(f"\nslcgan recipe on {a.dataset} ({tuple(loop.m.data_info.shape)}, batch {loop.cfg.data.batch_size}), "
          f"{a.threads} thread(s), medians of {a.rounds} rounds:")
    print("| views | it/s | views ms/batch |\n|---|---|---|")
    for k in sides:
        print(f"| {k} | {med[k]:.2f} | {ms[k]:.1f} |")
    print(f"batched / per-image: {med['batched'] / med['per-image']:.2f}x it/s, {ms['per-image'] / ms['batched']:.1f}x views")


if __name__ == "__main__":
    main()
