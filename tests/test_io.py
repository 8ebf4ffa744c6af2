"""lsgan.io: an interrupted write leaves the old file whole and no temporary behind."""
from __future__ import annotations

import os

import pytest
import torch

from lsgan.io import atomic_file, atomic_torch_save


def test_atomic_file_replaces_on_success_and_keeps_old_on_error(tmp_path):
    path = tmp_path / "sub" / "f.txt"
    with atomic_file(path, "w") as fh:
        fh.write("old")
    assert path.read_text() == "old"
    with pytest.raises(RuntimeError):
        with atomic_file(path, "w") as fh:
            fh.write("half of the new")
            raise RuntimeError("crash mid-write")
    assert path.read_text() == "old" and os.listdir(path.parent) == ["f.txt"]
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == 0o666 & ~mask  # as a plain open() would create it


def test_atomic_torch_save_round_trips(tmp_path):
    path = atomic_torch_save({"w": torch.arange(3)}, tmp_path / "x.pt")
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(3))
