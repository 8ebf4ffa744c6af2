"""On-disk feature cache: one memory-mapped ``.npy`` per (data, split, extractor) plus a JSON sidecar.

The key records everything the features depend on: dataset name, split, the transform
(size, channels, classes, class_ratio, max_train, path, attr), a fingerprint of the split's
image bytes (so a different subset, seed or source file can never hit), the extractor's name,
layer, input size, pooling and a sha256 of its weights. The file name carries a hash of the key;
the sidecar carries the key itself, the array shape and a CRC-32 of the file.

Writes are atomic: the array is filled in a temporary file in the cache folder, fsynced and
``os.replace``d into place, then the sidecar is written the same way (the old sidecar is removed
first, so a crash between the two leaves a miss, never a mismatched pair). A per-entry lock
file keeps two processes of a sweep from building the same entry at once. A stale entry (key,
shape or dtype mismatch) or a corrupt one (unreadable, wrong size, checksum mismatch) is
reported with its reason and rebuilt, never used.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from lsgan.data.datasets import target_size
from lsgan.features.extractors import extract_split_features, weights_digest
from lsgan.io import atomic_file, atomic_path, cache_root

CACHE_VERSION = 1
_CHUNK = 1 << 24  # bytes read at a time when checksumming


def default_cache_dir(ext_cfg=None) -> Path:
    """``extractor.cache_dir`` if set, else ``<cache root>/features`` (``lsgan.io.cache_root``: ``$LSGAN_CACHE``,
    else ``~/.cache/lsgan``)."""
    if ext_cfg is not None and ext_cfg.cache_dir:
        return Path(str(ext_cfg.cache_dir)).expanduser().absolute()
    return cache_root().absolute() / "features"


@dataclass
class CacheInfo:
    path: Path
    hit: bool
    reason: str      # "hit", "missing", or why an existing entry was rejected (stale / corrupt: ...)
    shape: Tuple[int, ...]
    seconds: float   # time to load (hit) or build (miss)


# --------------------------------------------------------------------------- keys
def data_fingerprint(data: torch.Tensor) -> str:
    """blake2b of a split's stored examples (uint8 images: ~0.2 s for 60k × 32 × 32)."""
    t = data.detach().cpu().contiguous()
    h = hashlib.blake2b(f"{t.dtype}|{tuple(t.shape)}|".encode(), digest_size=16)
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def feature_key(data_cfg, split: str, extractor, dataset) -> Dict[str, object]:
    """Everything ``extractor``'s raw features of ``dataset`` (split ``split`` of ``data_cfg``) depend on."""
    train = split == data_cfg.train_split
    listify = lambda v: None if v is None else [float(x) if isinstance(x, float) else x for x in v]  # noqa: E731
    desc = extractor.description
    return {
        "version": CACHE_VERSION,
        "dataset": str(data_cfg.name),
        "split": str(split),
        "transform": {
            "size": int(target_size(data_cfg)),
            "channels": None if data_cfg.channels is None else int(data_cfg.channels),
            "classes": listify(data_cfg.classes),
            "class_ratio": listify(data_cfg.class_ratio),
            "max_train": int(data_cfg.max_train) if train and data_cfg.max_train else None,
            "path": None if data_cfg.get("path") is None else str(data_cfg.path),
            "attr": None if data_cfg.get("attr") is None else str(data_cfg.attr),
        },
        "data": {"n": int(len(dataset)), "shape": list(dataset.data.shape[1:]),
                 "blake2b": data_fingerprint(dataset.data)},
        "extractor": {
            "name": str(desc["name"]),
            "layer": str(desc["layer"]),
            "input_size": int(extractor.input_size),
            "pool": extractor.pool,
            "seed": desc.get("seed"),
            "weights_sha256": weights_digest(extractor.trunk),
        },
    }


def key_hash(key: Dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def file_crc32(path: Path) -> str:
    crc = 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                break
            crc = zlib.crc32(chunk, crc)
    return f"{crc & 0xFFFFFFFF:08x}"


# --------------------------------------------------------------------------- cache
class FeatureCache:
    """Keyed float32 arrays under ``root``; ``get_or_build`` is the one entry point that matters."""

    def __init__(self, root=None, verbose: bool = True):
        self.root = Path(root).expanduser().absolute() if root is not None else default_cache_dir()
        self.verbose = verbose

    def paths(self, key: Dict[str, object], stem: str) -> Tuple[Path, Path]:
        base = self.root / f"{stem}-{key_hash(key)}"
        return base.with_name(base.name + ".npy"), base.with_name(base.name + ".json")

    # ----------------------------------------------------------------- read
    def load(self, key: Dict[str, object], stem: str, shape: Sequence[int]) -> Tuple[Optional[torch.Tensor], str]:
        """(tensor, "hit") for a valid entry, else (None, why it is not usable)."""
        npy, side = self.paths(key, stem)
        shape = tuple(int(s) for s in shape)
        if not side.exists() or not npy.exists():
            return None, "missing"
        try:
            meta = json.loads(side.read_text())
        except (OSError, ValueError) as exc:
            return None, f"corrupt: sidecar unreadable ({type(exc).__name__})"
        if meta.get("key") != key:
            return None, "stale: key mismatch"
        if tuple(meta.get("shape", ())) != shape or meta.get("dtype") != "float32":
            return None, f"stale: sidecar shape {meta.get('shape')} / dtype {meta.get('dtype')}, expected {list(shape)} float32"
        if npy.stat().st_size != meta.get("file_bytes"):
            return None, f"corrupt: file is {npy.stat().st_size} bytes, sidecar says {meta.get('file_bytes')}"
        if file_crc32(npy) != meta.get("crc32"):
            return None, "corrupt: checksum mismatch"
        try:
            # copy-on-write mapping: a writable view (torch warns on read-only ones), pages read lazily
            arr = np.load(npy, mmap_mode="c", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            return None, f"corrupt: unreadable .npy ({type(exc).__name__})"
        if arr.shape != shape or arr.dtype != np.float32:
            return None, f"corrupt: array {arr.shape} {arr.dtype}, expected {shape} float32"
        return torch.from_numpy(arr), "hit"

    # ----------------------------------------------------------------- write
    def build(self, key: Dict[str, object], stem: str, shape: Sequence[int],
              fill: Callable[[np.ndarray], None]) -> torch.Tensor:
        """Fill a new entry with ``fill(array)`` (a writable N×d float32 memmap) and publish it atomically."""
        npy, side = self.paths(key, stem)
        self.root.mkdir(parents=True, exist_ok=True)
        side.unlink(missing_ok=True)  # invalidate first: a crash below leaves a miss, never a wrong pair
        with atomic_path(npy, suffix=".npy.tmp") as tmp:  # a memmap needs a file name, not a handle
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=tuple(int(s) for s in shape))
            fill(arr)
            arr.flush()
            del arr
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            meta = {"key": key, "key_hash": key_hash(key), "shape": [int(s) for s in shape], "dtype": "float32",
                    "file_bytes": os.path.getsize(tmp), "crc32": file_crc32(tmp),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with atomic_file(side, "w", fsync=True) as fh:
            fh.write(json.dumps(meta, indent=1, sort_keys=True))
        out, reason = self.load(key, stem, shape)
        if out is None:  # the file we just wrote must verify; anything else is a disk problem
            raise OSError(f"feature cache {npy}: freshly written entry does not verify ({reason})")
        return out

    def get_or_build(self, key: Dict[str, object], stem: str, shape: Sequence[int],
                     fill: Callable[[np.ndarray], None]) -> Tuple[torch.Tensor, CacheInfo]:
        npy, _ = self.paths(key, stem)
        t0 = time.perf_counter()
        out, reason = self.load(key, stem, shape)
        if out is not None:
            return out, CacheInfo(npy, True, reason, tuple(out.shape), time.perf_counter() - t0)
        self.root.mkdir(parents=True, exist_ok=True)
        with _locked(npy.with_name(npy.name + ".lock")):
            out, again = self.load(key, stem, shape)  # another process may have built it while we waited
            if out is not None:
                return out, CacheInfo(npy, True, again, tuple(out.shape), time.perf_counter() - t0)
            if reason != "missing":
                self._say(f"cache entry {npy.name} rejected ({reason}); rebuilding")
            out = self.build(key, stem, shape, fill)
        return out, CacheInfo(npy, False, reason, tuple(out.shape), time.perf_counter() - t0)

    # ----------------------------------------------------------------- features
    def features(self, data_cfg, split: str, dataset, extractor, batch_size: int = 256,
                 device=None) -> Tuple[torch.Tensor, CacheInfo]:
        """Raw (unprojected) N×d features of ``dataset`` under ``extractor``: cached, or extracted and cached."""
        key = feature_key(data_cfg, split, extractor, dataset)
        desc = extractor.description
        stem = f"{data_cfg.name}-{split}-{desc['name']}-{desc['layer']}"
        shape = (len(dataset), extractor.raw_dim)
        fill = lambda arr: extract_split_features(extractor, dataset, batch_size, device, out=arr,  # noqa: E731
                                                  label=f"{data_cfg.name}/{split}", verbose=self.verbose)
        return self.get_or_build(key, stem, shape, fill)

    def _say(self, msg: str) -> None:
        if self.verbose:
            print(f"[lsgan.features] {msg}", flush=True)


# --------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _locked(path: Path):
    """Exclusive advisory lock (POSIX flock); a no-op where fcntl is unavailable."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
