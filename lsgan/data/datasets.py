"""Every dataset as one in-memory array, so a batch is a single tensor gather.

``load_dataset(cfg, split, seed)`` reads a split, keeps the configured classes / class ratio,
caps and corrupts training labels when asked, resizes images to the target size and wraps the
result in an :class:`ArrayDataset`. Images stay uint8 (4× smaller than float) and become
floats in [-1, 1] only per batch.

Randomness (subsets, label noise, toy points, Stacked-MNIST composition) comes from private
``torch.Generator`` objects derived from ``(seed, purpose, split)``, never from the global RNG,
so loading data does not shift the training run's random stream. Train/test hold-out splits
of datasets that ship without one use a fixed seed, so they never overlap whatever the run seed.
"""
from __future__ import annotations

import hashlib
import math
import os
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from lsgan.errors import ConfigError, one_line
from lsgan.data.batch import Batch
from lsgan.io import atomic_file, cache_root
from lsgan.toys import toy_centers

# data.name: every dataset load_dataset reads (lsgan.config.validate checks the choice)
DATASETS = (
    "digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "cifar100_coarse",
    "celeba32", "celeba64", "celeba128", "stacked_mnist",
    "ring8", "grid25", "crescents", "npz", "image_folder",
)
SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
HAIR_COLORS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Bald")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# CIFAR-100's 20 superclasses, in the order of the files' coarse label ids
CIFAR100_COARSE_CLASSES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot")
_CACHE_VERSION = "v2"  # bump when the decode / crop / resize recipe changes


# --------------------------------------------------------------------------- dataset
class ArrayDataset(Dataset):
    """A split held in memory.

    data:         uint8 N×C×H×W images (already at the target size) or float32 N×2 points.
    labels:       int64 N training labels (possibly noisy) or None.
    clean_labels: int64 N labels without injected noise (what evaluation uses) or None.
    features:     float32 N×d per-example features (set by a feature cache) or None.
    """

    def __init__(self, data: torch.Tensor, labels: Optional[torch.Tensor] = None,
                 clean_labels: Optional[torch.Tensor] = None, class_names: Sequence[str] = (),
                 name: str = ""):
        self.data = data
        self.labels = labels
        self.clean_labels = labels if clean_labels is None else clean_labels
        self.features: Optional[torch.Tensor] = None
        self.class_names = list(class_names) if labels is not None else []
        self.num_classes = len(self.class_names)
        self.is_image = data.dtype == torch.uint8 and data.dim() == 4
        self.name = name

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, i) -> Batch:
        """A Batch of one example, so every access path yields the same type."""
        return self.__getitems__([i])

    def __getitems__(self, indices) -> Batch:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return Batch(
            x=self._to_float(self.data[idx]),
            index=idx,
            y=None if self.labels is None else self.labels[idx],
            feat=None if self.features is None else self.features[idx],
        )

    def images(self, indices=None) -> torch.Tensor:
        """Float examples (images in [-1, 1]); all of them when ``indices`` is None."""
        if indices is None:
            return self._to_float(self.data) if self.is_image else self.data.clone()
        return self._to_float(self.data[torch.as_tensor(indices, dtype=torch.long)])

    def _to_float(self, data: torch.Tensor) -> torch.Tensor:
        if self.is_image:
            return data.to(torch.float32).div_(127.5).sub_(1.0)
        return data

    def __repr__(self) -> str:
        return (f"ArrayDataset({self.name!r}, n={len(self)}, shape={tuple(self.data.shape[1:])}, "
                f"classes={self.num_classes})")


class _Split(NamedTuple):
    """What a reader returns: raw examples before subsetting / resizing."""

    x: torch.Tensor                 # uint8 N×C×H×W (any size) or float32 N×2
    y: Optional[torch.Tensor]       # int64 N or None
    class_names: List[str]


# --------------------------------------------------------------------------- public entry
def load_dataset(cfg, split: str, seed: int = 0, train: Optional[bool] = None) -> ArrayDataset:
    """Load ``split`` of ``cfg.name`` as configured by ``cfg`` (a DataConfig or its DictConfig).

    ``train`` (default: ``split == cfg.train_split``) enables the training-only steps:
    ``max_train`` and ``label_noise``. Class subsetting and ratios apply to every split.
    """
    if cfg.name not in _READERS:
        raise ConfigError(f"data.name={cfg.name!r} is not accepted; accepted values: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ConfigError(f"data split {split!r} is not accepted; accepted values: {', '.join(SPLITS)}")
    train = (split == cfg.train_split) if train is None else train
    raw = _READERS[cfg.name](cfg, split, seed)
    x, y, names = raw.x, raw.y, raw.class_names

    keep = _select(cfg, y, len(x), len(names), split, seed, train)
    if keep is not None:
        x, y = x[keep], (None if y is None else y[keep])
    if cfg.classes is not None:
        classes = [int(c) for c in cfg.classes]
        y, names = _relabel(y, classes, len(names)), [names[c] for c in classes]

    if x.dtype == torch.uint8:
        x = _set_channels(_resize(x, target_size(cfg)), cfg.channels)
    elif cfg.channels is not None:
        raise ConfigError(f"data.channels={cfg.channels}: only image datasets have channels; "
                          f"leave it unset for {cfg.name}")

    noisy = y
    if train and cfg.label_noise > 0:
        if y is None:
            raise ConfigError(f"data.label_noise={cfg.label_noise}: dataset {cfg.name} has no labels to corrupt")
        noisy = flip_labels(y, len(names), cfg.label_noise, _generator(seed, "label_noise", split))
    return ArrayDataset(x.contiguous(), noisy, y, names, name=cfg.name)


def target_size(cfg) -> int:
    """Output resolution: CelebA variants carry it in their name; everything else uses cfg.size."""
    if cfg.name.startswith("celeba"):
        return int(cfg.name[len("celeba"):])
    return int(cfg.size)


def native_side(cfg) -> Optional[int]:
    """The side of the dataset's own images before any resize (the shorter side: ``_resize`` crops to a
    square); None for point data. Image folders are measured on their first 16 files."""
    if cfg.name in ("ring8", "grid25", "crescents"):
        return None
    if cfg.name.startswith("celeba"):  # the name carries the size the faces are decoded at
        return target_size(cfg)
    if cfg.name == "stacked_mnist":  # three MNIST digits
        return 28
    if cfg.name == "image_folder":
        from PIL import Image

        files = _image_files(Path(str(cfg.path)).expanduser()) if cfg.path else []
        if not files:
            raise ConfigError(f"data.path={cfg.path}: no images ({', '.join(IMAGE_SUFFIXES)}) to read a size from")
        sides = []
        for f in files[:16]:
            with Image.open(f) as im:
                sides.append(min(im.size))
        return int(sorted(sides)[len(sides) // 2])
    if cfg.name not in _READERS:
        raise ConfigError(f"data.name={cfg.name!r} is not accepted; accepted values: {', '.join(DATASETS)}")
    return int(min(_READERS[cfg.name](cfg, cfg.train_split, 0).x.shape[-2:]))


def prepare_dataset(cfg) -> None:
    """Download what a torchvision-backed dataset needs (call once, on one process)."""
    if not cfg.download:
        return
    for split in SPLITS:
        _READERS[cfg.name](cfg, split, 0)


# --------------------------------------------------------------------------- subsetting
def _select(cfg, y, n: int, num_classes: int, split: str, seed: int, train: bool) -> Optional[torch.Tensor]:
    """Sorted indices kept by classes / class_ratio / max_train, or None to keep all ``n``."""
    cap = int(cfg.max_train) if train and cfg.max_train else None
    if cfg.classes is None:
        if cfg.class_ratio is not None:
            raise ConfigError("data.class_ratio: needs data.classes of the same length")
        return None if cap is None or cap >= n else _random_subset(n, cap, seed, split)
    if y is None:
        raise ConfigError(f"data.classes={list(cfg.classes)}: dataset {cfg.name} has no labels")
    classes = [int(c) for c in cfg.classes]
    if any(not 0 <= c < num_classes for c in classes) or len(set(classes)) != len(classes):
        raise ConfigError(f"data.classes={classes}: must be distinct class indices in 0..{num_classes - 1}")
    members = [torch.nonzero(y == c).flatten() for c in classes]
    if cfg.class_ratio is None:
        kept = torch.cat(members).sort().values
        return kept if cap is None or cap >= len(kept) else kept[_random_subset(len(kept), cap, seed, split)]
    quota = class_quota([len(m) for m in members], list(cfg.class_ratio), cap)
    g = _generator(seed, "class_ratio", split)
    picked = [m[torch.randperm(len(m), generator=g)[:q]] for m, q in zip(members, quota)]
    return torch.cat(picked).sort().values


def _random_subset(n: int, k: int, seed: int, split: str) -> torch.Tensor:
    return torch.randperm(n, generator=_generator(seed, "max_train", split))[:k].sort().values


def class_quota(counts: Sequence[int], ratio: Sequence[float], cap: Optional[int] = None) -> List[int]:
    """Largest per-class counts with proportions ``ratio`` that fit in ``counts`` (and sum ≤ cap).

    The total T is limited by the scarcest class relative to its share (min n_c / r_c); each
    class then keeps floor(r_c · T), so the binding class keeps all its examples.
    """
    if len(ratio) != len(counts):
        raise ConfigError(f"data.class_ratio={list(ratio)}: needs one entry per class in data.classes ({len(counts)})")
    if any(r < 0 for r in ratio) or not math.isclose(sum(ratio), 1.0, abs_tol=1e-6):
        raise ConfigError(f"data.class_ratio={list(ratio)}: entries must be >= 0 and sum to 1")
    total = min(n / r for n, r in zip(counts, ratio) if r > 0)
    if cap is not None:
        total = min(total, cap)
    # the epsilon absorbs float error so that r·(n/r) floors to n, not n-1
    return [min(n, int(math.floor(r * total + 1e-6))) for n, r in zip(counts, ratio)]


def _relabel(y: torch.Tensor, classes: List[int], num_classes: int) -> torch.Tensor:
    """Map original class ``classes[i]`` to i (y holds only kept classes)."""
    lut = torch.full((num_classes,), -1, dtype=torch.long)
    lut[torch.tensor(classes, dtype=torch.long)] = torch.arange(len(classes))
    return lut[y]


def flip_labels(y: torch.Tensor, num_classes: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """Flip exactly round(p·N) labels, each to a different class chosen uniformly."""
    if num_classes < 2:
        raise ConfigError(f"data.label_noise={p}: needs at least 2 classes, dataset has {num_classes}")
    n_flip = int(round(p * len(y)))
    idx = torch.randperm(len(y), generator=generator)[:n_flip]
    shift = torch.randint(1, num_classes, (n_flip,), generator=generator)  # never 0: always a new class
    out = y.clone()
    out[idx] = (y[idx] + shift) % num_classes
    return out


# --------------------------------------------------------------------------- image ops
def _resize(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Centre-crop to a square, then bilinear (antialiased when shrinking) resize to size×size."""
    n, c, h, w = x.shape
    side = min(h, w)
    if (h, w) != (side, side):
        top, left = (h - side) // 2, (w - side) // 2
        x = x[:, :, top:top + side, left:left + side]
    if side == size:
        return x
    out = torch.empty((n, c, size, size), dtype=torch.uint8)
    for i in range(0, n, chunk):  # chunked: a float copy of all of MNIST/CelebA would not fit comfortably
        part = F.interpolate(x[i:i + chunk].float(), size=(size, size), mode="bilinear",
                             align_corners=False, antialias=size < side)
        out[i:i + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _set_channels(x: torch.Tensor, channels: Optional[int]) -> torch.Tensor:
    if channels is None or channels == x.shape[1]:
        return x
    if channels == 3 and x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    if channels == 1 and x.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)  # ITU-R 601 luma, as PIL's "L"
        return (x.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    raise ConfigError(f"data.channels={channels} is not accepted; accepted values: 1, 3 (or unset)")


def _to_nchw(x: np.ndarray, where: str) -> torch.Tensor:
    if x.dtype != np.uint8:
        raise ConfigError(f"{where}: images must be uint8 (0..255), got {x.dtype}")
    if x.ndim == 3:
        return torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(1)
    if x.ndim == 4 and x.shape[-1] in (1, 3):
        return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()  # torch copies faster than numpy
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise ConfigError(f"{where}: images must be N×H×W or N×H×W×C with C in (1, 3), got shape {x.shape}")


# --------------------------------------------------------------------------- helpers
def _generator(seed: int, *salt) -> torch.Generator:
    """A private generator for one purpose; hashing keeps purposes' streams independent."""
    digest = hashlib.sha256(repr((int(seed),) + salt).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def _holdout(n: int, split: str, test_fraction: float) -> torch.Tensor:
    """Fixed (seed-independent) train/test partition for datasets that ship without one."""
    perm = torch.randperm(n, generator=_generator(0, "holdout"))
    n_test = int(round(test_fraction * n))
    part = perm[n_test:] if split == "train" else perm[:n_test]
    return part.sort().values


def _root(cfg) -> Path:
    return Path(str(cfg.root)).expanduser().absolute()


def _labels(y) -> torch.Tensor:
    return torch.as_tensor(np.asarray(y).astype(np.int64).reshape(-1))


# --------------------------------------------------------------------------- npz
def _read_npz(path: Path, split: str, where: str, default_names: Sequence[str] = ()) -> _Split:
    """``x_<split>``/``y_<split>`` arrays, or a single ``x``/``y`` pair held out 90/10."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path} ({one_line(exc)})") from None
    if magic != b"PK\x03\x04":  # every .npz (numpy.savez) is a zip archive
        raise ConfigError(f"{where}: {path} is not an .npz archive (it does not start as a zip file; "
                          f"write it with numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            if f"x_{split}" in keys:
                x, y, keep = f[f"x_{split}"], (f[f"y_{split}"] if f"y_{split}" in keys else None), None
            elif "x" in keys:
                x, y = f["x"], (f["y"] if "y" in keys else None)
                keep = _holdout(len(x), split, 0.1)
            else:
                raise ConfigError(f"{where}: {path} has arrays {sorted(keys)}; expected 'x' (and optional 'y') "
                                  f"or 'x_{split}' / 'y_{split}'")
            all_y = [f[k] for k in keys if k == "y" or k.startswith("y_")]
            names = [str(s) for s in f["classes"]] if "classes" in keys else list(default_names)
    except ConfigError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise ConfigError(f"{where}: {path} is truncated or corrupt ({one_line(exc)[:120]}); "
                          f"re-create or re-download it") from None
    xt = _to_nchw(x, where)
    yt = None if y is None else _labels(y)
    if yt is not None and len(yt) != len(xt):
        raise ConfigError(f"{where}: {path} has {len(xt)} images but {len(yt)} labels")
    if keep is not None:
        xt, yt = xt[keep], (None if yt is None else yt[keep])
    if yt is not None and not names:
        names = [str(i) for i in range(int(max(int(a.max()) for a in all_y if a.size)) + 1)]
    if yt is not None and len(yt) and (int(yt.min()) < 0 or int(yt.max()) >= len(names)):
        raise ConfigError(f"{where}: labels must lie in 0..{len(names) - 1} (one per class name), "
                          f"got {int(yt.min())}..{int(yt.max())}")
    return _Split(xt, yt, names if yt is not None else [])


def _read_user_npz(cfg, split: str, seed: int) -> _Split:
    if not cfg.path:
        raise ConfigError("data.path: required for dataset npz (an .npz with uint8 'x' [N×H×W(×C)] "
                          "and optional 'y', or x_train/y_train/x_test/y_test)")
    path = Path(str(cfg.path)).expanduser().absolute()
    if not path.is_file():
        raise ConfigError(f"data.path={cfg.path}: no such file ({path}); point data.path at an .npz file")
    return _read_npz(path, split, f"data.path={cfg.path}")


# --------------------------------------------------------------------------- torchvision-backed
def _torchvision_reader(name: str, tv_class: str, default_names: Sequence[str] = ()) -> Callable:
    """Reader for ROOT/<name>.npz, falling back to torchvision's own files / download."""

    def read(cfg, split: str, seed: int, who: str = name) -> _Split:
        root = _root(cfg)
        npz = root / f"{name}.npz"
        if npz.is_file():
            return _read_npz(npz, split, f"dataset {who}", default_names)
        import torchvision.datasets as tvd

        try:
            ds = getattr(tvd, tv_class)(str(root), train=split == "train", download=bool(cfg.download))
        except (RuntimeError, OSError) as exc:
            if not cfg.download:
                raise ConfigError(
                    f"dataset {who} not found: expected {npz} (arrays x_train, y_train, x_test, y_test) "
                    f"or torchvision's {tv_class} files under {root}; set data.root=<folder holding them> "
                    f"or data.download=true") from None
            raise ConfigError(f"dataset {who}: download into {root} failed ({one_line(exc)}); "
                              f"download it elsewhere and set data.root=<that folder>") from None
        x = ds.data.numpy() if torch.is_tensor(ds.data) else np.asarray(ds.data)
        names = list(default_names) or [str(c) for c in ds.classes]
        return _Split(_to_nchw(x, f"dataset {who}"), _labels(ds.targets), names)

    return read


_read_mnist = _torchvision_reader("mnist", "MNIST", [str(i) for i in range(10)])
_read_cifar100 = _torchvision_reader("cifar100", "CIFAR100")


def _read_cifar100_coarse(cfg, split: str, seed: int) -> _Split:
    """CIFAR-100 images labelled by their 20 superclasses (slcGAN's "CIFAR-100 (20)" clustering target).

    From ROOT/cifar100.npz, the arrays ``y_train_coarse`` / ``y_test_coarse`` (optional
    ``coarse_classes``); otherwise the ``coarse_labels`` of torchvision's ``cifar-100-python`` files.
    """
    who = "dataset cifar100_coarse"
    root = _root(cfg)
    fine = _read_cifar100(cfg, split, seed, who="cifar100_coarse")
    npz = root / "cifar100.npz"
    if npz.is_file():
        key = f"y_{split}_coarse"
        with np.load(npz, allow_pickle=False) as f:
            if key not in f.files:
                raise ConfigError(f"{who}: {npz} has no {key!r} array (the 20 superclass ids per image); "
                                  f"add it, or use dataset=cifar100 for the 100 fine classes")
            y = f[key]
            names = [str(c) for c in f["coarse_classes"]] if "coarse_classes" in f.files else CIFAR100_COARSE_CLASSES
    else:  # torchvision keeps the superclass ids next to the fine ones in its pickles
        import pickle

        with open(root / "cifar-100-python" / ("train" if split == "train" else "test"), "rb") as fh:
            y = pickle.load(fh, encoding="latin1")["coarse_labels"]
        names = CIFAR100_COARSE_CLASSES
    y = _labels(y)
    if len(y) != len(fine.x):
        raise ConfigError(f"{who}: {len(fine.x)} images but {len(y)} superclass labels")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(names)):
        raise ConfigError(f"{who}: superclass labels must lie in 0..{len(names) - 1}, got {int(y.min())}..{int(y.max())}")
    return _Split(fine.x, y, list(names))


def _read_stacked_mnist(cfg, split: str, seed: int) -> _Split:
    """Three random MNIST digits as the R, G, B channels; label 100·r + 10·g + b (1000 modes)."""
    mnist = _read_mnist(cfg, split, seed, who="stacked_mnist (built from MNIST)")
    digits = _resize(mnist.x, target_size(cfg))  # resize the 70k digits once, not the N stacks
    g = _generator(seed, "stacked_mnist", split)
    pick = torch.randint(len(digits), (int(cfg.n_points), 3), generator=g)
    x = digits[pick.flatten()].view(len(pick), 3, *digits.shape[2:])
    d = mnist.y[pick]
    y = 100 * d[:, 0] + 10 * d[:, 1] + d[:, 2]
    return _Split(x, y, [f"{i:03d}" for i in range(1000)])


def _read_digits(cfg, split: str, seed: int) -> _Split:
    """scikit-learn's 1,797 8×8 digits (no download): a tiny real dataset for tests and demos."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)  # values 0..16 -> 0..255
    keep = _holdout(len(x), split, 0.2)
    return _Split(torch.from_numpy(x).unsqueeze(1)[keep], _labels(d.target)[keep], [str(i) for i in range(10)])


# --------------------------------------------------------------------------- 2-D toys
def _toy_reader(name: str) -> Callable[..., _Split]:
    """ring8 / grid25: cfg.n_points points, each drawn around a uniformly drawn mode's centre (``lsgan.toys``,
    the centres the mode metrics score against) with per-axis std cfg.std; the label is the mode."""
    centers = torch.from_numpy(toy_centers(name))

    def read(cfg, split: str, seed: int) -> _Split:
        g = _generator(seed, name, split)
        k = torch.randint(len(centers), (int(cfg.n_points),), generator=g)
        x = centers[k] + float(cfg.std) * torch.randn(len(k), 2, generator=g, dtype=torch.float64)
        return _Split(x.float(), k, [f"mode{i}" for i in range(len(centers))])

    return read


def _read_crescents(cfg, split: str, seed: int) -> _Split:
    """scikit-learn's two interleaved half circles; cfg.std is its Gaussian noise."""
    from sklearn.datasets import make_moons

    state = int(torch.randint(2**31 - 1, (1,), generator=_generator(seed, "crescents", split)))
    x, y = make_moons(n_samples=int(cfg.n_points), noise=float(cfg.std), random_state=state)
    return _Split(torch.from_numpy(x).float(), _labels(y), ["upper", "lower"])


# --------------------------------------------------------------------------- folders of images
def _decode_one(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2  # CelebA 178×218: rows 20..198
        im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


def decode_images(files: Sequence[Path], size: int, key: str) -> Tuple[torch.Tensor, List[int]]:
    """Decode, centre-crop and resize ``files`` to uint8 N×3×size×size, cached on disk; returns
    (images, indices into ``files`` of the images decoded).

    An unreadable file (truncated, not an image) is skipped with one summary warning naming the
    count and the first such file; when none can be read it is a one-line ConfigError.
    Decoding thousands of JPEGs takes seconds to minutes, so the result is stored under
    ``lsgan.io.cache_root()`` keyed by ``key`` (the folder), the file count and the size. The file is
    written to a temporary name and renamed, so a crash never leaves a half-written cache, and
    an unreadable or mismatched cache is rebuilt.
    """
    # names, sizes and modification times: a different or rewritten file set must not hit
    listing = "\n".join(f"{f} {st.st_size} {st.st_mtime_ns}" for f, st in ((f, os.stat(f)) for f in files))
    digest = hashlib.sha1(f"{_CACHE_VERSION}|{key}|{len(files)}|{size}|{listing}".encode()).hexdigest()[:16]
    path = cache_root() / f"images_{size}px_{digest}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            arr, kept = z["images"], z["kept"].tolist()
        if arr.shape[1:] == (3, size, size) and arr.dtype == np.uint8 and len(arr) == len(kept):
            _warn_skipped(files, kept, key, None)
            return torch.from_numpy(arr), kept
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        pass  # missing or unreadable: rebuild below
    arr = np.empty((len(files), 3, size, size), dtype=np.uint8)
    kept, first_fault = [], None
    for i, f in enumerate(files):
        try:
            arr[len(kept)] = _decode_one(f, size).transpose(2, 0, 1)
        except (OSError, ValueError, SyntaxError) as exc:  # PIL's UnidentifiedImageError is an OSError
            first_fault = first_fault or one_line(exc)[:120]
            continue
        kept.append(i)
    if not kept:
        raise ConfigError(f"{key}: none of the {len(files)} image files could be read "
                          f"(first: {files[0]}: {first_fault})")
    arr = arr[:len(kept)]
    _warn_skipped(files, kept, key, first_fault)
    _atomic_save(path, images=arr, kept=np.asarray(kept, dtype=np.int64))
    return torch.from_numpy(arr), kept


def _warn_skipped(files: Sequence[Path], kept: List[int], key: str, fault: Optional[str]) -> None:
    if len(kept) == len(files):
        return
    ok = set(kept)
    first = next(f for i, f in enumerate(files) if i not in ok)
    warnings.warn(f"lsgan: skipped {len(files) - len(kept)} unreadable image(s) of {len(files)} under {key} "
                  f"(first: {first}{': ' + fault if fault else ''})")


def _atomic_save(path: Path, **arrays: np.ndarray) -> None:
    try:
        with atomic_file(path) as fh:
            np.savez(fh, **arrays)
    except OSError as exc:  # a read-only or full cache folder costs speed, not the run
        warnings.warn(f"lsgan: cannot write image cache in {path.parent} ({one_line(exc)}); decoding every time")


def _image_files(folder: Path) -> List[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _celeba_dir(root: Path) -> Optional[Path]:
    for cand in (root, root / "celeba"):
        if (cand / "img_align_celeba").is_dir():
            return cand
    return None


def _read_celeba(cfg, split: str, seed: int) -> _Split:
    """Aligned CelebA faces; labels only when data.attr names an attribute (or hair_color)."""
    root = _root(cfg)
    base = _celeba_dir(root)
    if base is None and cfg.download:
        import torchvision.datasets as tvd

        try:  # torchvision unpacks into ROOT/celeba/img_align_celeba
            tvd.CelebA(str(root), split="all", target_type="attr", download=True)
        except (RuntimeError, OSError) as exc:
            raise ConfigError(f"dataset {cfg.name}: download into {root} failed ({one_line(exc)}); "
                              f"download CelebA manually and set data.root=<folder>") from None
        base = _celeba_dir(root)
    if base is None:
        raise ConfigError(f"dataset {cfg.name} not found: expected {root}/img_align_celeba/*.jpg or "
                          f"{root}/celeba/img_align_celeba/*.jpg; set data.root=<folder holding img_align_celeba> "
                          f"or data.download=true")
    img_dir = base / "img_align_celeba"
    names = sorted(e.name for e in os.scandir(img_dir) if e.name.lower().endswith((".jpg", ".jpeg", ".png")))
    if not names:
        raise ConfigError(f"dataset {cfg.name}: {img_dir} holds no images")
    size = target_size(cfg)
    images, decoded = decode_images([img_dir / n for n in names], size, key=str(img_dir))
    names = [names[i] for i in decoded]

    partition_file = base / "list_eval_partition.txt"
    if partition_file.is_file():
        part = dict(line.split()[:2] for line in partition_file.read_text().splitlines() if line.strip())
        want = "0" if split == "train" else "2"  # CelebA: 0 train, 1 validation, 2 test
        keep = [i for i, n in enumerate(names) if part.get(n) == want]
    else:
        keep = _holdout(len(names), split, 0.1).tolist()

    y, class_names = None, []
    if cfg.attr:
        keep, y, class_names = _celeba_attr(base, cfg.attr, names, keep)
    return _Split(images[torch.tensor(keep, dtype=torch.long)], y, class_names)


def _celeba_attr(base: Path, attr: str, names: List[str], keep: List[int]):
    attr_file = base / "list_attr_celeba.txt"
    if not attr_file.is_file():
        raise ConfigError(f"data.attr={attr}: needs CelebA's attribute file at {attr_file}; "
                          f"put it there or leave data.attr unset")
    lines = attr_file.read_text().splitlines()
    header = lines[1].split()
    wanted = list(HAIR_COLORS) if attr == "hair_color" else [attr]
    missing = [a for a in wanted if a not in header]
    if missing:
        raise ConfigError(f"data.attr={attr} is not accepted; accepted values: hair_color, {', '.join(header)}")
    cols = [header.index(a) for a in wanted]
    rows: Dict[str, List[int]] = {}
    for line in lines[2:]:
        parts = line.split()
        if parts:
            rows[parts[0]] = [int(parts[1 + c]) > 0 for c in cols]
    kept, labels = [], []
    for i in keep:
        flags = rows.get(names[i])
        if flags is None:
            continue  # image without attributes: cannot be labelled
        if attr == "hair_color":
            if sum(flags) != 1:
                continue  # no hair colour or several: ambiguous class
            labels.append(flags.index(True))
        else:
            labels.append(int(flags[0]))
        kept.append(i)
    class_names = list(HAIR_COLORS) if attr == "hair_color" else [f"not {attr}", attr]
    return kept, torch.tensor(labels, dtype=torch.long), class_names


def _read_image_folder(cfg, split: str, seed: int) -> _Split:
    """torchvision ImageFolder layout: PATH/<class>/*.jpg (or PATH/train/<class>, PATH/test/<class>)."""
    if not cfg.path:
        raise ConfigError("data.path: required for dataset image_folder "
                          "(a folder with one subfolder of images per class)")
    path = Path(str(cfg.path)).expanduser().absolute()
    if not path.is_dir():
        raise ConfigError(f"data.path={cfg.path}: no such folder ({path}); point data.path at an image folder")
    split_dirs = [path / s for s in SPLITS if (path / s).is_dir()]
    folder = path / split if split_dirs else path
    if split_dirs and not folder.is_dir():
        raise ConfigError(f"data.path={cfg.path}: has {', '.join(d.name for d in split_dirs)}/ but no {split}/ folder")
    # class names from every split folder, so a class missing from one split keeps its index
    class_names = sorted({d.name for s in (split_dirs or [path]) for d in s.iterdir() if d.is_dir()})
    files, labels = [], []
    for c, cls in enumerate(class_names):
        found = _image_files(folder / cls) if (folder / cls).is_dir() else []
        files += found
        labels += [c] * len(found)
    if not class_names:  # no subfolders: an unlabelled folder of images
        files = [p for p in _image_files(folder) if p.parent == folder]
    if not files:
        raise ConfigError(f"data.path={cfg.path}: no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    images, decoded = decode_images(files, target_size(cfg), key=str(folder))
    files = [files[i] for i in decoded]
    y = torch.tensor([labels[i] for i in decoded], dtype=torch.long) if class_names else None
    if not split_dirs:
        keep = _holdout(len(files), split, 0.1)
        images, y = images[keep], (None if y is None else y[keep])
    return _Split(images, y, class_names)


_READERS: Dict[str, Callable[..., _Split]] = {
    "digits": _read_digits,
    "mnist": _read_mnist,
    "fashion_mnist": _torchvision_reader("fashion_mnist", "FashionMNIST", FASHION_CLASSES),
    "cifar10": _torchvision_reader("cifar10", "CIFAR10", CIFAR10_CLASSES),
    "cifar100": _read_cifar100,
    "cifar100_coarse": _read_cifar100_coarse,
    "celeba32": _read_celeba,
    "celeba64": _read_celeba,
    "celeba128": _read_celeba,
    "stacked_mnist": _read_stacked_mnist,
    "ring8": _toy_reader("ring8"),
    "grid25": _toy_reader("grid25"),
    "crescents": _read_crescents,
    "npz": _read_user_npz,
    "image_folder": _read_image_folder,
}
assert set(_READERS) == set(DATASETS), "every configurable dataset needs a reader"


FINGERPRINT_EXAMPLES = 64  # evenly spaced examples hashed: enough to tell a replaced file, cheap at any size


def fingerprint(dataset) -> str:
    """A short hash of a split's size and of ``FINGERPRINT_EXAMPLES`` evenly spaced examples' bytes: a resume
    compares it with the checkpoint's, so a data file replaced by other examples of the same shape is noticed."""
    import hashlib

    data = dataset.data
    n = int(data.shape[0])
    picked = torch.linspace(0, max(n - 1, 0), min(FINGERPRINT_EXAMPLES, n)).long()
    h = hashlib.sha1(f"{n}:{tuple(data.shape[1:])}".encode())
    h.update(data[picked].contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:12]
