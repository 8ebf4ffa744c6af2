"""Frozen feature extractors and the on-disk feature cache (coupled method). Stub: being built."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class ExtractorConfig:
    name: str = "alexnet_random"   # alexnet_random | rotnet | supervised
    layer: str = "conv3"           # which intermediate layer's feature map (flattened)
    weights: Optional[str] = None  # checkpoint of a trained extractor (rotnet / supervised)
