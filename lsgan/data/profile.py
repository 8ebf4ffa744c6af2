"""What a generic recipe reads from the data itself: the resolution and the kind of views
and, for coupled, the feature extractor (``conf/experiment/{clustergan,nemgan,slcgan,coupled}.yaml`` set
these keys to ``auto``).

The rules look at the images, never at the dataset's name, so a recipe carries to data it was not
tuned on:

* ``data.size``: the smallest side the nets take (28, 32, 64) that holds the images' own side, at most
  64 (a CPU budget: a 64-px step costs about four 32-px ones);
* ``method.clustering.augment.kind``: ``affine`` when the images show a shape on a plain background (the border
  pixels of an image nearly all equal its border's median: digits, clothes, glyphs), where a crop
  can cut the shape off and a mirror can make it another shape; ``crop_jitter`` (the paper's T)
  otherwise, for photographs that fill the frame;
* ``method.encoder`` (clustergan, nemgan), ``method.c_net`` (slcgan) and ``method.clustering.neighbours``: for shapes
  the clusters come from a net of the method's own (``hybrid``, ``own``) fed two views of each image; for photographs from a head on the frozen
  extractor's features (``extractor``) fed an image and one of its 20 nearest neighbours in those features
  (SCAN): a net trained from scratch in a CPU budget clusters photographs by colour and background;
* ``method.feature_weight`` (coupled): 0 for shapes, where G already follows its exemplar's class (MNIST
  agreement 0.85); for photographs G's sample must also show the exemplar's features through the frozen
  RotNet, since the pair discriminator alone taught G the exemplar's colours and background more than its class;
* ``method.realism_weight`` and ``method.n_gen`` (coupled): for photographs a second, ordinary D judges single
  images real or fake and D steps every iteration (the pair game alone drew face-shaped blobs on CelebA where
  SNGAN drew faces on the same budget); for shapes the paper's pair game with D every second iteration;
* ``method.mode_seeking_weight`` (nemgan): 0.3 for shapes, 1.0 for photographs, where G met the frozen RotNet head's
  modes with nearly one image each at 0.3;
* ``extractor=auto`` (coupled, and clustergan / nemgan / slcgan on photographs): for shapes an untrained AlexNet at conv3 (random filters already
  separate strokes: 89 % first-neighbour label agreement on MNIST); for photographs a RotNet at conv2
  pooled to 4×4, trained without labels on the training split the first time it is needed and
  cached (Durall et al. use a RotNet for CIFAR-10).

The nets stay at width 16 (``model=dcgan_small``) whatever the data: on one CPU thread slcGAN on
32-px colour images runs 1.76 it/s at width 16 and 0.56 at width 32, too few iterations for an hour.
A GPU user raises it with ``model=dcgan`` (width 64) or ``model=resnet``.

``resolve_auto`` replaces each ``auto`` in a composed config with its value and prints one line per
choice; ``lsgan.config.validate`` calls it, so every entry point sees plain values and a run's saved
config records what was trained.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch
from omegaconf import DictConfig, OmegaConf

AUTO = "auto"
AUTO_KEYS = ("data.size", "method.clustering.augment.kind", "method.encoder", "method.c_net", "method.clustering.neighbours",
             "method.feature_weight", "method.realism_weight", "method.n_gen", "method.mode_seeking_weight")
FEATURE_WEIGHT = 1.0     # coupled on photographs: CIFAR-10 agreement with the exemplar's class 0.16 without the feature term, 0.31 with it (60 CPU-minutes)
REALISM_WEIGHT = 1.0     # coupled on photographs: recognisable faces on CelebA 64 in the hour where the pair game alone drew blobs
MODE_SEEKING = (0.3, 1.0)  # nemgan's MSGAN weight for shapes, photographs: MNIST variety 0.18 -> 1.1 at 0.3; CIFAR-10 0.59 -> 0.74 at 1.0 (0.3 drew nearly one image per mode on the RotNet head)
NEIGHBOURS = 20          # clustergan, nemgan and slcgan on photographs: mined neighbours per image (CIFAR-10 RotNet features: 52 % of first neighbours share the class, 40 % of the 20th)
SIDES = (28, 32, 64)     # the nets' sizes a CPU recipe picks from (lsgan.nets.layers.IMAGE_SIZES up to 64)
PLAIN_BORDER = 0.5       # above this share of plain border pixels the images are shapes on a background (MNIST 1.0, 8-px digits 0.7; CIFAR-10 0.2)
PLAIN_TOLERANCE = 8      # a border pixel is plain within this many grey levels (of 255) of its border's median
PROFILE_IMAGES = 1000    # images the border statistic reads, evenly spaced through the training split


@dataclass
class DataProfile:
    side: Optional[int]      # the images' own side (None: point data)
    channels: int
    plain_border: float      # mean share of an image's border pixels equal to its border's median

    @property
    def size(self) -> int:
        if self.side is None:
            return 32  # point data: unused by the nets
        return next((s for s in SIDES if s >= self.side), SIDES[-1])

    @property
    def views(self) -> str:
        return "affine" if self.plain_border >= PLAIN_BORDER else "crop_jitter"


def plain_border_share(images: torch.Tensor) -> float:
    """Mean over uint8 N×C×H×W images of the share of their one-pixel border (all channels) within
    ``PLAIN_TOLERANCE`` grey levels of that image's border median."""
    x = images.to(torch.int16)
    border = torch.cat([x[..., 0, :], x[..., -1, :], x[..., 1:-1, 0], x[..., 1:-1, -1]], dim=-1).flatten(1)
    median = border.median(dim=1, keepdim=True).values
    return float(((border - median).abs() <= PLAIN_TOLERANCE).float().mean())


def profile_data(data_cfg) -> DataProfile:
    """Measure what the rules need on the training split (loaded at the size the run will use)."""
    from lsgan.data.datasets import load_dataset, native_side

    side = native_side(data_cfg)
    if side is None:
        return DataProfile(side=None, channels=0, plain_border=0.0)
    cfg = OmegaConf.merge(OmegaConf.create(_data_node(data_cfg)), {"size": DataProfile(side, 1, 0.0).size})
    train = load_dataset(cfg, cfg.train_split)
    picked = torch.linspace(0, len(train) - 1, min(PROFILE_IMAGES, len(train))).long()
    images = train.data[picked]
    return DataProfile(side=side, channels=int(images.shape[1]), plain_border=plain_border_share(images))


def _data_node(data_cfg) -> dict:
    node = OmegaConf.to_container(data_cfg, resolve=True) if isinstance(data_cfg, DictConfig) else dict(data_cfg)
    return {k: v for k, v in node.items() if v != AUTO}


def auto_keys(cfg: DictConfig) -> List[str]:
    return [k for k in AUTO_KEYS if OmegaConf.select(cfg, k, default=None) == AUTO]


def auto_values(profile: DataProfile) -> dict:
    """What each of ``AUTO_KEYS`` becomes for data of this profile."""
    shapes = profile.views == "affine"
    return {"data.size": profile.size, "method.clustering.augment.kind": profile.views,
            "method.encoder": "hybrid" if shapes else "extractor", "method.c_net": "own" if shapes else "extractor",
            "method.clustering.neighbours": 0 if shapes else NEIGHBOURS,
            "method.feature_weight": 0.0 if shapes else FEATURE_WEIGHT,
            "method.realism_weight": 0.0 if shapes else REALISM_WEIGHT, "method.n_gen": 2 if shapes else 1,
            "method.mode_seeking_weight": MODE_SEEKING[0] if shapes else MODE_SEEKING[1]}


def resolve_auto(cfg: DictConfig, verbose: bool = True) -> DictConfig:
    """``cfg`` with every ``auto`` of ``AUTO_KEYS`` and ``extractor=auto`` replaced by what the data
    calls for (a copy; ``cfg`` itself when nothing is ``auto``)."""
    keys = auto_keys(cfg)
    extractor_auto = OmegaConf.select(cfg, "extractor.name", default=None) == AUTO
    if not keys and not extractor_auto:
        return cfg
    profile = profile_data(OmegaConf.create(_data_node(cfg.data)))
    values = auto_values(profile)
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    for key in keys:
        OmegaConf.update(out, key, values[key], merge=False)
    shown = [f"{k}={values[k]}" for k in keys]
    if extractor_auto:
        out.extractor = _extractor_node(out, profile)
        shown.append(f"extractor={out.extractor.name} (layer {out.extractor.layer}, pool {out.extractor.pool})")
    if verbose:
        seen = (f"{profile.side} px, {profile.channels} channel{'s' if profile.channels != 1 else ''}, "
                f"plain border {profile.plain_border:.2f}")
        print(f"[lsgan] from the data ({seen}): " + ", ".join(shown), flush=True)
    return out


RECIPE_METHODS = ("coupled", "clustergan", "nemgan", "slcgan")


def recipe_hint(cfg: DictConfig, dataset: str) -> Optional[str]:
    """One line for a run of a method's own (paper) settings on photographs, where those settings are not what
    was measured to work within a CPU budget: the method's recipe is (coupled's pair game alone drew blurred
    blobs on CelebA in an hour; its recipe drew faces)."""
    name = str(cfg.method.name)
    if name not in RECIPE_METHODS:
        return None
    profile = profile_data(OmegaConf.create(_data_node(cfg.data)))
    if profile.side is None or profile.views == "affine":
        return None
    return (f"[lsgan] method={name} without a recipe trains the paper's settings; for photographs the measured "
            f"recipe is experiment={name} dataset={dataset} (docs/natural_images.md)")


def _extractor_node(cfg: DictConfig, profile: DataProfile) -> DictConfig:
    """``extractor=auto`` resolved: alexnet_random for shapes, a RotNet for photographs. A RotNet without
    weights gets ``weights: auto``: ``lsgan.run`` fills in this data's cached RotNet, training it when
    missing (``lsgan.train_extractor.ensure_extractor_weights``)."""
    shapes = profile.views == "affine"
    choice = {"name": "alexnet_random" if shapes else "rotnet", "layer": "conv3" if shapes else "conv2",
              "pool": None if shapes else 4}
    node = OmegaConf.create(OmegaConf.to_container(cfg.extractor, resolve=True))
    for key, value in choice.items():
        if node.get(key) == AUTO:
            node[key] = value
    if node.name == "rotnet" and not node.weights:
        node.weights = AUTO
    return node
