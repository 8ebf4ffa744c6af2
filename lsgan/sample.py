"""Draw samples from a checkpoint: ``python -m lsgan.sample ckpt=PATH n=64 [condition=K] [exemplars=test] out=DIR``.

Writes ``DIR/samples.png`` (a grid; one row per condition when every condition has the same
count, at most 20 per row) and ``DIR/samples.npz`` with exactly:

- ``images``        uint8 N×H×W×C (2-D toy data: ``points`` float32 N×2 instead);
- ``conditions``    int64 N, the condition id of each sample, −1 where there is none;
- ``source_index``  int64 N, only when conditioned on real images: index into that split;
- ``source_label``  int64 N, only then, and only if the split has labels.

Without ``condition`` a conditional model samples its conditions evenly (first conditions get
one more when N is not a multiple of K). Other arguments: ``seed=0``, ``device=auto|cpu|cuda``,
``batch_size=256``, ``ema=true`` and dotted config overrides such as ``data.root=DIR`` (needed
with ``exemplars`` when the data moved). Arguments use Hydra's override grammar (``lsgan.cli``);
``--help`` lists the keys, ``-m`` sweeps (``-m ckpt=... condition=0,1,2 out=samples/c${condition}``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from lsgan.cli import CLIError, Command, Key, check_bool, check_int, run, run_cli
from lsgan.loading import load_datamodule, load_method, resolve_device

EXEMPLAR_SPLITS = ("train", "test")


@dataclass
class Generated:
    """Generated samples and what they were conditioned on (all on CPU).

    images: float32 N×C×H×W in [-1, 1] (or N×d points); conditions: int64 N (−1 = none);
    source_index / source_label: int64 N for exemplar conditioning, else None.
    """

    images: torch.Tensor
    conditions: torch.Tensor
    source_index: Optional[torch.Tensor] = None
    source_label: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return len(self.images)


def condition_counts(n: int, k: int, weights: Optional[Sequence[float]] = None) -> List[int]:
    """Samples per condition: even (first n % k get one more), or proportional to ``weights``
    by largest remainders, so the counts always sum to n."""
    if weights is None:
        from lsgan.methods.base import per_condition_counts

        return per_condition_counts(n, k)
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    raw = w * n
    counts = np.floor(raw).astype(np.int64)
    for c in np.argsort(-(raw - counts), kind="stable")[: n - int(counts.sum())]:
        counts[c] += 1
    return counts.tolist()


def prior_weights(method) -> Optional[List[float]]:
    """The method's mode proportions when it has an imbalanced-capable prior (nemgan, clustergan), else None."""
    prior = getattr(method, "prior", None)
    w = getattr(prior, "weights", None)
    if w is None or len(w) != method.num_conditions:
        return None
    return [float(v) for v in torch.as_tensor(w).flatten()]


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(size, n - start)


@torch.no_grad()
def generate(method, n: int, condition: Optional[int] = None, exemplar_set=None,
             exemplar_indices: Optional[torch.Tensor] = None, batch_size: int = 256,
             use_ema: bool = True, weights: Optional[Sequence[float]] = None) -> Generated:
    """n samples from ``method`` (in eval mode).

    - ``exemplar_set`` (an ArrayDataset) with ``exemplar_indices`` (int64 n): one sample per
      exemplar image, for methods that accept exemplars;
    - ``condition`` = K: all n from condition K;
    - otherwise a conditional method covers its conditions evenly (or by ``weights``), an
      unconditional one samples freely.
    """
    if n < 1:
        raise CLIError(f"n={n}: must be >= 1")
    k = int(method.num_conditions)
    name = method.mcfg.name
    if exemplar_set is not None:
        if condition is not None:
            raise CLIError("condition and exemplars: give one or the other, not both")
        if not method.accepts_exemplars:
            raise CLIError(f"exemplars: method={name} does not generate from exemplar images "
                           f"(only methods with accepts_exemplars, e.g. coupled)")
        idx = torch.as_tensor(exemplar_indices, dtype=torch.long)
        images = []
        for start, size in _chunks(len(idx), batch_size):
            x = exemplar_set.images(idx[start:start + size]).to(method.device)
            images.append(method.sample(size, condition=x, use_ema=use_ema).float().cpu())
        labels = exemplar_set.clean_labels
        return Generated(torch.cat(images), torch.full((len(idx),), -1, dtype=torch.long), idx.clone(),
                         None if labels is None else labels[idx].clone().long())
    if condition is not None:
        if k == 0 and method.accepts_exemplars:
            raise CLIError(f"condition={condition}: method={name} generates from exemplar images, not condition ids; "
                           f"use exemplars=test (or exemplars=train)")
        if k == 0:
            raise CLIError(f"condition={condition}: method={name} is unconditional (it has no conditions)")
        if not isinstance(condition, int) or not 0 <= condition < k:
            raise CLIError(f"condition={condition}: method={name} has conditions 0..{k - 1}")
        counts = [0] * k
        counts[condition] = n
    elif k > 0:
        counts = condition_counts(n, k, weights)
    else:
        images = [method.sample(size, use_ema=use_ema).float().cpu() for _, size in _chunks(n, batch_size)]
        return Generated(torch.cat(images), torch.full((n,), -1, dtype=torch.long))
    images, conds = [], []
    for c, count in enumerate(counts):
        for _, size in _chunks(count, batch_size):
            images.append(method.sample(size, condition=c, use_ema=use_ema).float().cpu())
            conds.append(torch.full((size,), c, dtype=torch.long))
    return Generated(torch.cat(images), torch.cat(conds))


def exemplar_indices(split_size: int, n: int, seed: int) -> torch.Tensor:
    """n indices into a split: a seeded permutation (splits are stored grouped by class), cycled if n > size."""
    perm = torch.randperm(split_size, generator=torch.Generator().manual_seed(int(seed)))
    return perm.repeat((n + split_size - 1) // split_size)[:n]


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """Float N×C×H×W in [-1, 1] → uint8 N×H×W×C (the rounding a PNG would apply)."""
    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def samples_arrays(gen: Generated) -> Dict[str, np.ndarray]:
    """The samples.npz content for ``gen`` (see the module docstring)."""
    out: Dict[str, np.ndarray] = {}
    if gen.images.dim() == 4:
        out["images"] = to_uint8_hwc(gen.images)
    else:
        out["points"] = gen.images.float().numpy().astype(np.float32)
    out["conditions"] = gen.conditions.numpy().astype(np.int64)
    if gen.source_index is not None:
        out["source_index"] = gen.source_index.numpy().astype(np.int64)
        if gen.source_label is not None:
            out["source_label"] = gen.source_label.numpy().astype(np.int64)
    return out


def grid_columns(conditions: torch.Tensor) -> int:
    """One row per condition when every condition has the same count (≤ 20), else 8 columns."""
    ids = conditions[conditions >= 0]
    if len(ids) == len(conditions) and len(ids):
        counts = torch.bincount(ids)
        counts = counts[counts > 0]
        if len(counts) > 1 and bool((counts == counts[0]).all()) and int(counts[0]) <= 20:
            return int(counts[0])
    return 8


def write_samples(gen: Generated, out_dir, exemplar_images: Optional[torch.Tensor] = None) -> Dict[str, Path]:
    """samples.npz + samples.png (+ exemplars.png: the source images in the same layout)."""
    from lsgan.callbacks import save_sample_grid

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"npz": out / "samples.npz", "png": out / "samples.png"}
    np.savez(paths["npz"], **samples_arrays(gen))
    ncol = grid_columns(gen.conditions)
    save_sample_grid(gen.images[:400], paths["png"], ncol)
    if exemplar_images is not None:
        paths["exemplars"] = out / "exemplars.png"
        save_sample_grid(exemplar_images[:400], paths["exemplars"], ncol)
    return paths


USAGE = ("usage: python -m lsgan.sample ckpt=PATH n=64 [condition=K] [exemplars=test|train] out=DIR [seed=0] "
         "[device=auto] (--help: all keys)")
COMMAND = Command(
    prog="lsgan.sample",
    summary="Draw samples from a checkpoint: samples.png (a grid, one row per condition) and samples.npz "
            "(images uint8 NxHxWxC, conditions; source_index / source_label with exemplars).",
    keys={
        "ckpt": Key(None, "required: a checkpoint written by lsgan.run (runs/<run>/checkpoints/last.ckpt)", path=True,
                    shown="PATH"),
        "n": Key(64, "number of samples"),
        "condition": Key(None, "draw every sample from condition K (0..K-1); null: all conditions evenly"),
        "exemplars": Key(None, "test | train: one sample per real image of that split (coupled)"),
        "out": Key(None, "output folder; null: <run_dir>/sample", path=True),
        "seed": Key(0, "seeds the noise (and the exemplar draw)"),
        "device": Key("auto", "auto | cpu | cuda (auto: the GPU when there is one)"),
        "batch_size": Key(256, "samples generated per forward pass"),
        "ema": Key(True, "use the generator's EMA weights when the run kept them"),
    },
    overrides="the checkpoint's saved config",
    override_examples="data.root=DIR (needed with exemplars when the data moved)",
    examples=["python -m lsgan.sample ckpt=runs/cgan-mnist/checkpoints/last.ckpt n=64 out=samples/",
              "python -m lsgan.sample -m ckpt=runs/cgan-mnist/checkpoints/last.ckpt n=16 condition=0,1,2 "
              "'out=samples/c${condition}'"],
)


def main(argv: Optional[Sequence[str]] = None):
    """The command line (``argv`` default: ``sys.argv[1:]``): {"npz", "png"[, "exemplars"]: path}; with
    ``-m`` a list of them, one per job; with ``--help`` None."""
    return run(COMMAND, _job, argv)


def _job(args: Dict[str, object], overrides: List[str]) -> Dict[str, Path]:
    if args["ckpt"] is None:
        raise CLIError(f"ckpt: missing; {USAGE}")
    if not isinstance(args["n"], int) or isinstance(args["n"], bool) or args["n"] < 1:
        raise CLIError(f"n={args['n']}: must be a positive integer")
    if args["exemplars"] is not None and args["exemplars"] not in EXEMPLAR_SPLITS:
        raise CLIError(f"exemplars={args['exemplars']} is not accepted; accepted values: {', '.join(EXEMPLAR_SPLITS)}")
    check_int(args, "seed")
    check_int(args, "batch_size", 1)
    check_bool(args, "ema")
    method, cfg = load_method(args["ckpt"], resolve_device(args["device"]), overrides)
    out = Path(args["out"] or Path(str(args["ckpt"])).expanduser().absolute().parent.parent / "sample")
    torch.manual_seed(int(args["seed"]))
    exemplar_set, idx, exemplar_images = None, None, None
    if args["exemplars"] is not None:
        if not method.accepts_exemplars:  # fail before loading data
            raise CLIError(f"exemplars: method={cfg.method.name} does not generate from exemplar images "
                           f"(only methods with accepts_exemplars, e.g. coupled)")
        dm = load_datamodule(cfg)
        split = cfg.data.train_split if args["exemplars"] == "train" else cfg.data.eval_split
        exemplar_set = dm.train_set if args["exemplars"] == "train" else dm.eval_set
        idx = exemplar_indices(len(exemplar_set), args["n"], args["seed"])
        exemplar_images = exemplar_set.images(idx)
        print(f"[lsgan] exemplars: {args['n']} images of the {split} split", flush=True)
    gen = generate(method, args["n"], args["condition"], exemplar_set, idx, int(args["batch_size"]),
                   bool(args["ema"]))
    paths = write_samples(gen, out, exemplar_images)
    print(f"[lsgan] {len(gen)} samples from {cfg.method.name} (iteration {method.iteration})\n"
          + "\n".join(f"  {k}: {v}" for k, v in paths.items()), flush=True)
    return paths


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
