"""The generic recipes (experiment=clustergan|nemgan|slcgan) read the resolution and the kind of
views from the data (lsgan.data.profile): shapes on a plain background get affine views at their own
size, photographs the paper's crop / flip / colour jitter; each recipe trains on both kinds."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from lsgan.config import validate
from lsgan.data.profile import DataProfile, plain_border_share, resolve_auto
from lsgan.run import compose_config, train
from lsgan.train_extractor import ensure_extractor_weights
from tests.conftest import TINY

GENERIC = ["clustergan", "nemgan", "slcgan"]  # coupled: its own test below (it also picks E)
SMALL = [o for o in TINY if not o.startswith("method.z_dim")] + [
    "trainer.steps=2", "model.g_width=8", "model.d_width=8", "data.batch_size=16", "metrics.every=0"]


def _npz(path, images: np.ndarray) -> str:
    y = np.arange(len(images)) % 10
    np.savez(path, x_train=images[:-20], y_train=y[:-20], x_test=images[-20:], y_test=y[-20:])
    return str(path)


@pytest.fixture(scope="module")
def gray_shapes(tmp_path_factory):
    """20-px white squares of random size and place on black: digit-like."""
    rng = np.random.default_rng(0)
    x = np.zeros((120, 20, 20), dtype=np.uint8)
    for img in x:
        s, r, c = rng.integers(4, 9), rng.integers(2, 9), rng.integers(2, 9)
        img[r:r + s, c:c + s] = 255
    return _npz(tmp_path_factory.mktemp("gray") / "shapes.npz", x)


@pytest.fixture(scope="module")
def rgb_photos(tmp_path_factory):
    """32-px colour images whose content fills the frame (smooth random fields)."""
    rng = np.random.default_rng(1)
    coarse = rng.integers(0, 256, size=(120, 4, 4, 3)).astype(np.float32)
    x = np.kron(coarse, np.ones((1, 8, 8, 1), dtype=np.float32)) + rng.normal(0, 20, size=(120, 32, 32, 3))
    return _npz(tmp_path_factory.mktemp("rgb") / "photos.npz", x.clip(0, 255).astype(np.uint8))


def test_plain_border_share_tells_shapes_from_photos():
    shapes = torch.zeros(4, 1, 16, 16, dtype=torch.uint8)
    shapes[:, :, 5:10, 5:10] = 255
    assert plain_border_share(shapes) == 1.0
    noise = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    assert plain_border_share(noise) < 0.2


@pytest.mark.parametrize("side,size", [(8, 28), (20, 28), (28, 28), (32, 32), (40, 64), (64, 64), (178, 64)])
def test_size_is_the_smallest_net_size_holding_the_images(side, size):
    assert DataProfile(side=side, channels=3, plain_border=0.0).size == size


@pytest.mark.parametrize("name", GENERIC)
def test_generic_recipe_reads_gray_shapes_and_colour_photos(name, gray_shapes, rgb_photos):
    gray = validate(compose_config([f"experiment={name}", "dataset=npz", f"data.path={gray_shapes}"]))
    assert (gray.data.size, gray.method.clustering.augment.kind, gray.model.g_width) == (28, "affine", 16)
    rgb = validate(compose_config([f"experiment={name}", "dataset=npz", f"data.path={rgb_photos}"]))
    assert (rgb.data.size, rgb.method.clustering.augment.kind, rgb.model.g_width) == (32, "crop_jitter", 16)
    if name in ("clustergan", "nemgan"):  # where the clusters come from: a net of their own for shapes, a head on a RotNet for photos
        assert (gray.method.encoder, gray.method.clustering.neighbours) == ("hybrid", 0)
        assert (rgb.method.encoder, rgb.method.clustering.neighbours, rgb.extractor.name) == ("extractor", 20, "rotnet")
    if name == "nemgan":  # mode seeking: stronger on photographs, where 0.3 drew nearly one image per mode
        assert (gray.method.mode_seeking_weight, rgb.method.mode_seeking_weight) == (0.3, 1.0)
    if name == "slcgan":  # C: a net of its own for shapes, a head on a RotNet for photos
        assert (gray.method.c_net, gray.method.clustering.neighbours) == ("own", 0)
        assert (rgb.method.c_net, rgb.method.clustering.neighbours, rgb.extractor.name) == ("extractor", 20, "rotnet")


def test_a_value_set_on_the_command_line_wins_over_auto(rgb_photos):
    cfg = validate(compose_config(["experiment=slcgan", "dataset=npz", f"data.path={rgb_photos}",
                                   "method.clustering.augment.kind=affine", "data.size=64"]))
    assert (cfg.data.size, cfg.method.clustering.augment.kind) == (64, "affine")
    plain = compose_config(["method=sngan", "dataset=digits"])
    assert resolve_auto(plain) is plain  # nothing auto: nothing read


@pytest.mark.parametrize("name", GENERIC)
def test_generic_recipe_trains_on_colour_photos(name, rgb_photos, tmp_path):
    # the RotNet under the photographs' clusterer: two training steps, in this test's own cache
    rotnet = [f"extractor.cache_dir={tmp_path / 'features'}", "extractor.train_steps=2"]
    cfg = ensure_extractor_weights(validate(compose_config([f"experiment={name}", "dataset=npz", f"data.path={rgb_photos}"]
                                                           + SMALL + rotnet)))
    res = train(cfg, tmp_path / "run")
    assert res.iteration == 2 and res.checkpoint.is_file()
    saved = OmegaConf.load(res.run_dir / "config.yaml")  # what was trained, not "auto"
    assert (saved.data.size, saved.method.clustering.augment.kind) == (32, "crop_jitter")


def test_coupled_recipe_picks_alexnet_for_shapes_and_trains_a_rotnet_for_photos(gray_shapes, rgb_photos, tmp_path):
    cache = f"extractor.cache_dir={tmp_path / 'features'}"
    gray = validate(compose_config(["experiment=coupled", "dataset=npz", f"data.path={gray_shapes}", cache]))
    assert (gray.extractor.name, gray.extractor.layer, gray.extractor.pool) == ("alexnet_random", "conv3", None)
    assert gray.method.feature_weight == 0.0  # shapes: the pair game alone follows the exemplar's class
    assert (gray.method.realism_weight, gray.method.n_gen) == (0.0, 2)  # and is the paper's schedule
    overrides = ["experiment=coupled", "dataset=npz", f"data.path={rgb_photos}", cache, "extractor.train_steps=2",
                 "extractor.pca_dim=8", "method.pair_pool=16"]
    rgb = validate(compose_config(overrides))
    assert (rgb.extractor.name, rgb.extractor.layer, rgb.extractor.pool, rgb.extractor.weights) == ("rotnet", "conv2", 4, "auto")
    assert rgb.method.feature_weight == 1.0  # photographs: G's sample must show the exemplar's RotNet features
    assert (rgb.method.realism_weight, rgb.method.n_gen) == (1.0, 1)  # and an ordinary D judges single images
    weights = Path(ensure_extractor_weights(rgb).extractor.weights)  # what lsgan.run does: trained, then cached
    assert weights.is_file() and weights.parent == tmp_path / "extractors"
    stamp = weights.stat().st_mtime_ns
    res = train(compose_config(overrides + SMALL), tmp_path / "run")  # the cached RotNet, not a new one
    assert res.iteration == 2 and weights.stat().st_mtime_ns == stamp
    assert OmegaConf.load(res.run_dir / "config.yaml").extractor.weights == str(weights)
    meta = json.loads(Path(str(weights) + ".json").read_text())
    assert 0.0 <= meta["eval_knn1_label_agreement"] <= 1.0


def test_the_auto_rotnet_of_larger_photos_learns_at_32_px_and_reads_them_resized(rgb_photos, tmp_path):
    """64-px photos: the RotNet is trained on the images read at 32 px (a quarter of the cost per step) and the
    run's features come from its inputs resized to that size."""
    import torch

    from lsgan.features.extractors import build_extractor
    from lsgan.train_extractor import at_most

    cache = f"extractor.cache_dir={tmp_path / 'features'}"
    cfg = validate(compose_config(["experiment=coupled", "dataset=npz", f"data.path={rgb_photos}", "data.size=64",
                                   cache, "extractor.train_steps=2", "extractor.pca_dim=8"]))
    assert cfg.data.size == 64 and at_most(cfg, 32).data.size == 32 and at_most(cfg, 64) is cfg
    celeba = compose_config(["dataset=celeba64"])
    assert at_most(celeba, 32).data.name == "celeba32"
    done = ensure_extractor_weights(cfg)
    meta = json.loads(Path(str(done.extractor.weights) + ".json").read_text())
    assert meta["size"] == 32 and done.data.size == 64
    E = build_extractor(done.extractor, (3, 64, 64))
    assert E.input_size == 32 and E(torch.zeros(2, 3, 64, 64)).shape[0] == 2


def test_a_method_without_its_recipe_on_photos_points_to_the_recipe(gray_shapes, rgb_photos):
    from lsgan.data.profile import recipe_hint

    photos = validate(compose_config(["method=clustergan", "dataset=npz", f"data.path={rgb_photos}"]))
    assert recipe_hint(photos, "npz") == ("[lsgan] method=clustergan without a recipe trains the paper's settings; "
                                          "for photographs the measured recipe is experiment=clustergan dataset=npz "
                                          "(docs/natural_images.md)")
    assert recipe_hint(validate(compose_config(["method=coupled", "dataset=npz", f"data.path={gray_shapes}"])),
                       "npz") is None  # shapes: the paper's settings are what the shapes recipes keep
    assert recipe_hint(validate(compose_config(["method=sngan", "dataset=npz", f"data.path={rgb_photos}"])),
                       "npz") is None  # a baseline has no recipe of its own to point to
