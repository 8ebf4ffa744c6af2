"""Method registry: each method module registers its LightningModule(s) by name (``@register``).

Adding a method = adding one module with a class decorated by ``@register`` and naming that module
in the import line below (the explicit list of method modules; helper modules such as ``base``,
``registry`` and ``clustering_term`` are imported only by what uses them).
"""
from __future__ import annotations

from lsgan.methods.registry import METHODS, register
from lsgan.methods import clustergan, coupled, nemgan, slcgan, sngan  # noqa: F401,E402  the methods; each registers itself

__all__ = ["METHODS", "register"]
