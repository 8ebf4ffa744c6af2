"""Data layer: loaders, subsetting, the resumable sampler and the Lightning data module."""
from __future__ import annotations

import math
from collections import Counter
from itertools import islice
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from lsgan.config import ConfigError, DataConfig
from lsgan.data import Batch, GANDataModule, ResumableBatchSampler, load_dataset
from lsgan.data import datasets as ds_mod

REPO = Path(__file__).resolve().parents[1]
SHARED = next((p for p in (REPO.parent / "shared" / "data", Path("/work/shared/data")) if p.is_dir()), None)


def shared(name: str) -> Path:
    if SHARED is None or not (SHARED / name).exists():
        pytest.skip(f"shared data {name} not available")
    return SHARED


def rows(data: torch.Tensor) -> Counter:
    return Counter(bytes(r) for r in data.reshape(len(data), -1).numpy())


# --------------------------------------------------------------------------- digits / basics
def test_digits_shapes_range_and_disjoint_split():
    from sklearn.datasets import load_digits

    train, test = load_dataset(DataConfig(name="digits"), "train"), load_dataset(DataConfig(name="digits"), "test")
    assert train.data.shape == (1438, 1, 32, 32) and test.data.shape == (359, 1, 32, 32)
    assert train.data.dtype == torch.uint8 and train.is_image
    assert train.num_classes == 10 and train.class_names == [str(i) for i in range(10)]
    x = train.images()
    assert x.dtype == torch.float32 and x.min() == -1.0 and x.max() == 1.0
    # the digits set has no duplicate images, so a shared row would mean an overlapping split
    assert not set(rows(train.data)) & set(rows(test.data))
    counts = torch.bincount(train.labels, minlength=10) + torch.bincount(test.labels, minlength=10)
    assert counts.tolist() == np.bincount(load_digits().target).tolist()
    assert torch.equal(train.labels, train.clean_labels)


def test_getitems_returns_whole_batch_as_float_in_unit_range():
    d = load_dataset(DataConfig(name="digits"), "train")
    b = d.__getitems__([5, 0, 7])
    assert isinstance(b, Batch) and b.feat is None
    assert b.index.tolist() == [5, 0, 7]
    assert torch.equal(b.x, d.data[[5, 0, 7]].float() / 127.5 - 1)
    assert torch.equal(b.y, d.labels[[5, 0, 7]])
    one = d[3]
    assert isinstance(one, Batch) and one.x.shape == (1, 1, 32, 32)


def test_channels_repeat_gray_and_luminance_from_rgb(tmp_path):
    d = load_dataset(DataConfig(name="digits", channels=3), "test")
    assert d.data.shape[1] == 3 and torch.equal(d.data[:, 0], d.data[:, 2])
    red = np.zeros((4, 8, 8, 3), np.uint8)
    red[..., 0] = 255
    np.savez(tmp_path / "red.npz", x_train=red, x_test=red)
    gray = load_dataset(DataConfig(name="npz", path=str(tmp_path / "red.npz"), size=8, channels=1), "train")
    assert gray.data.shape == (4, 1, 8, 8) and (gray.data == 76).all()  # 0.299 · 255 = 76.2
    with pytest.raises(ConfigError, match="data.channels"):
        load_dataset(DataConfig(name="digits", channels=2), "test")


# --------------------------------------------------------------------------- subsetting / noise
def test_class_subset_keeps_and_relabels():
    base = load_dataset(DataConfig(name="digits"), "train")
    sub = load_dataset(DataConfig(name="digits", classes=[5, 3]), "train")
    mask = (base.labels == 5) | (base.labels == 3)
    assert torch.equal(sub.data, base.data[mask])
    assert torch.equal(sub.labels, (base.labels[mask] == 3).long())  # 5 -> 0, 3 -> 1
    assert sub.class_names == ["5", "3"] and sub.num_classes == 2
    test = load_dataset(DataConfig(name="digits", classes=[5, 3]), "test")
    assert set(test.labels.tolist()) == {0, 1}
    with pytest.raises(ConfigError, match="data.classes"):
        load_dataset(DataConfig(name="digits", classes=[3, 10]), "train")


def test_class_ratio_keeps_as_many_as_possible():
    base = load_dataset(DataConfig(name="digits"), "train")
    n3, n5 = int((base.labels == 3).sum()), int((base.labels == 5).sum())
    d = load_dataset(DataConfig(name="digits", classes=[3, 5], class_ratio=[0.3, 0.7]), "train")
    # class 5 at 70% is the bottleneck: all of it is kept, class 3 gets 3/7 of that
    assert torch.bincount(d.labels).tolist() == [math.floor(n5 * 3 / 7), n5]
    assert n3 >= math.floor(n5 * 3 / 7)
    assert Counter(rows(d.data)) <= rows(base.data)  # a subset of the real examples
    assert ds_mod.class_quota([100, 50], [0.5, 0.5]) == [50, 50]
    assert ds_mod.class_quota([100, 50], [0.5, 0.5], cap=30) == [15, 15]
    assert ds_mod.class_quota([10, 1000], [0.9, 0.1]) == [10, 1]


def test_label_noise_flips_exact_count_and_keeps_clean_labels():
    clean = load_dataset(DataConfig(name="digits"), "train")
    d = load_dataset(DataConfig(name="digits", label_noise=0.2), "train", seed=4)
    flipped = d.labels != d.clean_labels
    assert int(flipped.sum()) == round(0.2 * len(d))
    assert torch.equal(d.clean_labels, clean.labels) and torch.equal(d.data, clean.data)
    assert d.labels.min() >= 0 and d.labels.max() < 10
    again = load_dataset(DataConfig(name="digits", label_noise=0.2), "train", seed=4)
    other = load_dataset(DataConfig(name="digits", label_noise=0.2), "train", seed=5)
    assert torch.equal(again.labels, d.labels) and not torch.equal(other.labels, d.labels)
    ev = load_dataset(DataConfig(name="digits", label_noise=0.2), "test", seed=4)
    assert torch.equal(ev.labels, ev.clean_labels)  # evaluation split is never corrupted


def test_subset_ratio_cap_and_noise_combined():
    cfg = DataConfig(name="digits", classes=[3, 5], class_ratio=[0.5, 0.5], max_train=100, label_noise=0.1)
    d = load_dataset(cfg, "train", seed=1)
    assert torch.bincount(d.clean_labels).tolist() == [50, 50]
    assert int((d.labels != d.clean_labels).sum()) == 10
    assert torch.equal(d.labels[d.labels != d.clean_labels], 1 - d.clean_labels[d.labels != d.clean_labels])


def test_max_train_caps_randomly_but_reproducibly():
    base = load_dataset(DataConfig(name="digits"), "train")
    a = load_dataset(DataConfig(name="digits", max_train=100), "train", seed=0)
    b = load_dataset(DataConfig(name="digits", max_train=100), "train", seed=0)
    c = load_dataset(DataConfig(name="digits", max_train=100), "train", seed=1)
    assert len(a) == 100 and torch.equal(a.data, b.data) and not torch.equal(a.data, c.data)
    assert Counter(rows(a.data)) <= rows(base.data)
    assert len(load_dataset(DataConfig(name="digits", max_train=100), "test")) == 359  # eval not capped


# --------------------------------------------------------------------------- 2-D toys
def test_ring8_modes():
    before = torch.get_rng_state()
    d = load_dataset(DataConfig(name="ring8", n_points=4000, std=0.02), "train", seed=2)
    assert torch.equal(before, torch.get_rng_state())
    assert d.data.shape == (4000, 2) and not d.is_image and d.num_classes == 8
    angle = torch.arange(8) * (2 * math.pi / 8)
    centers = 2 * torch.stack([angle.cos(), angle.sin()], 1)
    assert torch.equal(torch.cdist(d.data, centers).argmin(1), d.labels)
    resid = d.data - centers[d.labels]
    assert abs(resid.std().item() - 0.02) < 0.001
    assert torch.bincount(d.labels).min() > 400  # all 8 modes populated, about 500 each
    same = load_dataset(DataConfig(name="ring8", n_points=4000, std=0.02), "train", seed=2)
    test = load_dataset(DataConfig(name="ring8", n_points=4000, std=0.02), "test", seed=2)
    assert torch.equal(same.data, d.data) and not torch.equal(test.data, d.data)


def test_grid25_modes():
    d = load_dataset(DataConfig(name="grid25", n_points=5000, std=0.05), "train")
    centers = torch.tensor([[-4.0 + 2 * r, -4.0 + 2 * c] for r in range(5) for c in range(5)])
    assert torch.equal(torch.cdist(d.data, centers).argmin(1), d.labels)
    assert abs((d.data - centers[d.labels]).std().item() - 0.05) < 0.0025
    assert torch.bincount(d.labels, minlength=25).min() > 130


def test_crescents_geometry():
    d = load_dataset(DataConfig(name="crescents", n_points=2000, std=0.05), "train")
    assert torch.bincount(d.labels).tolist() == [1000, 1000]
    # upper crescent: unit half-circle around (0, 0); lower: unit half-circle around (1, 0.5)
    r0 = d.data[d.labels == 0].norm(dim=1)
    r1 = (d.data[d.labels == 1] - torch.tensor([1.0, 0.5])).norm(dim=1)
    assert (r0 - 1).abs().max() < 0.3 and (r1 - 1).abs().max() < 0.3
    assert abs((r0 - 1).std().item() - 0.05) < 0.01


# --------------------------------------------------------------------------- files
def _fake_mnist(folder: Path, n: int = 40) -> None:
    """Constant images whose pixel value identifies them: value 10 + 5·i, digit i % 10."""
    x = (10 + 5 * np.arange(n, dtype=np.uint8))[:, None, None] * np.ones((1, 28, 28), np.uint8)
    y = np.arange(n) % 10
    np.savez(folder / "mnist.npz", x_train=x, y_train=y, x_test=x[:20], y_test=y[:20])


def test_stacked_mnist_label_composition(tmp_path):
    _fake_mnist(tmp_path)
    cfg = DataConfig(name="stacked_mnist", root=str(tmp_path), n_points=300)
    d = load_dataset(cfg, "train", seed=0)
    assert d.data.shape == (300, 3, 32, 32) and d.num_classes == 1000
    assert (d.data == d.data[:, :, :1, :1]).all()  # each channel is one whole (constant) digit
    digit = ((d.data[:, :, 0, 0].long() - 10) // 5) % 10
    assert torch.equal(d.labels, 100 * digit[:, 0] + 10 * digit[:, 1] + digit[:, 2])
    assert len(d.labels.unique()) > 200  # draws cover many of the 1000 combinations
    assert torch.equal(load_dataset(cfg, "train", seed=0).data, d.data)
    assert not torch.equal(load_dataset(cfg, "train", seed=1).data, d.data)


def test_npz_single_array_is_split_and_resized(tmp_path):
    x = np.arange(50, dtype=np.uint8)[:, None, None] * np.ones((1, 16, 16), np.uint8)
    np.savez(tmp_path / "own.npz", x=x, y=np.arange(50) % 5)
    cfg = DataConfig(name="npz", path=str(tmp_path / "own.npz"), size=32)
    train, test = load_dataset(cfg, "train"), load_dataset(cfg, "test")
    assert train.data.shape == (45, 1, 32, 32) and len(test) == 5
    ids = sorted(train.data[:, 0, 0, 0].tolist() + test.data[:, 0, 0, 0].tolist())
    assert ids == list(range(50))  # disjoint and complete
    assert torch.equal(train.labels, train.data[:, 0, 0, 0].long() % 5)
    assert train.class_names == ["0", "1", "2", "3", "4"]


def test_npz_train_test_arrays_hwc_are_center_cropped(tmp_path):
    x = np.full((6, 24, 30, 3), 255, np.uint8)
    x[:, :, 3:27] = np.arange(6, dtype=np.uint8)[:, None, None, None]  # border columns are cropped away
    np.savez(tmp_path / "c.npz", x_train=x, y_train=np.array([0, 1] * 3), x_test=x[:2], y_test=np.array([0, 1]),
             classes=np.array(["cat", "dog"]))
    d = load_dataset(DataConfig(name="npz", path=str(tmp_path / "c.npz"), size=24), "train")
    assert d.data.shape == (6, 3, 24, 24)
    assert torch.equal(d.data, torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 3, 24, 24))
    assert d.class_names == ["cat", "dog"]


def test_unlabelled_npz_rejects_class_options(tmp_path):
    np.savez(tmp_path / "u.npz", x=np.zeros((20, 8, 8), np.uint8))
    d = load_dataset(DataConfig(name="npz", path=str(tmp_path / "u.npz"), size=8), "train")
    assert d.labels is None and d.num_classes == 0 and d.__getitems__([0, 1]).y is None
    with pytest.raises(ConfigError, match="no labels"):
        load_dataset(DataConfig(name="npz", path=str(tmp_path / "u.npz"), size=8, classes=[0]), "train")


def _write_idx(path: Path, a: np.ndarray) -> None:
    """The MNIST "idx" format torchvision reads: big-endian magic (uint8 type, ndim), dims, data."""
    header = np.array([0x0800 + a.ndim, *a.shape], dtype=">i4").tobytes()
    path.write_bytes(header + a.astype(np.uint8).tobytes())


def test_torchvision_files_are_read_when_no_npz(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    x = np.arange(6, dtype=np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8)
    for prefix, n in (("train", 6), ("t10k", 2)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", x[:n])
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    d = load_dataset(DataConfig(name="fashion_mnist", root=str(tmp_path)), "train")
    assert d.data.shape == (6, 1, 32, 32) and torch.equal(d.data[:, 0, 5, 5], torch.arange(6, dtype=torch.uint8))
    assert d.labels.tolist() == list(range(6)) and d.class_names[9] == "Ankle boot"
    assert len(load_dataset(DataConfig(name="fashion_mnist", root=str(tmp_path)), "test")) == 2


def test_cifar100_coarse_labels_from_npz_and_torchvision_files(tmp_path, monkeypatch):
    import pickle

    import torchvision.datasets as tvd

    x = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((1, 32, 32, 3), np.uint8)
    fine, coarse = np.array([0, 99, 5, 7, 3]), np.array([4, 19, 17, 3, 2])
    npz_root = tmp_path / "npz"
    npz_root.mkdir()
    np.savez(npz_root / "cifar100.npz", x_train=x, y_train=fine, x_test=x[:2], y_test=fine[:2],
             y_train_coarse=coarse, y_test_coarse=coarse[:2])
    d = load_dataset(DataConfig(name="cifar100_coarse", root=str(npz_root)), "train")
    assert d.labels.tolist() == coarse.tolist() and d.num_classes == 20 and d.class_names[19] == "vehicles_2"
    assert torch.equal(d.data[:, 0, 0, 0], torch.arange(5, dtype=torch.uint8))
    assert load_dataset(DataConfig(name="cifar100", root=str(npz_root)), "train").labels.tolist() == fine.tolist()
    np.savez(npz_root / "cifar100.npz", x_train=x, y_train=fine, x_test=x[:2], y_test=fine[:2])
    with pytest.raises(ConfigError, match="no 'y_train_coarse' array"):
        load_dataset(DataConfig(name="cifar100_coarse", root=str(npz_root)), "train")

    # torchvision's layout: images through tvd.CIFAR100, superclass ids from its pickle
    class FakeCIFAR100:  # the real class checks the files' md5, which synthetic files cannot pass
        def __init__(self, root, train, download):
            self.data, self.targets, self.classes = x, fine.tolist(), [str(i) for i in range(100)]

    monkeypatch.setattr(tvd, "CIFAR100", FakeCIFAR100)
    folder = tmp_path / "tv" / "cifar-100-python"
    folder.mkdir(parents=True)
    with open(folder / "train", "wb") as fh:
        pickle.dump({"fine_labels": fine.tolist(), "coarse_labels": coarse.tolist()}, fh)
    d = load_dataset(DataConfig(name="cifar100_coarse", root=str(tmp_path / "tv")), "train")
    assert d.labels.tolist() == coarse.tolist() and d.class_names[0] == "aquatic_mammals"


def test_missing_dataset_is_one_clear_line(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_dataset(DataConfig(name="mnist", root=str(tmp_path)), "train")
    msg = str(err.value)
    assert str(tmp_path / "mnist.npz") in msg and "data.root=" in msg and "data.download=true" in msg
    assert "\n" not in msg
    with pytest.raises(ConfigError, match="stacked_mnist.*mnist.npz"):
        load_dataset(DataConfig(name="stacked_mnist", root=str(tmp_path)), "train")
    with pytest.raises(ConfigError, match=f"{tmp_path}/img_align_celeba"):
        load_dataset(DataConfig(name="celeba64", root=str(tmp_path)), "train")
    with pytest.raises(ConfigError, match="data.path"):
        load_dataset(DataConfig(name="npz", path=str(tmp_path / "nope.npz")), "train")
    with pytest.raises(ConfigError, match="data.path"):
        load_dataset(DataConfig(name="image_folder"), "train")
    with pytest.raises(ConfigError, match="accepted values"):
        load_dataset(DataConfig(name="digits"), "validation")


# --------------------------------------------------------------------------- image folders / CelebA
def _face(i: int) -> Image.Image:
    """A 178×218 'face' whose centre square is colour (0, 10·i, 200) and whose 20-row top and
    bottom bands are red, so a correct crop shows no red at all."""
    a = np.zeros((218, 178, 3), np.uint8)
    a[:, :] = (0, 10 * i, 200)
    a[:20] = a[198:] = (255, 0, 0)
    return Image.fromarray(a)


def _celeba_folder(root: Path, n: int = 10) -> Path:
    img = root / "celeba" / "img_align_celeba"
    img.mkdir(parents=True)
    for i in range(n):
        _face(i).save(img / f"{i + 1:06d}.png")  # lossless, so the expected colours are exact
    return root / "celeba"


def test_celeba_crop_cache_and_rebuild(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("LSGAN_CACHE", str(cache))
    _celeba_folder(tmp_path, n=10)
    cfg = DataConfig(name="celeba32", root=str(tmp_path), size=999)  # size comes from the name
    train = load_dataset(cfg, "train")
    test = load_dataset(cfg, "test")
    assert train.data.shape == (9, 3, 32, 32) and test.data.shape == (1, 3, 32, 32) and train.labels is None
    both = torch.cat([train.data, test.data])
    assert (both[:, 0] == 0).all() and (both[:, 2] == 200).all()  # no red band survived the crop
    assert sorted(both[:, 1, 0, 0].tolist()) == [10 * i for i in range(10)]
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temporary left behind

    def no_decoding(*a):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(ds_mod, "_decode_one", no_decoding)
    assert torch.equal(load_dataset(cfg, "train").data, train.data)
    files[0].write_bytes(b"not an array")
    monkeypatch.undo()
    monkeypatch.setenv("LSGAN_CACHE", str(cache))
    assert torch.equal(load_dataset(cfg, "train").data, train.data)  # unreadable cache rebuilt
    with np.load(files[0]) as z:
        assert z["images"].shape == (10, 3, 32, 32) and z["kept"].tolist() == list(range(10))


def test_celeba_attributes_and_partition(tmp_path, monkeypatch):
    monkeypatch.setenv("LSGAN_CACHE", str(tmp_path / "cache"))
    base = _celeba_folder(tmp_path, n=8)
    attrs = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Bald", "Male"]
    table = {  # image -> hair one-hot (or ambiguous) and Male
        1: ([1, 0, 0, 0, 0], 1), 2: ([0, 1, 0, 0, 0], 0), 3: ([0, 0, 0, 0, 0], 1), 4: ([0, 0, 1, 0, 0], 0),
        5: ([1, 1, 0, 0, 0], 1), 6: ([0, 0, 0, 1, 0], 0), 7: ([0, 0, 0, 0, 1], 1), 8: ([0, 0, 1, 0, 0], 1),
    }
    lines = [str(len(table)), " ".join(attrs)]
    lines += [f"{i:06d}.png " + " ".join("1" if v else "-1" for v in hair + [male]) for i, (hair, male) in table.items()]
    (base / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    part = {1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 1, 7: 2, 8: 2}
    (base / "list_eval_partition.txt").write_text("".join(f"{i:06d}.png {p}\n" for i, p in part.items()))

    male = load_dataset(DataConfig(name="celeba32", root=str(tmp_path), attr="Male"), "train")
    assert male.labels.tolist() == [1, 0, 1, 0, 1] and male.class_names == ["not Male", "Male"]
    assert male.data[:, 1, 0, 0].tolist() == [0, 10, 20, 30, 40]  # images 1..5 (partition 0)
    hair = load_dataset(DataConfig(name="celeba32", root=str(tmp_path), attr="hair_color"), "train")
    assert hair.labels.tolist() == [0, 1, 2]  # images 3 (no hair colour) and 5 (two) dropped
    assert hair.num_classes == 5
    hair_test = load_dataset(DataConfig(name="celeba32", root=str(tmp_path), attr="hair_color"), "test")
    assert hair_test.labels.tolist() == [4, 2]  # images 7, 8 (partition 2)
    with pytest.raises(ConfigError, match="data.attr=Smiling.*accepted values"):
        load_dataset(DataConfig(name="celeba32", root=str(tmp_path), attr="Smiling"), "train")


def test_image_folder_labels_from_subfolders(tmp_path, monkeypatch):
    monkeypatch.setenv("LSGAN_CACHE", str(tmp_path / "cache"))
    for cls, value in (("cats", 50), ("dogs", 150)):
        for split in ("train", "test"):
            (tmp_path / "imgs" / split / cls).mkdir(parents=True)
            for i in range(3 if split == "train" else 1):
                Image.new("L", (20, 12), value).save(tmp_path / "imgs" / split / cls / f"{i}.png")
    cfg = DataConfig(name="image_folder", path=str(tmp_path / "imgs"), size=16)
    d = load_dataset(cfg, "train")
    assert d.data.shape == (6, 3, 16, 16) and d.class_names == ["cats", "dogs"]
    assert d.labels.tolist() == [0, 0, 0, 1, 1, 1] and (d.data[d.labels == 1] == 150).all()
    assert len(load_dataset(cfg, "test")) == 2


# --------------------------------------------------------------------------- sampler
def test_sampler_epochs_are_permutations_and_deterministic():
    before = torch.get_rng_state()
    s = ResumableBatchSampler(103, 10, seed=7)
    first = list(islice(iter(s), 20))
    assert torch.equal(before, torch.get_rng_state())
    assert not hasattr(s, "__len__")
    epoch0, epoch1 = sum(first[:10], []), sum(first[10:], [])
    assert len(set(epoch0)) == 100 and len(set(epoch1)) == 100 and epoch0 != epoch1  # drop_last: 3 left out
    assert first == list(islice(iter(ResumableBatchSampler(103, 10, seed=7)), 20))
    assert first != list(islice(iter(ResumableBatchSampler(103, 10, seed=8)), 20))


def test_sampler_resume_matches_uninterrupted_run():
    full = list(islice(iter(ResumableBatchSampler(53, 8, seed=3)), 40))
    for j in (0, 1, 5, 6, 13, 31):  # 6 batches per epoch: includes epoch boundaries
        assert list(islice(iter(ResumableBatchSampler(53, 8, seed=3, start_batch=j)), 40 - j)) == full[j:]
        assert ResumableBatchSampler(53, 8, seed=3).batch(j) == full[j]


def test_sampler_ranks_split_each_step():
    r0 = list(islice(iter(ResumableBatchSampler(100, 10, seed=1, rank=0, world_size=2)), 5))
    r1 = list(islice(iter(ResumableBatchSampler(100, 10, seed=1, rank=1, world_size=2)), 5))
    assert len(set(sum(r0 + r1, []))) == 100  # one epoch, split without overlap
    with pytest.raises(ValueError, match="batch_size"):
        ResumableBatchSampler(10, 64, seed=0)


# --------------------------------------------------------------------------- data module
def test_datamodule_loader_yields_batches_without_global_rng():
    dm = GANDataModule(DataConfig(name="digits", batch_size=16), seed=3)
    dm.setup()
    assert dm.image_shape == (1, 32, 32) and dm.num_classes == 10 and dm.class_names[3] == "3"
    dm.attach_features(torch.arange(len(dm.train_set), dtype=torch.float32)[:, None].repeat(1, 4))
    before = torch.get_rng_state()
    batches = list(islice(iter(dm.train_dataloader()), 3))
    assert torch.equal(before, torch.get_rng_state())
    sampler = ResumableBatchSampler(len(dm.train_set), 16, seed=3)
    for j, b in enumerate(batches):
        assert isinstance(b, Batch) and b.x.shape == (16, 1, 32, 32)
        assert b.index.tolist() == sampler.batch(j)
        assert torch.equal(b.x, dm.train_set.images(b.index)) and torch.equal(b.y, dm.train_set.labels[b.index])
        assert torch.equal(b.feat[:, 0], b.index.float())


def test_datamodule_state_and_eval_set():
    cfg = DataConfig(name="digits", batch_size=16, max_train=200, label_noise=0.5)
    dm = GANDataModule(cfg, seed=0)
    dm.load_state_dict({"start_batch": 5})
    assert dm.state_dict() == {"start_batch": 5}
    first = next(iter(dm.train_dataloader()))
    assert first.index.tolist() == ResumableBatchSampler(200, 16, seed=0).batch(5)
    dm.trainer = SimpleNamespace(lightning_module=SimpleNamespace(iteration=7), global_rank=0, world_size=1)
    assert dm.state_dict() == {"start_batch": 7}
    assert len(dm.train_set) == 200 and len(dm.eval_set) == 359
    assert torch.equal(dm.eval_set.labels, dm.eval_set.clean_labels)


def test_datamodule_with_workers():
    dm = GANDataModule(DataConfig(name="digits", batch_size=32, num_workers=1), seed=0)
    b = next(iter(dm.train_dataloader()))
    assert isinstance(b, Batch) and b.index.tolist() == ResumableBatchSampler(len(dm.train_set), 32).batch(0)


def test_lightning_resume_continues_the_batch_stream(tmp_path):
    import pytorch_lightning as pl

    class Recorder(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen = []

        @property
        def iteration(self):
            return self.global_step

        def training_step(self, batch, batch_idx):
            self.seen.append(batch.index.tolist())
            return (self.w * batch.x.mean()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def trainer(steps):
        return pl.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)

    cfg = DataConfig(name="digits", batch_size=64)
    expected = [ResumableBatchSampler(1438, 64, seed=2).batch(j) for j in range(30)]
    first = Recorder()
    t = trainer(25)
    t.fit(first, GANDataModule(cfg, seed=2))  # 25 steps: crosses the 22-batch epoch boundary
    assert first.seen == expected[:25]
    t.save_checkpoint(tmp_path / "last.ckpt")
    resumed = Recorder()
    trainer(30).fit(resumed, GANDataModule(cfg, seed=2), ckpt_path=tmp_path / "last.ckpt")
    assert resumed.seen == expected[25:30]


# --------------------------------------------------------------------------- shared real data
def test_mnist_from_shared_npz():
    root = shared("mnist.npz")
    d = load_dataset(DataConfig(name="mnist", root=str(root)), "train")
    assert d.data.shape == (60000, 1, 32, 32)
    assert torch.bincount(d.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    t = load_dataset(DataConfig(name="mnist", root=str(root)), "test")
    assert torch.bincount(t.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_cifar10_from_shared_npz():
    root = shared("cifar10.npz")
    d = load_dataset(DataConfig(name="cifar10", root=str(root)), "train")
    assert d.data.shape == (50000, 3, 32, 32) and d.class_names[0] == "airplane" and d.class_names[9] == "truck"
    mean = d.data.numpy().mean(axis=(0, 2, 3))  # numpy: torch's uint8 reductions are slow on CPU
    assert np.allclose(mean, [125.31, 122.95, 113.87], atol=0.01)
    assert torch.bincount(d.labels).tolist() == [5000] * 10


def test_celeba64_from_shared_folder(tmp_path, monkeypatch):
    root = shared("celeba/img_align_celeba")
    monkeypatch.setenv("LSGAN_CACHE", str(tmp_path))
    cfg = DataConfig(name="celeba64", root=str(root))
    train, test = load_dataset(cfg, "train"), load_dataset(cfg, "test")
    assert train.data.shape == (5400, 3, 64, 64) and test.data.shape == (600, 3, 64, 64)
    assert not set(rows(train.data[:, :, 24:40, 24:40])) & set(rows(test.data[:, :, 24:40, 24:40]))
    mean = train.data[:500].double().mean().item()
    assert 60 < mean < 180  # real photos, not blank or saturated arrays


def test_toy_readers_and_mode_metrics_share_one_geometry():
    """ring8 / grid25's centres are written once (lsgan.toys): the readers draw around them, the mode
    metrics score against them, so every point's label is its nearest scored centre."""
    from lsgan import toys
    from lsgan.metrics import modes

    assert modes.toy_centers is toys.toy_centers and toys.TOY_DATASETS == ("ring8", "grid25")
    for name, k in (("ring8", 8), ("grid25", 25)):
        d = load_dataset(DataConfig(name=name, n_points=2000, std=0.01), "train")
        centers = torch.from_numpy(toys.toy_centers(name)).float()
        assert len(centers) == k == d.num_classes
        assert torch.equal(torch.cdist(d.data, centers).argmin(1), d.labels)
    assert toys.toy_centers("mnist") is None
