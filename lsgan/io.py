"""Atomic file writes: a reader (or a crash) sees the old file or the complete new one, never half;
and :func:`cache_root`, the one folder every lsgan cache lives under.

What lsgan writes to last (evaluators, extractors, clusterers, reference statistics, the feature
and image caches, config.yaml, metrics.json, sample grids) goes through :func:`atomic_path` (for
writers that need a file name) or :func:`atomic_file` (an open handle). Lightning checkpoints are
the exception: ``AtomicCheckpoint`` renames on rank 0 only, between DDP barriers.

``cache_root()`` is ``$LSGAN_CACHE``, else ``~/.cache/lsgan``: decoded image folders sit in it, features in
``features/``, trained extractors in ``extractors/``, evaluator classifiers in ``evaluators/`` and reference
statistics in ``reference_stats/`` (``extractor.cache_dir`` / ``metrics.cache_dir`` name another folder).
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Union

PathLike = Union[str, os.PathLike]
DEFAULT_CACHE = "~/.cache/lsgan"  # the cache root when $LSGAN_CACHE is not set


def cache_root() -> Path:
    """The cache root: ``$LSGAN_CACHE``, else ``~/.cache/lsgan``, with ``~`` expanded (read at each call)."""
    return Path(os.environ.get("LSGAN_CACHE", DEFAULT_CACHE)).expanduser()


def _plain_mode(path: str) -> None:
    """mkstemp creates 0600 files; give them the mode a plain open() would (caches may be shared)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


@contextmanager
def atomic_path(path: PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A fresh temporary file name beside ``path`` (created empty, unique, so concurrent writers
    never share it); on a clean exit it replaces ``path`` (``os.replace``), on an exception it is
    removed and ``path`` is left as it was. Creates the parent folder. ``suffix`` matters to
    writers that infer the format from the name (``.png``)."""
    path = Path(os.path.expanduser(str(path)))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.stem}-", suffix=suffix)
    os.close(fd)
    try:
        _plain_mode(tmp)
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_file(path: PathLike, mode: str = "wb", fsync: bool = False, **open_kwargs) -> Iterator[IO]:
    """:func:`atomic_path` with the temporary file opened (``mode``, ``open_kwargs`` as for
    ``open``). ``fsync`` flushes to disk before the rename (for caches other processes share)."""
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as fh:
        yield fh
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


def atomic_torch_save(obj, path: PathLike) -> str:
    """``torch.save`` through :func:`atomic_file`; returns the path as a string."""
    import torch

    with atomic_file(path) as fh:
        torch.save(obj, fh)
    return str(path)
