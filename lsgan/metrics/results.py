"""What a metric result becomes on the way out: JSON-ready values, a one-line summary, a flat row for loggers.

A result (``MetricSuite.compute``'s per-metric dict) holds numbers, arrays and a protocol; these helpers are
all that ``lsgan.evaluate`` (metrics.json, the table), the training-time ``MetricsCallback`` (metrics.csv and
the logger) and the collectors need to write it down. Pure functions of plain data.
"""
from __future__ import annotations

import math
from typing import Dict

import numpy as np
import torch


def to_jsonable(obj):
    """Arrays → lists, numpy scalars → Python, NaN/inf → None (JSON has no NaN), int keys → str."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return to_jsonable(obj.detach().cpu().numpy())
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    return obj


def summary(result: dict) -> str:
    """One line: the numbers of a result (or why it was skipped)."""
    if "skipped" in result:
        return f"skipped ({result['skipped']})"
    parts = [f"{k}={_fmt(v)}" for k, v in result.items()
             if k not in ("protocol", "seconds") and isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(parts)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def flatten_scalars(results: Dict[str, dict]) -> Dict[str, float]:
    """{name: value, "name/key": number} for logging; protocols, lists and skips are left out."""
    row: Dict[str, float] = {}
    for name, res in results.items():
        for key, v in res.items():
            if key in ("protocol", "seconds", "skipped") or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            row[name if key == "value" else f"{name}/{key}"] = float(v)
    return row


__all__ = ["flatten_scalars", "summary", "to_jsonable"]
