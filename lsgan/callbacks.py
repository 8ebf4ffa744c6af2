"""Lightning callbacks shared by every method: stopping, checkpoints, sample grids, progress."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Optional, Sequence

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.utilities.exceptions import SIGTERMException

from lsgan.errors import one_line
from lsgan.io import atomic_path, atomic_torch_save
from lsgan.nets.modes import eval_mode


def write_checkpoint(trainer, path: Path, collective: bool = True) -> None:
    """The trainer's full state (optimizers and loops resume from it) written to ``path`` through
    :func:`lsgan.io.atomic_torch_save`: the temporary file is beside ``path``, removed on any failure, and a
    full disk is a one-line :class:`~lsgan.errors.NoSpaceError`. Only rank 0 writes.

    Not ``trainer.save_checkpoint``: Lightning's local writer stages the file in the system temp folder
    and moves it, so a checkpoint needed space on two disks and a failed move left a partial file.
    ``collective``: every rank calls this, and rank 0's failure reaches the others (no rank waits
    forever at a barrier); False where only rank 0 calls it."""
    checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)  # what save_checkpoint saves
    failure = None
    if trainer.is_global_zero:
        try:
            atomic_torch_save(checkpoint, path)
        except Exception as exc:
            if not collective:
                raise
            failure = exc
    del checkpoint
    if not collective:
        return
    message = trainer.strategy.broadcast(None if failure is None else one_line(failure), src=0)
    if failure is not None:
        raise failure
    if message is not None:
        raise RuntimeError(f"rank 0 could not write {path}: {message}")


class StopAtIteration(pl.Callback):
    """Stop after ``steps`` training iterations.

    Lightning's ``max_steps`` counts optimizer steps, so with two or more optimizers (and a
    schedule that skips some of them) it is not the number of batches; methods count their
    own iterations and this callback ends training on that count.
    """

    def __init__(self, steps: int):
        self.steps = int(steps)

    def on_train_start(self, trainer, pl_module):
        if pl_module.iteration >= self.steps:
            trainer.should_stop = True

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if pl_module.iteration >= self.steps:  # resumed from a run that was already done
            trainer.should_stop = True
            return -1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.iteration >= self.steps:
            trainer.should_stop = True


class AtomicCheckpoint(pl.Callback):
    """``last.ckpt`` after every ``every`` iterations and at the end, plus numbered copies.

    Each file is written to a temporary name beside it and renamed (:func:`write_checkpoint`), so a crash
    or a full disk mid-write never leaves a truncated checkpoint where a good one was, nor a partial file.
    Only rank 0 writes.
    """

    def __init__(self, dirpath: str, every: int, steps: int, keep: Optional[int] = None):
        self.dirpath = Path(dirpath)
        self.every = int(every)
        self.steps = int(steps)
        self.keep = None if keep is None else int(keep)
        self._last_saved = -1

    def _prune(self) -> None:
        """Keep the newest ``keep`` numbered checkpoints (last.ckpt and best.ckpt are never removed): a long
        run's disk use stays bounded."""
        if self.keep is None:
            return
        for old in sorted(self.dirpath.glob("iter_*.ckpt"))[:-self.keep]:
            old.unlink(missing_ok=True)

    def _save(self, trainer, path: Path) -> None:
        write_checkpoint(trainer, path)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        it = pl_module.iteration
        numbered = self.every > 0 and it % self.every == 0
        if numbered or it >= self.steps:
            if trainer.is_global_zero:
                self.dirpath.mkdir(parents=True, exist_ok=True)
            self._save(trainer, self.dirpath / "last.ckpt")
            if numbered:
                self._save(trainer, self.dirpath / f"iter_{it:07d}.ckpt")
                if trainer.is_global_zero:
                    self._prune()
            self._last_saved = it

    def _save_last(self, trainer, pl_module) -> None:
        if self._last_saved != pl_module.iteration:
            if trainer.is_global_zero:
                self.dirpath.mkdir(parents=True, exist_ok=True)
            self._save(trainer, self.dirpath / "last.ckpt")
            self._last_saved = pl_module.iteration

    def on_train_end(self, trainer, pl_module):
        # A run stopped early (a wall-clock budget, another callback) ends with an up-to-date last.ckpt.
        self._save_last(trainer, pl_module)

    def on_exception(self, trainer, pl_module, exception):
        # SIGTERM (a scheduler's preemption, `kill`): Lightning finishes the current batch and raises;
        # the iterations since the last checkpoint are saved, so the same command resumes from here.
        if isinstance(exception, SIGTERMException):
            self._save_last(trainer, pl_module)


def grid_picture(images: torch.Tensor, nrow: int, row_labels: Optional[Sequence[str]] = None,
                 column_label: Optional[str] = None):
    """The PIL picture of a grid of images in [-1, 1] (torchvision's ``make_grid``, 1 px padding), with a
    margin holding ``row_labels`` left of the rows (e.g. ``c3``, the condition a row shows) and
    ``column_label`` over the first column (``exemplar`` when it holds the images the rows are like). A
    label is drawn where it fits (Pillow's built-in font): a row lower than the text keeps no label. Without
    labels the picture is the plain grid, pixel for pixel what ``torchvision.utils.save_image`` writes."""
    from PIL import Image, ImageDraw, ImageFont
    from torchvision.utils import make_grid

    pad = 1
    grid = make_grid(images.float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1), padding=pad)
    picture = Image.fromarray(grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy())
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(picture)
    size = lambda text: measure.textbbox((0, 0), text, font=font)[2:]  # noqa: E731 - (width, height)
    tile_h, tile_w = images.shape[-2], images.shape[-1]
    text_h = size("c0123456789exemplar")[1]
    rows = [str(t or "") for t in (row_labels or [])][:math.ceil(len(images) / max(1, min(nrow, len(images))))]
    if not any(rows) or tile_h < text_h:
        rows = []
    head = str(column_label or "") if column_label and size(str(column_label))[0] <= picture.width + 4 else ""
    if not rows and not head:
        return picture
    gap = 3
    left = max(size(t)[0] for t in rows) + 2 * gap if rows else 0
    top = text_h + 2 * gap if head else 0
    out = Image.new("RGB", (picture.width + left, picture.height + top), (255, 255, 255))
    out.paste(picture, (left, top))
    draw = ImageDraw.Draw(out)
    for r, text in enumerate(rows):
        y = top + pad + r * (tile_h + pad) + (tile_h - text_h) // 2
        draw.text((gap, y), text, fill=(0, 0, 0), font=font)
    if head:
        draw.text((left + pad, gap), head, fill=(0, 0, 0), font=font)
    return out


def save_sample_grid(images: torch.Tensor, path: Path, nrow: int, row_labels: Optional[Sequence[str]] = None,
                     column_label: Optional[str] = None) -> None:
    """PNG grid of images in [-1, 1] (labelled as :func:`grid_picture` says); 2-D points are drawn as a scatter
    plot instead."""
    with atomic_path(path, suffix=path.suffix) as tmp:  # the savers infer the format from the suffix
        if images.dim() == 2:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            pts = images.float().cpu().numpy()
            fig, ax = plt.subplots(figsize=(4, 4))
            ax.scatter(pts[:, 0], pts[:, 1], s=4, alpha=0.6)
            ax.set_aspect("equal")
            fig.savefig(tmp, dpi=100)
            plt.close(fig)
        else:
            grid_picture(images, nrow, row_labels, column_label).save(tmp)


def grid_labels(pl_module) -> dict:
    """The labels of a method's sample grid (``sample_grid``): ``exemplar`` over the first column of a method
    that generates from exemplar images, else each row's condition id."""
    conds = pl_module.grid_conditions()
    if conds is None:
        return {}
    if pl_module.accepts_exemplars:
        return {"column_label": "exemplar"}
    return {"row_labels": [f"c{c}" for c in conds]}


class SampleGrid(pl.Callback):
    """Sample grid PNG every ``every`` iterations and at the end (one row per condition)."""

    def __init__(self, dirpath: str, every: int, steps: int):
        self.dirpath = Path(dirpath)
        self.every = int(every)
        self.steps = int(steps)

    def _write(self, pl_module) -> None:
        with eval_mode(pl_module):
            images = pl_module.sample_grid()
        nrow = 10 if pl_module.grid_conditions() is not None else 8
        labels = grid_labels(pl_module)
        save_sample_grid(images, self.dirpath / f"iter_{pl_module.iteration:07d}.png", nrow, **labels)
        save_sample_grid(images, self.dirpath / "latest.png", nrow, **labels)
        self._last_written = pl_module.iteration
        from lsgan.loggers import log_sample_grid

        log_sample_grid(pl_module.loggers, self.dirpath / "latest.png", pl_module.iteration)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        it = pl_module.iteration
        if trainer.is_global_zero and ((self.every > 0 and it % self.every == 0) or it == self.steps):
            self._write(pl_module)

    def on_train_end(self, trainer, pl_module):
        # A run stopped early (a wall-clock budget, another callback) still ends with a grid.
        if trainer.is_global_zero and getattr(self, "_last_written", None) != pl_module.iteration:
            self._write(pl_module)


class IterationProgressBar(TQDMProgressBar):
    """tqdm bar measured in training iterations (the data stream itself is infinite)."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = int(steps)

    def on_train_epoch_start(self, trainer, pl_module):
        super().on_train_epoch_start(trainer, pl_module)
        self.train_progress_bar.reset(total=self.steps)
        self.train_progress_bar.initial = pl_module.iteration
        self.train_progress_bar.n = pl_module.iteration
        self.train_progress_bar.set_description(f"{pl_module.mcfg.name}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        bar = self.train_progress_bar
        bar.n = pl_module.iteration
        if pl_module.iteration % max(1, self.refresh_rate) == 0 or pl_module.iteration >= self.steps:
            bar.set_postfix(self.get_metrics(trainer, pl_module))
            bar.refresh()


class PlainProgress(pl.Callback):
    """The progress of a run whose console is not a terminal (a cluster job's log): one plain line every
    ``every`` iterations, instead of a bar redrawn at every step."""

    def __init__(self, steps: int, every: int):
        self.steps, self.every = int(steps), max(1, int(every))
        self._start = None

    def on_train_start(self, trainer, pl_module):
        self._start = (time.perf_counter(), pl_module.iteration)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        i = pl_module.iteration
        if not trainer.is_global_zero or (i % self.every and i < self.steps):
            return
        t0, i0 = self._start
        rate = (i - i0) / max(time.perf_counter() - t0, 1e-9)
        shown = " ".join(f"{k}={float(v):.3g}" for k, v in trainer.progress_bar_metrics.items())
        print(f"[lsgan] {pl_module.mcfg.name} iteration {i}/{self.steps} {rate:.2f} it/s {shown}".rstrip(), flush=True)
