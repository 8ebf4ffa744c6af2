"""The bottom of the package: user-facing errors and the config-node helpers every layer uses.

Imports nothing from ``lsgan``, so any module (data readers, nets, priors, features, methods,
the CLIs) can raise a one-line ``ConfigError`` or check a node without pulling in the config
schema or the registries that ``lsgan.config.validate`` ties together.
"""
from __future__ import annotations

import errno

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A user-facing configuration mistake; its message is one line."""


class CLIError(ValueError):
    """A bad command-line argument; its message is one line."""


def job_error(exc: BaseException) -> Exception:
    """A sweep job's one-line error (a ConfigError, a divergence, a full disk) as Hydra's sweepers take it: the job
    counts as failed, the sweep's other jobs still run, and Hydra prints the line after the job's overrides,
    without a traceback."""
    from hydra.errors import CompactHydraException

    return CompactHydraException(f"error: {' '.join(str(exc).split())}")


class NoSpaceError(OSError):
    """A write stopped by a full disk (or quota); its message is one line naming the file, the space the
    write needs and the space free. ``errno`` stays ENOSPC / EDQUOT for callers that test it."""

    def __init__(self, message: str, code: int = errno.ENOSPC):
        super().__init__(code, message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # pickles (DDP, multiprocessing) with its message, not OSError's two arguments
        return (type(self), (self.message, self.errno))


def one_line(exc: BaseException) -> str:
    """An exception's message with its white space (newlines included) folded to single spaces."""
    return " ".join(str(exc).split())


def merge_node(schema, node, path: str):
    """``node`` merged onto the dataclass ``schema`` (defaults filled in); a wrong type or unknown key is
    a one-line ConfigError naming ``path.key`` and the node's fields."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or getattr(exc, "key", None) or "?"
        msg = getattr(exc, "msg", None) or one_line(exc)
        msg = " ".join(str(msg).split("full_key")[0].split())
        allowed = ", ".join(f.name for f in schema.__dataclass_fields__.values())
        raise ConfigError(f"{path}.{key}: {msg} (fields of {path}: {allowed})") from None
    return merged


def check_choice(path: str, value, accepted) -> None:
    if value not in accepted:
        raise ConfigError(f"{path}={value!r} is not accepted; accepted values: {', '.join(map(str, accepted))}")


__all__ = ["CLIError", "ConfigError", "NoSpaceError", "check_choice", "merge_node", "one_line"]
