"""Cost of ``lsgan.evaluate`` on one checkpoint: a cold call (empty reference caches) then a warm one.

    python benchmarks/eval_cost.py --ckpt runs/<run>/checkpoints/last.ckpt --root ../shared/data
    python benchmarks/eval_cost.py --ckpt ... --metrics cond_acc cluster classifier_fid classifier_prdc --n 10000
    python benchmarks/eval_cost.py --ckpt ... --inception-only --inception-images 1000

The evaluator classifier is the cached one (``lsgan.train_evaluator``; its training time is its
own line in the README). The cache directory starts empty, so the first call computes the
evaluator features of the reference images and the second must read them back. With
``--inception-images N`` it also times the FID InceptionV3 on N generated-size images, the rate
every Inception metric (fid, kid, prdc, like) pays per image on this machine, in fp32 and in bf16 side by side on the
same generated and reference images, with the FID under each.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from lsgan.evaluate import evaluate
from lsgan.loading import load_method
from lsgan.metrics.resolve import evaluator_path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--root", default="../shared/data")
    p.add_argument("--metrics", nargs="+", default=["cond_acc", "cluster", "classifier_fid", "classifier_prdc"])
    p.add_argument("--n", type=int, default=10000, help="generated samples")
    p.add_argument("--inception-images", type=int, default=0)
    p.add_argument("--inception-only", action="store_true", help="skip the lsgan.evaluate calls (no evaluator needed)")
    a = p.parse_args()
    method, cfg = load_method(a.ckpt, overrides=[f"data.root={a.root}"])
    if a.inception_only:
        return inception_precisions(method, cfg, a.inception_images or 200)
    channels, size = int(method.data_info.shape[0]), int(method.data_info.shape[-1])
    ev = evaluator_path(cfg, size, channels)  # the default cache's evaluator, named explicitly
    print(f"threads {torch.get_num_threads()}, evaluator {ev}, metrics {a.metrics}, n {a.n}")
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
        over = [f"data.root={a.root}", f"metrics.cache_dir={cache}", f"metrics.evaluator={ev}"]
        for label in ("cold", "warm"):
            t0 = time.perf_counter()
            doc = evaluate(a.ckpt, a.metrics, out, n=a.n, device="cpu", overrides=over, report=False,
                           log=lambda *_: None)
            wall = time.perf_counter() - t0
            per = ", ".join(f"{k} {v.get('seconds', float('nan')):.1f} s" for k, v in doc["metrics"].items())
            print(f"{label}: {wall:.1f} s in all (metrics {doc['seconds']} s: {per})", flush=True)
    if a.inception_images:
        inception_precisions(method, cfg, a.inception_images)


def inception_precisions(method, cfg, n: int) -> None:
    """The FID InceptionV3 in fp32 and in bf16 autocast side by side on the same n generated and n reference
    images: images/s of each, and the FID of the two sets under each (bf16 is kept only within 1 % of fp32)."""
    from lsgan.loading import load_datamodule
    from lsgan.metrics.fid import fid_from_features
    from lsgan.metrics.inception import batched_features, load_inception
    from lsgan.metrics.suite import MetricSuite
    from lsgan.precision import native_bf16

    suite = MetricSuite(method, load_datamodule(cfg), cfg, evaluator=None, log=None)
    fake, real = suite.generated(n).images, suite.reference().data[:n]
    fids = {}
    for precision in ("32", "bf16"):
        net = load_inception(cfg.metrics.get("inception_weights"), torch.device("cpu"), precision)
        batched_features(net, real[:8], 8)  # warm-up: oneDNN picks its kernels on the first call
        t0 = time.perf_counter()
        feats = [batched_features(net, x, 50) for x in (fake, real)]
        rate = 2 * n / (time.perf_counter() - t0)
        fids[precision] = fid_from_features(feats[0].numpy(), feats[1].numpy())
        print(f"FID InceptionV3 {precision:>4}: {rate:.1f} images/s on {torch.get_num_threads()} thread(s), FID "
              f"{fids[precision]:.3f} ({n} generated vs {n} reference; 10,000 + 10,000 images: "
              f"~{20000 / rate / 60:.0f} min at that rate)", flush=True)
    gap = abs(fids["bf16"] - fids["32"]) / fids["32"] * 100
    print(f"bf16 vs fp32 FID: {gap:.2f} % apart; metrics.inception_precision=auto picks "
          f"{'bf16' if native_bf16('cpu') else 'fp32'} on this CPU")

if __name__ == "__main__":
    main()
