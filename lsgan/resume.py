"""What it takes to continue a run safely: a readable checkpoint, the same settings, one writer.

* :func:`read_checkpoint` loads a checkpoint or fails in one line naming the file and the fault;
  :func:`pick_resume` falls back from an unreadable ``last.ckpt`` to the newest readable
  ``iter_*.ckpt`` of the run and says so.
* :func:`changed_settings` compares the checkpoint's saved config with the new one: keys that
  change what was trained (nets, data, prior, extractor, losses, method hyper-parameters, seed)
  must match, or the resume stops in one line listing them (``force_resume=true`` overrides);
  keys of :data:`SAFE_TO_CHANGE` (budget, cadence, logging, metrics, devices) simply apply.
  Learning rates are method hyper-parameters: the restored optimizer state carries the old ones.
* :class:`RunDirLock` keeps a second process out of a run dir in use; a stale lock (its owner
  is dead) is taken over. Under it, :func:`remove_unfinished_writes` deletes the temporary files a
  killed checkpoint write left behind.
"""
from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from lsgan.errors import ConfigError
from lsgan.io import is_no_space, no_space_error

# Dotted-key prefixes whose change does not alter what the checkpoint's nets were trained as.
SAFE_TO_CHANGE = ("trainer.", "metrics.", "logger.", "run_dir", "resume", "force_resume", "data.root",
                  "data.num_workers", "data.download", "hydra", "callbacks", "optimized_metric")


def _fault(path: Path, exc: BaseException) -> str:
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as err:
        return " ".join(str(err).split())[:160]
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive
        return "not a torch checkpoint (not a zip archive)"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"truncated or corrupt ({text[:120]})"


# What Lightning's fit(ckpt_path=...) restores beside the weights; a weights-only file has none of it.
TRAINING_STATE = ("pytorch-lightning_version", "optimizer_states", "loops")


def read_checkpoint(path, key: str = "resume", training: bool = True) -> dict:
    """The checkpoint's contents, or ConfigError in one line: ``<key>=<path>: <what is wrong>``.
    ``training``: training continues from it, so it must hold the optimizers' and loops' state too."""
    import torch

    p = Path(str(path)).expanduser()
    if not p.is_file():
        raise ConfigError(f"{key}={path}: no such checkpoint file")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated zip, random bytes, a text file ...
        raise ConfigError(f"{key}={path}: unreadable: {_fault(p, exc)}") from None
    if not isinstance(blob, dict) or "state_dict" not in blob:
        raise ConfigError(f"{key}={path}: not an lsgan checkpoint (no state_dict)")
    missing = [k for k in TRAINING_STATE if k not in blob] if training else []
    if missing:
        raise ConfigError(f"{key}={path}: holds weights only (no {', '.join(missing)}), so training cannot continue "
                          f"from it; lsgan.sample and lsgan.evaluate read it, a new run_dir trains afresh")
    return blob


def _iteration_of(name: str) -> int:
    m = re.search(r"iter_(\d+)\.ckpt$", name)
    return int(m.group(1)) if m else -1


def pick_resume(ckpt_dir: Path, log=print) -> Optional[Tuple[Path, dict]]:
    """(checkpoint, its contents) to continue from in ``ckpt_dir``: last.ckpt, or when it is
    unreadable the newest readable iter_*.ckpt (said in one line); None for a fresh run dir."""
    last = ckpt_dir / "last.ckpt"
    candidates = ([last] if last.exists() else []) + sorted(ckpt_dir.glob("iter_*.ckpt"),
                                                             key=lambda p: _iteration_of(p.name), reverse=True)
    if not candidates:
        return None
    faults = []
    for cand in candidates:
        try:
            blob = read_checkpoint(cand)
        except ConfigError as exc:
            faults.append(str(exc))
            continue
        if faults:
            log(f"[lsgan] {faults[0]}; resuming from the newest readable checkpoint, {cand.name} "
                f"(iteration {int(blob.get('lsgan', {}).get('iteration', 0))})")
        return cand, blob
    raise ConfigError(f"run dir {ckpt_dir.parent}: no readable checkpoint ({faults[0]}); "
                      f"move checkpoints/ away to start fresh")


def _flatten(node, prefix: str = "") -> Dict[str, object]:
    out: Dict[str, object] = {}
    if isinstance(node, dict):
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        if not node and prefix:
            out[prefix[:-1]] = {}
        return out
    out[prefix[:-1]] = node
    return out


def changed_settings(saved: dict, new: dict) -> List[str]:
    """``key: old -> new`` for every setting that differs and alters what was trained. Keys only
    one side has are skipped (an option added since keeps the behaviour it was trained with)."""
    a, b = _flatten(saved), _flatten(new)
    out = []
    for key in sorted(set(a) & set(b)):
        if key.startswith(SAFE_TO_CHANGE):
            continue
        if a[key] != b[key]:
            out.append(f"{key}: {a[key]!r} -> {b[key]!r}")
    return out


def settings_changed(blob: dict, new_cfg, ckpt: Path) -> List[str]:
    """The settings of ``new_cfg`` that differ from the checkpoint's and alter what was trained."""
    from omegaconf import OmegaConf

    from lsgan.upgrade import upgrade_saved_config

    saved = (blob.get("hyper_parameters") or {}).get("cfg")
    if saved is None:
        raise ConfigError(f"resume={ckpt}: not an lsgan checkpoint (no saved config)")
    saved = upgrade_saved_config(saved)  # a run started before loss= / method.adv_loss were split compares in today's spelling
    return changed_settings(saved, OmegaConf.to_container(new_cfg, resolve=True))


def data_changed(blob: dict, info) -> List[str]:
    """``the data's ...: old -> new`` where the data read now differs in image shape, class count or content (its
    fingerprint) from the data the checkpoint was trained on (a data file replaced between a run and its resume;
    same settings)."""
    saved = (blob.get("hyper_parameters") or {}).get("data_info") or {}
    out = []
    if "shape" in saved and tuple(saved["shape"]) != tuple(info.shape):
        out.append(f"the data's shape: {tuple(saved['shape'])} -> {tuple(info.shape)}")
    if "num_classes" in saved and int(saved["num_classes"]) != int(info.num_classes):
        out.append(f"the data's classes: {saved['num_classes']} -> {info.num_classes}")
    if not out and saved.get("fingerprint") and info.fingerprint and saved["fingerprint"] != info.fingerprint:
        out.append(f"the training examples (same shape, other content: fingerprint {saved['fingerprint']} -> "
                   f"{info.fingerprint}; was the data file replaced?)")
    return out


def state_misfit(module, state_dict: dict) -> Optional[str]:
    """None when ``state_dict`` loads into ``module`` (its own load hooks included), else which tensors do
    not fit, briefly. ``module`` is left holding the checkpoint's weights when they fit."""
    try:
        module.load_state_dict(state_dict, strict=True)
        return None
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()]
        shown = []
        for ln in lines:
            m = re.match(r"size mismatch for (\S+): copying a param with shape torch.Size\((\[[^]]*\])\) from "
                         r"checkpoint, the shape in current model is torch.Size\((\[[^]]*\])\)", ln)
            shown.append(f"{m.group(1)} {m.group(2)} in the checkpoint, {m.group(3)} here" if m else ln[:120])
        return "; ".join(shown[:3]) + (f"; and {len(shown) - 3} more" if len(shown) > 3 else "")


def check_compatible(changed: List[str], misfit: Optional[str], ckpt: Path, force: bool) -> None:
    """Refuse a resume in one line: settings that changed what is trained (unless ``force``), or nets whose
    tensors do not fit the checkpoint's (even with ``force``: it carries over only shape-keeping settings)."""
    if changed and not force:
        shown = "; ".join(changed[:6]) + (f"; and {len(changed) - 6} more" if len(changed) > 6 else "")
        fix = ("use a new run_dir to start fresh, or force_resume=true to continue with the checkpoint's nets and "
               "optimizer" if misfit is None else
               "the nets' shapes differ too, so use a new run_dir to start fresh")
        raise ConfigError(f"resume={ckpt}: these settings differ from the run's ({shown}); {fix}")
    if misfit is not None:
        raise ConfigError(f"resume={ckpt}: the checkpoint's nets do not fit this config ({misfit}); force_resume "
                          f"only carries over settings that keep the networks' shapes: use a new run_dir")


class RunDirLock:
    """``<run_dir>/.lock`` holding ``pid host time`` while a process trains there.

    Only the launching process takes it (DDP ranks > 0 and re-launched workers share their
    rank 0's). A second process stops in one line; a lock whose owner is gone (same host,
    pid not alive) is taken over."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self.held = False

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def acquire(self) -> "RunDirLock":
        host, me = socket.gethostname(), os.getpid()
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid_s, owner_host, *_ = self.path.read_text().split()
                    pid = int(pid_s)
                except (OSError, ValueError):
                    pid, owner_host = -1, host  # unreadable: treat as stale
                if owner_host == host and (pid == me or not self._alive(pid)):
                    self.path.unlink(missing_ok=True)  # stale: its owner is gone
                    continue
                raise ConfigError(f"run_dir={self.path.parent} is in use by process {pid} on {owner_host} "
                                  f"(lock {self.path}); wait for it to finish, or use another run_dir") from None
            try:
                with os.fdopen(fd, "w") as fh:
                    fh.write(f"{me} {host} {int(time.time())}\n")
            except OSError as exc:  # a full disk: no half-written lock left to look stale or alive
                self.path.unlink(missing_ok=True)
                if is_no_space(exc):
                    raise no_space_error(exc, self.path) from exc
                raise
            self.held = True
            return self
        raise ConfigError(f"run_dir={self.path.parent}: could not take the lock {self.path}")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# What an interrupted checkpoint write leaves in checkpoints/: lsgan.io's temporary files (".last-k2x9.tmp";
# ".best-k2x9.ckpt" from older versions) and the "last.ckpt.<pid>.tmp" files of older versions.
UNFINISHED_WRITES = (".*.tmp", ".*.ckpt", "*.ckpt.*.tmp")


def remove_unfinished_writes(ckpt_dir: Path) -> List[Path]:
    """Delete what killed checkpoint writes left in ``ckpt_dir`` (a process killed mid-write cannot clean
    up; its partial file would hold disk space forever). Call it holding the run dir's lock: no other
    process writes there then. Says what it freed; returns the files removed."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = sorted({p for pattern in UNFINISHED_WRITES for p in ckpt_dir.glob(pattern) if p.is_file()})
    removed, freed = [], 0
    for p in found:
        try:
            size = p.stat().st_size
            p.unlink()
        except OSError:
            continue
        removed.append(p)
        freed += size
    if removed:
        print(f"[lsgan] removed {len(removed)} unfinished checkpoint file(s) of an interrupted write "
              f"({freed / 1e6:.1f} MB) from {ckpt_dir}: {', '.join(p.name for p in removed)}", flush=True)
    return removed


def is_launching_process() -> bool:
    """True in the process a user started (not a DDP worker Lightning re-launched)."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"
