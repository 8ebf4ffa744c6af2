"""Rebuild a trained method (and its data) from a checkpoint, and parse ``key=value`` CLI args.

A checkpoint written by ``lsgan.run`` holds the method's hyperparameters ({"cfg", "data_info"},
saved by ``GANMethod.__init__``) and its state_dict, so the method is rebuilt exactly as it was
trained, without re-reading the training data. The data module is rebuilt from the saved config;
``data.root`` and friends can be overridden because a checkpoint often moves between machines.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from omegaconf import DictConfig, OmegaConf


class CLIError(ValueError):
    """A bad command-line argument; its message is one line."""


def load_method(ckpt_path, device="cpu", overrides: Sequence[str] = ()) -> Tuple[object, DictConfig]:
    """(method in eval mode on ``device``, its config) from a checkpoint written by ``lsgan.run``.

    ``overrides`` are dotted ``key=value`` strings applied to the saved config before the method
    is rebuilt (e.g. ``data.root=../shared/data``); they must not change the networks.
    """
    from lsgan.methods import METHODS
    from lsgan.methods.base import DataInfo

    from lsgan.config import ConfigError
    from lsgan.resume import read_checkpoint

    try:  # a missing, truncated or foreign file is one line naming it
        blob = read_checkpoint(ckpt_path, key="ckpt")
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    hp = blob.get("hyper_parameters") or {}
    if "cfg" not in hp or "data_info" not in hp or "state_dict" not in blob:
        raise CLIError(f"ckpt={ckpt_path}: not an lsgan checkpoint (no cfg/data_info hyperparameters or state_dict)")
    cfg = apply_overrides(OmegaConf.create(hp["cfg"]), overrides)
    name = cfg.method.name
    if name not in METHODS:
        raise CLIError(f"ckpt={ckpt_path}: method={name} is not registered; known: {', '.join(sorted(METHODS))}")
    info = DataInfo(**hp["data_info"])
    method = METHODS[name](cfg, info)
    method.load_state_dict(blob["state_dict"])
    method.iteration = int(blob.get("lsgan", {}).get("iteration", 0))
    method.to(torch.device(device))
    method.eval()
    return method, cfg


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """``cfg`` with dotted ``key=value`` overrides merged in (values parsed as YAML, like Hydra)."""
    if not overrides:
        return cfg
    for item in overrides:
        if "=" not in item:
            raise CLIError(f"{item!r}: expected key=value")
    out = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    return out


def load_datamodule(cfg: DictConfig):
    """The data module the run trained on (training split loaded; eval split on first use)."""
    from lsgan.data.datamodule import GANDataModule

    dm = GANDataModule(cfg.data, seed=int(cfg.get("seed", 0)))
    dm.setup("fit")
    return dm


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


# --------------------------------------------------------------------------- CLI args
def parse_args(argv: Iterable[str], known: Dict[str, object]) -> Tuple[Dict[str, object], List[str]]:
    """Split ``key=value`` args into the command's own keys (``known``: name -> default) and
    dotted config overrides (``data.root=...``, ``metrics.n_samples=...``).

    Values are parsed as Python/YAML-ish literals: ints, floats, true/false, null, [a,b] lists.
    """
    own = dict(known)
    overrides: List[str] = []
    for arg in argv:
        if "=" not in arg:
            raise CLIError(f"{arg!r}: arguments are key=value; accepted keys: {', '.join(known)} or dotted config keys")
        key, value = arg.split("=", 1)
        if key in known:
            own[key] = parse_value(value)
        elif "." in key:
            overrides.append(arg)
        else:
            raise CLIError(f"{key}: unknown argument; accepted keys: {', '.join(known)} or dotted config keys "
                           f"(data.root=..., metrics.n_samples=...)")
    return own, overrides


def parse_value(value: str):
    low = value.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none", ""):
        return None
    if value.startswith("[") and value.endswith("]"):
        inner = value[1:-1].strip()
        return [parse_value(v.strip()) for v in inner.split(",")] if inner else []
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


__all__ = ["CLIError", "apply_overrides", "load_datamodule", "load_method", "parse_args",
           "parse_value", "resolve_device", "run_dir_of"]


def run_cli(main) -> None:
    """Run a CLI's ``main()``; a user mistake prints one ``error: ...`` line and exits 2."""
    import sys

    from lsgan.config import ConfigError

    try:
        main()
    except (CLIError, ConfigError, FileNotFoundError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(2)
