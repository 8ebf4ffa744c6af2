"""Sanity check of the FID pipeline: CIFAR-10 train vs test, 5,000 images each.

torch-fidelity's test expects FID ≈ 10.32 between the first 5k train and first 5k test images
in the original CIFAR order. Our npz is grouped by class, so each split is shuffled with a
fixed seed first; a random 5k subset should land within ~±0.3 of that value.

    .venv/bin/python benchmarks/fid_cifar_check.py --data /work/shared/data/cifar10.npz
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lsgan.metrics.fid import fid_from_features, frechet_distance, feature_stats  # noqa: E402
from lsgan.metrics.inception import batched_features, load_inception  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/cifar10.npz", help="cifar10.npz (x_train/x_test HWC uint8)")
    parser.add_argument("--n", type=int, default=5000, help="images per split")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-split shuffle")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--weights", default=None, help="explicit Inception TorchScript path")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--save-features", default=None, help="optional .npz to keep the features")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = np.load(args.data)
    rng = np.random.default_rng(args.seed)
    splits = {}
    for split in ("train", "test"):
        x = data[f"x_{split}"]
        idx = rng.permutation(len(x))[: args.n]
        splits[split] = torch.from_numpy(np.ascontiguousarray(x[idx].transpose(0, 3, 1, 2)))  # → N×3×32×32 uint8

    net = load_inception(args.weights)
    start = time.time()
    feats = {}
    for split, images in splits.items():
        t = time.time()
        feats[split] = batched_features(net, images, batch_size=args.batch_size).numpy()
        print(f"{split}: {len(images)} images -> {feats[split].shape} in {time.time() - t:.0f}s", flush=True)
    extract_s = time.time() - start

    t = time.time()
    fid = fid_from_features(feats["train"], feats["test"])
    fid_s = time.time() - t
    fid_sqrtm = frechet_distance(*feature_stats(feats["train"]), *feature_stats(feats["test"]), method="sqrtm")
    protocol = {"n_generated": args.n, "generated": "cifar10 train (seeded shuffle)", "reference_dataset": "cifar10",
                "reference_split": "test", "reference_n": args.n, "resolution": 32, "backbone": net.backbone,
                "weights": net.weights_path, "shuffle_seed": args.seed}
    print(json.dumps({"fid": round(fid, 4), "fid_sqrtm": round(fid_sqrtm, 4), "expected": "10.32 +- 0.3",
                      "protocol": protocol, "extract_seconds": round(extract_s, 1),
                      "frechet_seconds": round(fid_s, 2), "threads": torch.get_num_threads()}, indent=1))
    if args.save_features:
        np.savez(args.save_features, train=feats["train"], test=feats["test"])


if __name__ == "__main__":
    main()
