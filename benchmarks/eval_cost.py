"""Cost of ``lsgan.evaluate`` on one checkpoint: a cold call (empty reference caches) then a warm one.

    python benchmarks/eval_cost.py --ckpt runs/<run>/checkpoints/last.ckpt --root ../shared/data
    python benchmarks/eval_cost.py --ckpt ... --metrics cond_acc cluster classifier_fid classifier_prdc --n 10000

The evaluator classifier is the cached one (``lsgan.train_evaluator``; its training time is its
own line in the README). The cache directory starts empty, so the first call computes the
evaluator features of the reference images and the second must read them back. With
``--inception-images N`` it also times the FID InceptionV3 on N generated-size images, the rate
every Inception metric (fid, kid, prdc) pays per image on this machine.
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
    a = p.parse_args()
    method, cfg = load_method(a.ckpt, overrides=[f"data.root={a.root}"])
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
        from lsgan.metrics.inception import batched_features, load_inception

        net = load_inception(cfg.metrics.get("inception_weights"), torch.device("cpu"))
        x = torch.rand(a.inception_images, channels, size, size) * 2 - 1
        batched_features(net, x[:8], 8)
        t0 = time.perf_counter()
        batched_features(net, x, 50)
        rate = a.inception_images / (time.perf_counter() - t0)
        print(f"FID InceptionV3: {rate:.1f} images/s on {torch.get_num_threads()} thread(s) "
              f"(fid / kid / prdc on 10,000 generated + 10,000 reference images: ~{20000 / rate / 60:.0f} min at that rate)")


if __name__ == "__main__":
    main()
