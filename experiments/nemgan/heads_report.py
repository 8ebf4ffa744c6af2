"""Every SeLa head of a nemgan checkpoint (``method.sinkhorn_heads`` > 1): how it clusters the run's real
evaluation split, and the label-free figures the head choice can read — docs/nemgan.md, session 12.

Per head: balanced Hungarian accuracy of its argmax on the evaluation split (labels, for the reader only), the
overlap (Jaccard) of its smallest cluster in the pool's labels with the other heads', and its mean adjusted Rand
index with the other heads' labels (``head_consensus``, the rule that selects the head). Reads the run's data
settings (``data.classes``, ``data.class_ratio``, ``data.root``); ``--balanced`` drops the class ratio (0/4 at 02:98:
every 0 and 4 of the test split, ~980 each, instead of ~20 0s), ``--root`` sets the data folder.

    python experiments/nemgan/heads_report.py <run>/checkpoints/iter_0002000.ckpt --balanced [--root ../shared/data]
"""
from __future__ import annotations

import argparse

import torch

from lsgan.loading import load_method
from lsgan.methods.clustering_term import head_consensus
from lsgan.metrics.clustering import clustering_report
from lsgan.nets.modes import eval_mode
from lsgan.run import build_datamodule


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpt")
    ap.add_argument("--root", default=None, help="data folder (default: the run's data.root)")
    ap.add_argument("--balanced", action="store_true", help="evaluate on the split without data.class_ratio")
    args = ap.parse_args()
    method, cfg = load_method(args.ckpt)
    term = method.cluster_term
    if term is None or term.heads < 2:
        raise SystemExit(f"{args.ckpt}: not a run with method.sinkhorn_heads > 1")
    if args.root is not None:
        cfg.data.root = args.root
    if args.balanced:
        cfg.data.class_ratio = None
    dm = build_datamodule(cfg)
    dm.setup("fit")
    x, y = dm.eval_set.images(), dm.eval_set.clean_labels.numpy()
    with torch.no_grad(), eval_mode(method.mode_net):
        logits = torch.cat([method.scaled_head_logits(x[i:i + 500]) for i in range(0, len(x), 500)])
    logits = logits.view(len(x), term.heads, -1)
    pool = term.pool_y[:int(term.pool_n)]
    small = 0 if term.prior_weights is None else int(term.prior_weights.argmin())  # the prior's smallest cluster
    score = head_consensus(pool)
    print(f"{args.ckpt}: head read {int(term.head)}; pool of {len(pool)} images, smallest cluster {small}")
    for h in range(term.heads):
        pred = logits[:, h].argmax(1).numpy()
        mine = pool[:, h] == small
        overlap = [float((mine & (pool[:, g] == small)).sum()) / max(1.0, float((mine | (pool[:, g] == small)).sum()))
                   for g in range(term.heads) if g != h]
        print(f"  head {h}: balanced ACC {clustering_report(y, pred)['balanced_acc']:.3f}, "
              f"smallest-cluster overlap with the others {', '.join(f'{o:.2f}' for o in overlap)}, "
              f"mean ARI with the others {float(score[h]):.3f}")


if __name__ == "__main__":
    main()
