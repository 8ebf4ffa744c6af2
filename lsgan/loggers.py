"""Loggers: a metrics CSV in every run directory (always), plus W&B or TensorBoard on request."""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers import CSVLogger

from lsgan.compose import run_name
from lsgan.io import atomic_file


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv; a resumed run must keep it.

    Rows logged after the checkpoint being resumed from (a crash between the checkpoint and
    the next log row) are dropped so the file has each iteration once.
    """

    resume_iteration = None

    def _check_log_dir_exists(self) -> None:
        if not os.path.isfile(self.metrics_file_path):
            return
        with open(self.metrics_file_path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            self.metrics_keys = sorted(reader.fieldnames or [])
        if self.resume_iteration is not None:
            kept = [r for r in rows if int(float(r.get("step") or 0)) <= self.resume_iteration]
            if len(kept) != len(rows):
                with atomic_file(self.metrics_file_path, "w", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
                    writer.writeheader()
                    writer.writerows(kept)


class RunCSVLogger(CSVLogger):
    """CSVLogger writing ``<run_dir>/metrics.csv`` and appending on resume."""

    def __init__(self, run_dir: str, resume_iteration=None):
        # Flush on every row: Lightning flushes when (step + 1) % 100 == 0, and our steps are
        # iterations logged every log_every (20, 50, ...), so it would only write at the very end
        # and a crash would lose the whole curve.
        super().__init__(save_dir=run_dir, name="", version="", flush_logs_every_n_steps=1)
        self._resume_iteration = resume_iteration

    @property
    def experiment(self):
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            _AppendingWriter.resume_iteration = self._resume_iteration
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def build_loggers(cfg, run_dir: str, run_name: str, group: str, resume_iteration=None) -> List:
    loggers = [RunCSVLogger(run_dir, resume_iteration)]
    name = cfg.logger.name
    if name == "wandb":
        from pytorch_lightning.loggers import WandbLogger

        # One W&B run per run dir: its id is kept in the run dir, so a resumed run continues the
        # same W&B run, and each job of a sweep (one process, several run dirs) gets its own.
        # The config reaches W&B once, through Lightning's log_hyperparams.
        loggers.append(WandbLogger(save_dir=run_dir, **wandb_init_kwargs(cfg, run_dir, run_name, group)))
    elif name == "tensorboard":
        from pytorch_lightning.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=run_dir, name="tb", version=""))
    return loggers


def wandb_init_kwargs(cfg, run_dir: str, run_name: str, group: str) -> dict:
    """``wandb.init`` arguments of a run dir's W&B run (besides ``dir``, the run dir): the same for training
    and for ``lsgan.evaluate``, which logs into the run training made."""
    kwargs = dict(project=cfg.logger.project, entity=cfg.logger.entity, name=wandb_run_name(run_dir, run_name),
                  group=cfg.logger.group or group, tags=list(cfg.logger.tags), id=wandb_run_id(run_dir),
                  resume="allow")
    if cfg.logger.mode:
        kwargs["mode"] = cfg.logger.mode
    return kwargs


def run_group(cfg, overrides=None) -> str:
    """The W&B group of a run: the experiment recipe its command line names (``experiment=X``, so
    the jobs of a recipe's sweep group together), else ``<method>-<dataset>``."""
    named = [o.split("=", 1)[1] for o in overrides or () if o.lstrip("+").startswith("experiment=")]
    return named[-1] if named else f"{cfg.method.name}-{cfg.data.name}"


def wandb_run_id(run_dir: str) -> str:
    """The W&B run id of a run dir (``<run_dir>/wandb_id``), made on first use."""
    import uuid

    path = os.path.join(run_dir, "wandb_id")
    if os.path.isfile(path):
        with open(path) as fh:
            run_id = fh.read().strip()
        if run_id:
            return run_id
    run_id = uuid.uuid4().hex[:12]
    with atomic_file(path, "w") as fh:
        fh.write(run_id + "\n")
    return run_id


def wandb_run_name(run_dir: str, run_name: str) -> str:
    """``<method>-<dataset>-<loss>-<adv_loss>-s<seed>``, plus the run dir's name when it spells overrides (a
    sweep job: ``3_coupled-mnist_method.lr_g=0.0001``), so swept values show in the W&B table."""
    leaf = os.path.basename(os.path.normpath(run_dir))
    return f"{run_name} {leaf}" if "=" in leaf else run_name


def finish_loggers(loggers) -> None:
    """Close each W&B run at the end of a job, so the next job in this process opens its own."""
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger" and getattr(logger, "_experiment", None) is not None:
            logger.experiment.finish()


def log_sample_grid(loggers, path, iteration: int) -> None:
    """The sample grid PNG as an image on W&B / TensorBoard (the CSV logger has no images)."""
    for logger in loggers:
        kind = type(logger).__name__
        if kind == "WandbLogger":
            logger.log_image(key="samples", images=[str(path)], step=iteration)
        elif kind == "TensorBoardLogger":
            import numpy as np
            from PIL import Image

            with Image.open(path) as im:
                logger.experiment.add_image("samples", np.asarray(im.convert("RGB")), iteration, dataformats="HWC")


def _tensorboard_writer():
    """TensorBoard's ``SummaryWriter`` as Lightning's TensorBoardLogger picks it (tensorboard, else
    tensorboardX), or None when neither is installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # ImportError without the tensorboard package
    except ImportError:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            return None
    return SummaryWriter


def _rgb(path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def log_evaluation(cfg, run_dir, iteration: int, scalars: Dict[str, float], figures: Sequence) -> Optional[str]:
    """``lsgan.evaluate``'s numbers and report figures into the logger the run trained with, under ``eval/``.

    ``logger=wandb`` (and ``<run_dir>/wandb_id`` present): the run's own W&B run, resumed by its id with
    the project / entity / mode / dir training used, then finished. The row carries
    ``trainer/global_step = iteration`` and ``eval/*`` is plotted against it (``define_metric``), as
    Lightning logs training; W&B's own step is left to W&B, so an evaluation of an earlier checkpoint is
    never refused for a step below the run's last. ``logger=tensorboard``: the run's ``<run_dir>/tb``
    at step ``iteration``, when TensorBoard is importable (else nothing). Returns where it logged
    (a URL or a folder), or None when the run has no such logger."""
    run_dir = Path(run_dir)
    figures = [Path(p) for p in figures]
    name = cfg.logger.name if "logger" in cfg else "csv"
    if name == "wandb" and (run_dir / "wandb_id").is_file():
        return _log_evaluation_wandb(cfg, run_dir, iteration, scalars, figures)
    if name == "tensorboard":
        writer_class = _tensorboard_writer()
        if writer_class is None:
            return None
        writer = writer_class(log_dir=str(run_dir / "tb"))
        try:
            for key, value in scalars.items():
                writer.add_scalar(f"eval/{key}", value, iteration)
            for path in figures:
                writer.add_image(f"eval/{path.stem}", _rgb(path), iteration, dataformats="HWC")
        finally:
            writer.close()
        return f"TensorBoard ({run_dir / 'tb'})"
    return None


def _log_evaluation_wandb(cfg, run_dir, iteration, scalars, figures) -> str:
    import wandb
    import yaml

    overrides_file = run_dir / "overrides.yaml"
    overrides = (yaml.safe_load(overrides_file.read_text()) or []) if overrides_file.is_file() else []
    kwargs = wandb_init_kwargs(cfg, str(run_dir), run_name(cfg), run_group(cfg, overrides))
    run = wandb.init(dir=str(run_dir), **kwargs)
    try:
        run.define_metric("trainer/global_step")
        run.define_metric("eval/*", step_metric="trainer/global_step")
        row = {f"eval/{k}": v for k, v in scalars.items()}
        row.update({f"eval/{p.stem}": wandb.Image(str(p)) for p in figures})
        row["trainer/global_step"] = int(iteration)
        run.log(row)
        url = getattr(run, "url", None)
        where = f"W&B run {run.id} " + (f"({url})" if url else f"(offline: {Path(run.dir).parent})")
    finally:
        run.finish()
    return where


def _plain(cfg):
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)
