"""One-shot check of a machine with a GPU (run through benchmarks/device_check.sh).

Prints, in one run of at most ~8 minutes on one GPU:

1. SNGAN-32 ResNet training throughput (images/s) through lsgan and through a plain PyTorch loop,
   fp32 vs bf16-mixed, at batch 64 and 256 (benchmarks/throughput.py's two sides), with the
   achieved fraction of the GPU's bf16 and fp32 matmul peak, measured here;
2. each MNIST recipe (``conf/experiment/<method>_mnist.yaml``) trained ``--recipe-seconds`` on the
   GPU, its iterations and its figures from the metric suite;
3. a two-process DDP run when two or more GPUs are present (skipped, and said so, otherwise);
4. ``trainer.compile`` on nemgan_mnist: compile time and compiled / eager iterations/s (method_speed's
   plain loop), as benchmarks/compile_speed.py measures it on the CPU.

``--dry-run`` runs the same code path on the CPU with tiny sizes (a few iterations, width 8, small
metric samples) in well under a minute; tests/test_benchmarks.py runs it.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compile_speed  # noqa: E402  (benchmarks/compile_speed.py: compiled against eager, one recipe)
import throughput  # noqa: E402  (benchmarks/throughput.py: its lsgan and plain sides)

from lsgan.precision import resolve_precision  # noqa: E402
from lsgan.run import compose_config, train  # noqa: E402

RECIPES = {  # recipe -> metrics read after training (coupled has no clusters)
    "clustergan_mnist": ["cluster", "cond_acc", "classifier_fid"],
    "nemgan_mnist": ["cluster", "cond_acc", "classifier_fid"],
    "slcgan_mnist": ["cluster", "cond_acc", "classifier_fid"],
    "coupled_mnist": ["cond_acc", "z_variety", "classifier_fid"],
}
DRY_METRICS = ["cluster"]  # needs no evaluator classifier (none is trained in a dry run)


def matmul_peak_tflops(device: torch.device, dtype: torch.dtype, n: int, reps: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    throughput._sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    throughput._sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e12


def sngan_flops_per_image(a) -> float:
    """FLOPs of one training iteration of the throughput benchmark's nets, per image."""
    from torch.utils.flop_counter import FlopCounterMode

    from lsgan.config import validate
    from lsgan.nets import build_discriminator, build_generator

    cfg = validate(compose_config(throughput.overrides(a)))
    shape = (3, 32, 32) if a.dataset != "digits" else (1, 32, 32)
    G, D = build_generator(cfg.model, cfg.method.z_dim, shape), build_discriminator(cfg.model, shape)
    x = torch.rand(8, *shape) * 2 - 1
    counter = FlopCounterMode(display=False)
    with counter:  # one D step and one G step, as the benchmark's schedule
        with torch.no_grad():
            fake = G(torch.randn(8, cfg.method.z_dim))
        (D(x).mean() - D(fake).mean()).backward()
        D(G(torch.randn(8, cfg.method.z_dim))).mean().backward()
    return counter.get_total_flops() / 8


def section_throughput(a, device: torch.device) -> None:
    print("\n## 1. SNGAN-32 ResNet throughput (images/s)", flush=True)
    n, reps = (256, 2) if a.dry_run else (8192, 20)
    peaks = {"bf16-mixed": matmul_peak_tflops(device, torch.bfloat16, n, reps),
             "32-true": matmul_peak_tflops(device, torch.float32, n, reps)}
    print(f"matmul peak measured here: bf16 {peaks['bf16-mixed']:.1f} TFLOP/s, fp32 {peaks['32-true']:.1f} TFLOP/s")
    bench = argparse.Namespace(dataset="digits" if a.dry_run else "cifar10", root=a.root, arch="resnet",
                               width=8 if a.dry_run else 128, steps=4 if a.dry_run else 60,
                               warmup=1 if a.dry_run else 10, accelerator=a.accelerator)
    flops = sngan_flops_per_image(argparse.Namespace(**vars(bench), batch=8, precision="32-true"))
    print("| batch | precision | lsgan img/s | plain img/s | lsgan / plain | fraction of that precision's matmul peak |")
    print("|---|---|---|---|---|---|")
    for batch in ((8,) if a.dry_run else (64, 256)):
        for precision in ("32-true", "bf16-mixed"):
            b = argparse.Namespace(**vars(bench), batch=batch, precision=precision)
            ours, plain = throughput.run_lsgan(b), throughput.run_plain(b)
            frac = ours * flops / (peaks[precision] * 1e12)
            print(f"| {batch} | {precision} | {ours:.0f} | {plain:.0f} | {ours / plain:.3f} | {frac:.1%} |", flush=True)


def section_recipes(a, device: torch.device) -> None:
    from lsgan.evaluate import evaluate

    print(f"\n## 2. MNIST recipes, {a.recipe_seconds:g} s each on {device.type}", flush=True)
    print("| recipe | precision | iterations | it/s | figures |")
    print("|---|---|---|---|---|")
    for recipe, names in RECIPES.items():
        extra = ["trainer.progress_bar=false", "trainer.sample_every=0", "trainer.ckpt_every=0",
                 f"trainer.accelerator={a.accelerator}", f"trainer.max_minutes={a.recipe_seconds / 60}"]
        if a.dry_run:
            extra += ["trainer.steps=3", "model.g_width=8", "model.d_width=8", "data.max_train=256",
                      "extractor.pca_dim=16", "method.pair_pool=0"] if recipe == "coupled_mnist" else \
                     ["trainer.steps=3", "model.g_width=8", "model.d_width=8", "data.max_train=256"]
        cfg = compose_config([f"experiment={recipe}", f"data.root={a.root}", *extra])
        precision = resolve_precision(str(cfg.trainer.precision), a.accelerator, warn=False)  # what auto became
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            result = train(cfg, d)
            seconds = time.perf_counter() - t0
            metrics = DRY_METRICS if a.dry_run else names
            if a.dry_run and recipe == "coupled_mnist":
                metrics = []
            figures = "-"
            if metrics:
                n = 64 if a.dry_run else 2000
                doc = evaluate(result.checkpoint, metrics, Path(d) / "eval", n=n, device=device.type,
                               overrides=[f"data.root={a.root}"] + (["metrics.ref_n=256"] if a.dry_run else []),
                               report=False, log=lambda *_: None)
                figures = ", ".join(f"{k} {v['value']:.3f}" if "value" in v else f"{k} skipped"
                                    for k, v in doc["metrics"].items())
            print(f"| {recipe} | {precision} | {result.iteration} | {result.iteration / seconds:.1f} | {figures} |",
                  flush=True)


def section_ddp(a) -> None:
    print("\n## 3. DDP", flush=True)
    gpus = torch.cuda.device_count() if a.accelerator == "gpu" else 0
    if gpus < 2:
        print(f"skipped: {gpus} GPU(s) here, DDP needs 2 (trainer=ddp trainer.devices=2)")
        return
    import subprocess

    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "lsgan.run", "trainer=ddp", "trainer.devices=2", "trainer.accelerator=gpu",
               "trainer.steps=200", "trainer.progress_bar=false", f"run_dir={d}"]
        t0 = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"2-GPU DDP sngan on digits, 200 iterations: rc {rc}, {time.perf_counter() - t0:.0f} s")


def section_compile(a, device: torch.device) -> None:
    recipe = "nemgan_mnist"
    print(f"\n## 4. trainer.compile, {recipe} (the recipe's steps in a plain loop)", flush=True)
    loop = argparse.Namespace(root=a.root, steps=8 if a.dry_run else 300, warmup=3 if a.dry_run else 100,
                              accelerator=a.accelerator)
    # dry run: aot_eager traces like inductor without generating code, so the path is checked in seconds
    extra = ["trainer.compile_backend=aot_eager", "model.g_width=8", "model.d_width=8",
             "data.max_train=256"] if a.dry_run else []
    (compile_s,), ((e, c),), _ = compile_speed.compare(recipe, loop, extra, rounds=1)
    print("| backend | first step (compile) s | eager it/s | compiled it/s | compiled / eager |")
    print("|---|---|---|---|---|")
    backend = "aot_eager" if a.dry_run else "inductor"
    print(f"| {backend} | {compile_s:.0f} | {e:.1f} | {c:.1f} | {c / e:.3f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks the path in < 1 minute")
    p.add_argument("--root", default="../shared/data")
    p.add_argument("--recipe-seconds", type=float, default=75.0)
    a = p.parse_args()
    a.accelerator = "cpu" if a.dry_run else "gpu"
    if not a.dry_run and not torch.cuda.is_available():
        sys.exit("error: no CUDA GPU visible; benchmarks/device_check.sh --dry-run checks the path on the CPU")
    device = torch.device("cuda" if a.accelerator == "gpu" else "cpu")
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU (dry run)"
    print(f"# device check: {name}, torch {torch.__version__}", flush=True)
    t0 = time.perf_counter()
    section_throughput(a, device)
    section_recipes(a, device)
    section_ddp(a)
    section_compile(a, device)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
