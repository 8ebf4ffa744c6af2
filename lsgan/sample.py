"""Draw samples from a checkpoint: ``python -m lsgan.sample ckpt=PATH n=64 [condition=K] [exemplars=test] out=DIR``.

Writes ``DIR/samples.png`` (a grid; one row per condition when every condition has the same
count, at most 20 per row, each row's condition id ``c<k>`` at its left) and ``DIR/samples.npz`` with exactly:

- ``images``        uint8 N×H×W×C (2-D toy data: ``points`` float32 N×2 instead);
- ``conditions``    int64 N, the condition id of each sample, −1 where there is none;
- ``source_index``  int64 N, only when conditioned on real images: index into that split;
- ``source_label``  int64 N, only then, and only if the split has labels.

``like=IMAGES`` (a file, a folder, or ``[a.png,b.jpg]``) draws ``n`` samples "like" each of your own
images with any conditional method (``method.sample_like``: coupled from the image's features, the
clustering methods from the condition ``condition_of`` finds for it); the grid has one row per image,
the image first as the model sees it (the column headed ``exemplar``; the clustering methods' rows are
labelled with the condition found), and ``samples.npz`` holds ``images``, ``like_index``,
``conditions`` (−1 for coupled) and ``like_files``.

Without ``condition`` a conditional model samples its conditions evenly (first conditions get
one more when N is not a multiple of K). Other arguments: ``seed=0``, ``device=auto|cpu|cuda``,
``batch_size=256``, ``ema=true`` and dotted config overrides such as ``data.root=DIR`` (needed
with ``exemplars`` when the data moved). Arguments use Hydra's override grammar (``lsgan.cli``);
``--help`` lists the keys, ``-m`` sweeps (``-m ckpt=... condition=0,1,2 out=samples/c${condition}``).

This module is the command line and the files it writes; generating itself is ``lsgan.generation`` (its
names are importable from here too).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from lsgan.cli import CLIError, Command, Key, check_bool, check_int, run, run_cli
from lsgan.io import check_output_dir
from lsgan.generation import (Generated, GenerationError, condition_counts, exemplar_indices,  # noqa: F401
                              generate, prior_weights, samples_arrays, to_uint8_hwc)
from lsgan.loading import checkpoint_file, load_datamodule, load_method, output_dir_of, resolve_device

EXEMPLAR_SPLITS = ("train", "test")


def grid_columns(conditions: torch.Tensor) -> int:
    """One row per condition when every condition has the same count (≤ 20), else 8 columns."""
    ids = conditions[conditions >= 0]
    if len(ids) == len(conditions) and len(ids):
        counts = torch.bincount(ids)
        counts = counts[counts > 0]
        if len(counts) > 1 and bool((counts == counts[0]).all()) and int(counts[0]) <= 20:
            return int(counts[0])
    return 8


def row_conditions(conditions: torch.Tensor, ncol: int) -> Optional[List[str]]:
    """``c<k>`` for each grid row of ``ncol`` samples when every row holds one condition k, else None."""
    rows = [conditions[i:i + ncol] for i in range(0, len(conditions), ncol)]
    if not rows or any(int(r[0]) < 0 or bool((r != r[0]).any()) for r in rows):
        return None
    return [f"c{int(r[0])}" for r in rows]


def write_samples(gen: Generated, out_dir, exemplar_images: Optional[torch.Tensor] = None) -> Dict[str, Path]:
    """samples.npz + samples.png (+ exemplars.png: the source images in the same layout)."""
    from lsgan.callbacks import save_sample_grid

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"npz": out / "samples.npz", "png": out / "samples.png"}
    np.savez(paths["npz"], **samples_arrays(gen))
    ncol = grid_columns(gen.conditions)
    save_sample_grid(gen.images[:400], paths["png"], ncol, row_labels=row_conditions(gen.conditions[:400], ncol))
    if exemplar_images is not None:
        paths["exemplars"] = out / "exemplars.png"
        save_sample_grid(exemplar_images[:400], paths["exemplars"], ncol)
    return paths


USAGE = ("usage: python -m lsgan.sample ckpt=PATH n=64 [condition=K] [exemplars=test|train] [like=IMAGES] out=DIR [seed=0] "
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
        "like": Key(None, "your own images (a file, a folder, or [a.png,b.jpg]): n samples like each, every method "
                          "with conditions; the grid's first column is the image as the model sees it", path=True),
        "out": Key(None, "output folder; null: <run_dir>/sample (<run_dir>/sample/<name> for a checkpoint other than last.ckpt)", path=True),
        "seed": Key(0, "seeds the noise (and the exemplar draw)"),
        "device": Key("auto", "auto | cpu | cuda (auto: the GPU when there is one)"),
        "batch_size": Key(256, "samples generated per forward pass"),
        "ema": Key(True, "use the generator's EMA weights when the run kept them"),
    },
    overrides="the checkpoint's saved config",
    override_examples="data.root=DIR (needed with exemplars when the data moved)",
    examples=["python -m lsgan.sample ckpt=runs/cgan-mnist/checkpoints/last.ckpt n=64 out=samples/",
              "python -m lsgan.sample ckpt=runs/slcgan-mnist n=8 like=my_digits/",
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
    args["ckpt"] = checkpoint_file(args["ckpt"])  # a run dir stands for its last checkpoint
    files = like_files(args["like"]) if args["like"] is not None else None  # a bad path fails before loading
    if files is not None and args["exemplars"] is not None:
        raise CLIError("like / exemplars: give one of them (your own images, or a split's)")
    out = check_output_dir(args["out"] or output_dir_of(args["ckpt"], "sample"), "out")  # before any work
    method, cfg = load_method(args["ckpt"], resolve_device(args["device"]), overrides)
    torch.manual_seed(int(args["seed"]))
    if files is not None:
        return _like_job(method, cfg, files, args, out)
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
    try:
        gen = generate(method, args["n"], args["condition"], exemplar_set, idx, int(args["batch_size"]),
                       bool(args["ema"]))
    except GenerationError as exc:  # the library's one-line error is this command line's argument error
        raise CLIError(str(exc)) from None
    paths = write_samples(gen, out, exemplar_images)
    print(f"[lsgan] {len(gen)} samples from {cfg.method.name} (iteration {method.iteration})\n"
          + "\n".join(f"  {k}: {v}" for k, v in paths.items()), flush=True)
    return paths


def like_files(like) -> List[Path]:
    """The image files ``like=`` names: a file, a folder's images (sorted), or a list of files."""
    from lsgan.data.datasets import IMAGE_SUFFIXES

    items = [like] if isinstance(like, (str, Path)) else list(like)
    files: List[Path] = []
    for item in items:
        p = Path(str(item)).expanduser()
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                raise CLIError(f"like={item}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise CLIError(f"like={item}: no such file or folder")
    return files


def read_like_images(files: Sequence[Path], shape: Sequence[int]) -> torch.Tensor:
    """Files → B×C×H×W in [-1, 1] as the model's data pipeline shapes images: centre square, bilinear
    resize to its side, gray (ITU-R 601 luma) or RGB as it was trained."""
    from PIL import UnidentifiedImageError

    from lsgan.data.datasets import _decode_one, _set_channels

    if len(shape) != 3:
        raise CLIError(f"like: this model generates {tuple(shape)} data, not images")
    decoded = []
    for f in files:
        try:
            arr = _decode_one(Path(f), int(shape[-1]))  # the same centre square and resize as image datasets
        except (UnidentifiedImageError, OSError) as exc:
            raise CLIError(f"like={f}: not a readable image ({' '.join(str(exc).split())[:100]})") from None
        decoded.append(torch.from_numpy(arr.copy()).permute(2, 0, 1))
    return _set_channels(torch.stack(decoded), int(shape[0])).float().div(127.5).sub(1.0)


def _like_job(method, cfg, files: List[Path], args: Dict[str, object], out: Path) -> Dict[str, Path]:
    from lsgan.callbacks import save_sample_grid

    if not method.accepts_exemplars and method.num_conditions == 0:
        raise CLIError(f"like: method={cfg.method.name} has no conditions to find for an image "
                       f"(coupled, clustergan, nemgan and slcgan do)")
    images = read_like_images(files, method.data_info.shape)
    try:
        samples = method.sample_like(images, int(args["n"]), use_ema=bool(args["ema"])).cpu()
    except (ValueError, NotImplementedError) as exc:
        raise CLIError(f"like: {exc}") from None
    b, n = samples.shape[:2]
    conditions = (torch.full((b,), -1, dtype=torch.long) if method.accepts_exemplars
                  else method.condition_of(images).cpu().long())
    out.mkdir(parents=True, exist_ok=True)
    paths = {"npz": out / "samples.npz", "png": out / "samples.png"}
    np.savez(paths["npz"], images=to_uint8_hwc(samples.reshape(b * n, *samples.shape[2:])),
             like_index=np.repeat(np.arange(b), n), conditions=np.repeat(conditions.numpy(), n),
             like_files=np.array([str(f) for f in files]))
    rows = torch.cat([images.unsqueeze(1), samples], dim=1)  # first column: the image as the model sees it
    save_sample_grid(rows[:40].reshape(-1, *samples.shape[2:]), paths["png"], n + 1, column_label="exemplar",
                     row_labels=None if method.accepts_exemplars else [f"c{c}" for c in conditions.tolist()[:40]])
    found = "" if method.accepts_exemplars else f" (conditions {conditions.tolist()[:20]})"
    print(f"[lsgan] {b * n} samples like {b} image(s) from {cfg.method.name} (iteration {method.iteration}){found}\n"
          + "\n".join(f"  {k}: {v}" for k, v in paths.items()), flush=True)
    return paths


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
