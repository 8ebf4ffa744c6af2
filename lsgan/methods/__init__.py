"""Method registry: every module in this package registers its LightningModule(s) by name.

Adding a method = adding one module with a class decorated by ``@register``; nothing else
needs editing.
"""
from __future__ import annotations

import importlib
import pkgutil

METHODS = {}


def register(cls):
    METHODS[cls.Config.name] = cls
    return cls


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


_discover()
