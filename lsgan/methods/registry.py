"""The method registry: name -> GANMethod subclass.

A method module decorates its class(es) with ``@register``; ``lsgan.methods`` imports the method
modules it lists, so a helper file placed in ``methods/`` is never imported as a side effect.
This module imports nothing, so ``lsgan.methods.base`` can look names up without a cycle.
"""
from __future__ import annotations

METHODS = {}


def register(cls):
    METHODS[cls.Config.name] = cls
    return cls


__all__ = ["METHODS", "register"]
