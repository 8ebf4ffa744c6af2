"""Atomic file writes: a reader (or a crash) sees the old file or the complete new one, never half.

Everything lsgan writes to last (checkpoints of evaluators, extractors and clusterers, reference
statistics, caches, metrics.json) goes through :func:`atomic_file`.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Union

PathLike = Union[str, os.PathLike]


def _plain_mode(path: str) -> None:
    """mkstemp creates 0600 files; give them the mode a plain open() would (caches may be shared)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


@contextmanager
def atomic_file(path: PathLike, mode: str = "wb", fsync: bool = False) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it replaces ``path``
    (``os.replace``), on an exception it is removed and ``path`` is left as it was. Creates the
    parent folder. ``fsync`` flushes to disk before the rename (for caches other processes share)."""
    path = Path(os.path.expanduser(str(path)))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.stem}-", suffix=".tmp")
    try:
        _plain_mode(tmp)
        with os.fdopen(fd, mode) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj, path: PathLike) -> str:
    """``torch.save`` through :func:`atomic_file`; returns the path as a string."""
    import torch

    with atomic_file(path) as fh:
        torch.save(obj, fh)
    return str(path)
