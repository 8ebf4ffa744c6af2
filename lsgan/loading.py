"""Rebuild a trained method (and its data) from a checkpoint.

A checkpoint written by ``lsgan.run`` holds the method's hyperparameters ({"cfg", "data_info"},
saved by ``GANMethod.__init__``) and its state_dict, so the method is rebuilt exactly as it was
trained, without re-reading the training data. A config saved before ``loss=`` / ``method.adv_loss``
were split is translated first (``lsgan.upgrade.upgrade_saved_config``). The data module is rebuilt from the saved config;
``data.root`` and friends can be overridden because a checkpoint often moves between machines.
The command lines built on this (``lsgan.sample``, ``lsgan.evaluate``) are parsed by ``lsgan.cli``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lsgan.cli import parse_override, sweep_error
from lsgan.compose import GROUPS, compose_config
from lsgan.errors import CLIError, ConfigError

_MISSING = object()


def checkpoint_file(path) -> str:
    """``ckpt=`` as given, or for a folder its run's last checkpoint: ``<run>/checkpoints/last.ckpt``, or
    ``last.ckpt`` of a checkpoints folder. A folder with neither is one line saying what to give."""
    p = Path(str(path)).expanduser()
    if not p.is_dir():
        return str(path)
    for cand in (p / "checkpoints" / "last.ckpt", p / "last.ckpt"):
        if cand.is_file():
            return str(cand)
    raise CLIError(f"ckpt={path}: a folder with no checkpoints/last.ckpt; give a run dir of lsgan.run or a .ckpt file")


def load_method(ckpt_path, device="cpu", overrides: Sequence[str] = ()) -> Tuple[object, DictConfig]:
    """(method in eval mode on ``device``, its config) from a checkpoint written by ``lsgan.run``.

    ``overrides`` are Hydra override strings applied to the saved config before the method is
    rebuilt (e.g. ``data.root=../shared/data``; see ``apply_overrides``); they must not change the networks.
    """
    from lsgan.methods import METHODS
    from lsgan.methods.base import DataInfo
    from lsgan.upgrade import upgrade_saved_config
    from lsgan.resume import read_checkpoint, state_misfit

    try:  # a missing, truncated or foreign file is one line naming it
        blob = read_checkpoint(ckpt_path, key="ckpt", training=False)
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    hp = blob.get("hyper_parameters") or {}
    if "cfg" not in hp or "data_info" not in hp or "state_dict" not in blob:
        raise CLIError(f"ckpt={ckpt_path}: not an lsgan checkpoint (no cfg/data_info hyperparameters or state_dict)")
    # a checkpoint written before loss= / method.adv_loss were split (loss.name: wgan_gp, loss.gp_weight,
    # coupled's method.g_loss) is read in today's spelling; lsgan.upgrade.upgrade_saved_config translates
    cfg = apply_overrides(OmegaConf.create(upgrade_saved_config(hp["cfg"])), overrides)
    name = cfg.method.name
    if name not in METHODS:
        raise CLIError(f"ckpt={ckpt_path}: method={name} is not registered; known: {', '.join(sorted(METHODS))}")
    info = DataInfo(**hp["data_info"])
    try:
        method = METHODS[name](cfg, info)
    except OmegaConfBaseException as exc:  # a key the code reads that this checkpoint's config never had
        key = getattr(exc, "full_key", None) or "?"
        raise CLIError(f"ckpt={ckpt_path}: its saved config has no {key} (written by another version of lsgan?); "
                       f"give the value it was trained with: {key}=VALUE") from None
    misfit = state_misfit(method, blob["state_dict"])  # loads the weights when they fit
    if misfit is not None:
        raise CLIError(f"ckpt={ckpt_path}: its weights do not fit the nets its saved config describes ({misfit})")
    method.iteration = int(blob.get("lsgan", {}).get("iteration", 0))
    method.to(torch.device(device))
    method.eval()
    return method, cfg


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """A copy of ``cfg`` (a checkpoint's saved config) with overrides applied as Hydra applies them.

    Each override is read with Hydra's grammar (``lsgan.cli.parse_override``): ``key=value`` sets a
    key, ``+key=value`` adds one that is absent (or null), ``++key=value`` adds or sets, ``~key``
    (``~key=value``: only if it holds that value) deletes. A plain ``key=value`` also adds a key the
    checkpoint predates when the current defaults know it (``conf/`` composed for its method); any
    other unknown key fails in one line. Config groups (``dataset=``) cannot change a trained model.
    """
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    for arg in overrides:
        o = parse_override(arg)
        key, value = o.key_or_group, o.value()
        if o.is_sweep_override():
            raise sweep_error(o)
        if o.package is not None or "/" in key or "." not in key and key in GROUPS:
            raise CLIError(f"{arg}: config groups cannot be changed on a trained checkpoint; set dotted keys "
                           f"(data.root=..., metrics.n_samples=...)")
        current = OmegaConf.select(out, key, default=_MISSING)
        if o.is_delete():
            if current is _MISSING:
                raise CLIError(f"{arg}: {key} is not in the checkpoint's config, nothing to delete")
            if value is not None and value != current:
                raise CLIError(f"{arg}: {key} is {current}, not {value}; not deleted")
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(out, parent) if parent else out
            del node[leaf]
        elif o.is_add() and current not in (_MISSING, None) and not isinstance(value, (dict, list)):
            raise CLIError(f"{arg}: {key} is already in the checkpoint's config; drop the + to set it "
                           f"({o.input_line[1:]}) or write ++{o.input_line}")
        elif o.type.name == "CHANGE" and current is _MISSING and not _known_key(out, key):
            raise CLIError(f"{key} is not a key of the checkpoint's config ({_keys_near(out, key)}); "
                           f"+{o.input_line} adds it")
        else:
            try:
                OmegaConf.update(out, key, value, merge=True, force_add=True)
            except OmegaConfBaseException as exc:
                raise CLIError(f"{arg}: {' '.join(str(exc).splitlines()[0].split())}") from None
    return out


def _known_key(cfg: DictConfig, key: str) -> bool:
    """Whether the current defaults for the checkpoint's method have ``key`` (one a checkpoint written
    before the key existed lacks)."""
    try:
        base = compose_config([f"method={cfg.method.name}"])
    except Exception:  # a method conf/ no longer has: only the checkpoint's own keys
        return False
    return OmegaConf.select(base, key, default=_MISSING) is not _MISSING


def _keys_near(cfg: DictConfig, key: str) -> str:
    """'keys of <deepest existing parent>: a, b, c' for an unknown dotted key."""
    parent = key.rpartition(".")[0]
    while parent and not isinstance(OmegaConf.select(cfg, parent, default=None), DictConfig):
        parent = parent.rpartition(".")[0]
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return f"{'keys of ' + parent if parent else 'top-level keys'}: {', '.join(str(k) for k in node)}"


def load_datamodule(cfg: DictConfig):
    """The data module the run trained on (training split loaded; eval split on first use): the one
    ``lsgan.data.datamodule.datamodule_of`` that training builds too."""
    from lsgan.data.datamodule import datamodule_of

    return datamodule_of(cfg)


def resolve_device(name: Optional[str]) -> torch.device:
    """cpu | cuda | auto (None = auto: the GPU when there is one)."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name in ("gpu", "cuda") and not torch.cuda.is_available():
        raise CLIError(f"device={name}: no CUDA device available; accepted values: cpu, auto")
    if name not in ("cpu", "gpu", "cuda") and not str(name).startswith("cuda:"):
        raise CLIError(f"device={name} is not accepted; accepted values: cpu, cuda, auto")
    return torch.device("cuda" if name == "gpu" else name)


def run_dir_of(ckpt_path) -> Path:
    """The run directory a checkpoint belongs to (``<run>/checkpoints/x.ckpt`` → ``<run>``)."""
    p = Path(str(ckpt_path)).expanduser().absolute()
    return p.parent.parent if p.parent.name == "checkpoints" else p.parent


def output_dir_of(ckpt_path, kind: str) -> Path:
    """Where a command writes for a checkpoint when not told (``kind``: eval, sample): ``<run>/<kind>`` for
    the run's last.ckpt, ``<run>/<kind>/<name>`` for any other (iter_*, best), so an earlier checkpoint's
    output never overwrites the final one."""
    base = run_dir_of(ckpt_path) / kind
    name = Path(str(ckpt_path)).name
    return base if name == "last.ckpt" else base / Path(name).stem


__all__ = ["CLIError", "apply_overrides", "load_datamodule", "load_method", "output_dir_of", "resolve_device",
           "run_dir_of"]
