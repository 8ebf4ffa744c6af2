"""Loggers: a metrics CSV in every run directory (always), plus W&B or TensorBoard on request."""
from __future__ import annotations

import csv
import os
from typing import List

from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers import CSVLogger

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

        kwargs = {}
        if cfg.logger.mode:
            kwargs["mode"] = cfg.logger.mode
        # One W&B run per run dir: its id is kept in the run dir, so a resumed run continues the
        # same W&B run, and each job of a sweep (one process, several run dirs) gets its own.
        # The config reaches W&B once, through Lightning's log_hyperparams.
        loggers.append(WandbLogger(
            project=cfg.logger.project, entity=cfg.logger.entity, name=wandb_run_name(run_dir, run_name),
            group=cfg.logger.group or group, tags=list(cfg.logger.tags), save_dir=run_dir,
            id=wandb_run_id(run_dir), resume="allow", **kwargs,
        ))
    elif name == "tensorboard":
        from pytorch_lightning.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=run_dir, name="tb", version=""))
    return loggers


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


def _plain(cfg):
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)
