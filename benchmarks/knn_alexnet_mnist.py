"""kNN label agreement of untrained-AlexNet MNIST features (the paper's Table 2, MNIST: 89 / 84 / 78 %).

For every MNIST image of a split: does its 1st / 2nd / 5th nearest neighbour (Euclidean, exact,
self excluded) in the extractor's feature space share its class? ``lsgan.metrics.knn_label_agreement``
computes it; features come from ``extractor=alexnet_random`` through the on-disk feature cache
(the same images the coupled method trains on: MNIST resized to data.size=32, then to the
extractor's input size). Each split is measured on the full feature map and, when
``--pca`` is given, again after PCA to that many dimensions (fitted on the split itself).
Raw-pixel agreement is printed as a reference point.

    python benchmarks/knn_alexnet_mnist.py --data ../shared/data                       # test split (10k)
    python benchmarks/knn_alexnet_mnist.py --data ../shared/data --splits test train --pca 256
    python benchmarks/knn_alexnet_mnist.py --data ../shared/data --layer conv2 --input-size 64 --n 3000
"""
from __future__ import annotations

import argparse
import json
import time

import torch

PAPER = {1: 0.89, 2: 0.84, 5: 0.78}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data", help="folder with mnist.npz (data.root)")
    ap.add_argument("--splits", nargs="+", default=["test"], choices=["test", "train"])
    ap.add_argument("--layer", default="conv3", choices=["conv1", "conv2", "conv3", "conv4", "conv5"])
    ap.add_argument("--input-size", type=int, default=None, help="extractor.input_size (default: AlexNet's 64)")
    ap.add_argument("--pool", type=int, default=None, help="extractor.pool (default: full map)")
    ap.add_argument("--pca", type=int, nargs="*", default=[], help="also measure after PCA to these dims (<= 256)")
    ap.add_argument("--n", type=int, default=None, help="first N of a seeded permutation (default: whole split)")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 5])
    ap.add_argument("--seed", type=int, default=0, help="AlexNet random-weight seed")
    ap.add_argument("--cache-dir", default=None, help="extractor.cache_dir (default: $LSGAN_CACHE/features)")
    ap.add_argument("--no-pixels", action="store_true", help="skip the raw-pixel reference")
    ap.add_argument("--pca-only", action="store_true", help="skip the full-map measurement (60k x 3456 exact kNN is slow)")
    args = ap.parse_args()

    from lsgan.data.datasets import load_dataset
    from lsgan.features import FeatureCache, build_extractor, default_cache_dir
    from lsgan.features.cli import validate_feature_nodes
    from lsgan.metrics import knn_label_agreement
    from lsgan.run import compose_config

    overrides = ["dataset=mnist", f"data.root={args.data}", "extractor=alexnet_random", f"extractor.layer={args.layer}",
                 f"extractor.seed={args.seed}", "trainer.accelerator=cpu"]
    overrides += [f"extractor.input_size={args.input_size}"] if args.input_size else []
    overrides += [f"extractor.pool={args.pool}"] if args.pool else []
    overrides += [f"extractor.cache_dir={args.cache_dir}"] if args.cache_dir else []
    cfg = validate_feature_nodes(compose_config(overrides))
    print(f"torch threads: {torch.get_num_threads()}", flush=True)
    results = []
    for split in args.splits:
        ds = load_dataset(cfg.data, split, 0, train=False)  # no max_train / label noise: the whole clean split
        e = build_extractor(cfg.extractor, ds.data.shape[1:])
        t0 = time.perf_counter()
        feats, info = FeatureCache(default_cache_dir(cfg.extractor)).features(cfg.data, split, ds, e,
                                                                               int(cfg.extractor.batch_size), "cpu")
        t_feat = time.perf_counter() - t0
        labels = ds.clean_labels
        if args.n and args.n < len(ds):
            keep = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:args.n]
            feats, labels, pixels = feats[keep], labels[keep], ds.images(keep).flatten(1)
        else:
            pixels = None if args.no_pixels else ds.images().flatten(1)
        print(f"[{split}] features {tuple(feats.shape)} ({'cache hit' if info.hit else 'extracted'}, {t_feat:.0f}s): "
              f"alexnet_random {args.layer}, {e.input_size}px, pool={e.pool}", flush=True)
        name = "alexnet_random " + args.layer
        runs = ([] if args.pca_only else [(name, feats, None)]) + [(name, feats, p) for p in args.pca]
        if not args.no_pixels:
            runs.append(("raw pixels 32px", pixels, None))
        for name, x, pca in runs:
            t0 = time.perf_counter()
            r = knn_label_agreement(x, labels, ks=args.ks, pca_dim=pca)
            row = {"split": split, "features": name, "n": r["n"], "dim": r["dim"], "pca_dim": r["pca_dim"],
                   **{f"k{k}": round(100 * r[k], 2) for k in args.ks}, "seconds": round(time.perf_counter() - t0, 1)}
            results.append(row)
            print(json.dumps(row), flush=True)
    print("\n| split | features | N | dim | PCA | " + " | ".join(f"k={k}" for k in args.ks) + " |")
    print("|---|---|---|---|---|" + "---|" * len(args.ks))
    for row in results:
        print(f"| {row['split']} | {row['features']} | {row['n']} | {row['dim']} | {row['pca_dim'] or 'none'} | "
              + " | ".join(f"{row[f'k{k}']:.1f} %" for k in args.ks) + " |")
    print("| paper (Table 2) | untrained AlexNet | | | | " + " | ".join(
        f"{100 * PAPER[k]:.0f} %" if k in PAPER else "" for k in args.ks) + " |")


if __name__ == "__main__":
    main()
