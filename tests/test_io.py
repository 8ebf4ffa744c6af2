"""lsgan.io: an interrupted write leaves the old file whole and no temporary behind."""
from __future__ import annotations

import errno
import os

import pytest
import torch

from lsgan.errors import NoSpaceError
from lsgan.io import atomic_file, atomic_path, atomic_torch_save


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


def _fail_writes_to_files(monkeypatch, written: int = 1000):
    """torch.save that writes ``written`` bytes to a real file and then finds the disk full (counting sinks,
    which measure a save's size, still work)."""
    real = torch.save

    def save(obj, f, *args, **kwargs):
        if hasattr(f, "fileno"):
            f.write(b"x" * written)
            f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_a_full_disk_is_one_line_naming_the_file_the_size_and_the_free_space(tmp_path, monkeypatch):
    path = tmp_path / "x.pt"
    atomic_torch_save({"w": torch.zeros(1000)}, path)
    before = path.read_bytes()
    _fail_writes_to_files(monkeypatch)
    with pytest.raises(NoSpaceError) as err:
        atomic_torch_save({"w": torch.zeros(250_000)}, path)  # ~1.0 MB
    msg = str(err.value)
    assert msg.startswith(f"no space left on device writing {path} (needs ~1.0 MB, ") and msg.endswith(" MB free)")
    assert "\n" not in msg and err.value.errno == errno.ENOSPC
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["x.pt"]  # no temporary left


@pytest.mark.parametrize("where", ["write", "rename"])
def test_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, where):
    path = tmp_path / "config.yaml"
    with atomic_file(path, "w") as fh:
        fh.write("old")
    if where == "rename":
        def replace(src, dst):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(NoSpaceError) as err:
        with atomic_file(path, "w") as fh:
            fh.write("new " * 100)
            if where == "write":
                fh.flush()
                raise OSError(errno.ENOSPC, "No space left on device")
    # the size is what had been written when the disk filled: a lower bound
    assert str(err.value).startswith(f"no space left on device writing {path} (needs more than 0.4 kB, ")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["config.yaml"]


def test_a_full_quota_does_not_report_the_disks_free_space(tmp_path):
    with pytest.raises(NoSpaceError) as err:
        with atomic_path(tmp_path / "f.bin", size=3_000_000):
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
    assert str(err.value) == f"disk quota exceeded writing {tmp_path / 'f.bin'} (needs ~3.0 MB)"
    assert err.value.errno == errno.EDQUOT and os.listdir(tmp_path) == []


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(PermissionError):
        with atomic_path(tmp_path / "f.bin"):
            raise PermissionError(errno.EACCES, "Permission denied")
    assert os.listdir(tmp_path) == []
