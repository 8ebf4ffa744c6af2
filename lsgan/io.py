"""Atomic file writes: a reader (or a crash) sees the old file or the complete new one, never half;
and :func:`cache_root`, the one folder every lsgan cache lives under.

What lsgan writes to last (checkpoints, evaluators, extractors, clusterers, reference statistics,
the feature and image caches, config.yaml, metrics.json, sample grids) goes through :func:`atomic_path`
(for writers that need a file name) or :func:`atomic_file` (an open handle). The temporary file sits
in the target's own folder, so a write needs space on one disk only, and it is removed on any failure.
A full disk (or quota) is a one-line :class:`~lsgan.errors.NoSpaceError` naming the file, the space
the write needs and the space free.

``cache_root()`` is ``$LSGAN_CACHE``, else ``~/.cache/lsgan``: decoded image folders sit in it, features in
``features/``, trained extractors in ``extractors/``, evaluator classifiers in ``evaluators/`` and reference
statistics in ``reference_stats/`` (``extractor.cache_dir`` / ``metrics.cache_dir`` name another folder).
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator, Optional, Union

from lsgan.errors import ConfigError, NoSpaceError

PathLike = Union[str, os.PathLike]
Size = Union[int, Callable[[], int], None]
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
DEFAULT_CACHE = "~/.cache/lsgan"  # the cache root when $LSGAN_CACHE is not set


def cache_root() -> Path:
    """The cache root: ``$LSGAN_CACHE``, else ``~/.cache/lsgan``, with ``~`` expanded (read at each call)."""
    return Path(os.environ.get("LSGAN_CACHE", DEFAULT_CACHE)).expanduser()


def _plain_mode(path: str) -> None:
    """mkstemp creates 0600 files; give them the mode a plain open() would (caches may be shared)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def _no_space_errno(exc: Optional[BaseException]) -> Optional[int]:
    """ENOSPC / EDQUOT when ``exc``, or an exception it was raised from or during, is a full disk or quota."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            return exc.errno
        exc = exc.__cause__ or exc.__context__
    return None


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from, or during) is a full disk or quota."""
    return _no_space_errno(exc) is not None


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"  # a config file is not "0.0 MB"


def no_space_error(exc: BaseException, path: Optional[PathLike], needed: Optional[int] = None,
                   at_least: bool = False) -> NoSpaceError:
    """The one-line error for a write to ``path`` (None: unknown) that ``exc`` (a full disk or quota)
    stopped: what the write needs (``at_least``: what it had written when it failed, a lower bound) and
    what is free."""
    code = _no_space_errno(exc) or errno.ENOSPC
    what = "disk quota exceeded" if code == errno.EDQUOT else "no space left on device"
    if path is None:
        return NoSpaceError(f"{what} ({' '.join(str(exc).split())})", code)
    parts = []
    if needed:
        parts.append(f"needs more than {_mb(needed)}" if at_least else f"needs ~{_mb(needed)}")
    if code == errno.ENOSPC:  # a quota's headroom is not the disk's free space: say nothing rather than mislead
        folder = Path(os.path.expanduser(str(path))).parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            parts.append(f"{_mb(shutil.disk_usage(folder).free)} free")
        except OSError:
            pass
    return NoSpaceError(f"{what} writing {path}" + (f" ({', '.join(parts)})" if parts else ""), code)


def check_output_dir(path: PathLike, key: str) -> Path:
    """``path`` (absolute) when lsgan can write a folder there: it is a folder or does not exist yet, and the
    nearest existing folder at or above it is writable. Otherwise a one-line ConfigError naming ``key``, so
    a command refuses before any work rather than failing at its first write."""
    p = Path(os.path.expanduser(str(path))).absolute()
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{key}={path}: is a file, not a folder; give a folder (it is created when missing)")
    existing = p
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{key}={path}: {existing} is a file, so no folder can be made under it; give a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        why = ("on a read-only file system" if os.statvfs(existing).f_flag & os.ST_RDONLY
               else "no write permission")
        raise ConfigError(f"{key}={path}: cannot write in {existing} ({why}); give a folder you can write in")
    return p


@contextmanager
def atomic_path(path: PathLike, suffix: str = ".tmp", size: Size = None) -> Iterator[Path]:
    """A fresh temporary file name beside ``path`` (created empty, unique, so concurrent writers
    never share it); on a clean exit it replaces ``path`` (``os.replace``), on an exception it is
    removed and ``path`` is left as it was. Creates the parent folder. ``suffix`` matters to
    writers that infer the format from the name (``.png``).

    A full disk or quota, at any step, is a :class:`NoSpaceError`; ``size`` (bytes, or a callable
    that measures them, called only then) lets its message say how much the write needs, else it
    says how much had been written."""
    path = Path(os.path.expanduser(str(path)))
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.stem}-", suffix=suffix)
        os.close(fd)
        _plain_mode(tmp)
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        written = 0
        if tmp is not None:
            try:
                written = os.path.getsize(tmp)
            except OSError:
                pass
            Path(tmp).unlink(missing_ok=True)  # before measuring what is free: the partial file is not kept
        if not isinstance(exc, NoSpaceError) and is_no_space(exc):
            try:
                needed = size() if callable(size) else size
            except Exception:  # noqa: BLE001 - only the message's estimate is lost
                needed = None
            raise no_space_error(exc, path, needed or written, at_least=not needed) from exc
        raise


@contextmanager
def atomic_file(path: PathLike, mode: str = "wb", fsync: bool = False, size: Size = None,
                **open_kwargs) -> Iterator[IO]:
    """:func:`atomic_path` with the temporary file opened (``mode``, ``open_kwargs`` as for
    ``open``). ``fsync`` flushes to disk before the rename (for caches other processes share)."""
    with atomic_path(path, size=size) as tmp, open(tmp, mode, **open_kwargs) as fh:
        yield fh
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


class _ByteCounter:
    """A write-only sink that counts what is written to it (the size of a save, without the disk)."""

    def __init__(self):
        self.n = 0

    def write(self, data) -> int:
        self.n += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def saved_size(obj) -> int:
    """The bytes ``torch.save(obj)`` writes."""
    import torch

    sink = _ByteCounter()
    torch.save(obj, sink)
    return sink.n


def atomic_torch_save(obj, path: PathLike) -> str:
    """``torch.save`` through :func:`atomic_file`; returns the path as a string. A file handle, not a
    name: torch's own writer would turn a full disk into a RuntimeError that hides the errno."""
    import torch

    with atomic_file(path, size=lambda: saved_size(obj)) as fh:
        torch.save(obj, fh)
    return str(path)
