""""More like this image" for every conditional method: ``method.sample_like`` and ``lsgan.sample like=``
on a user's own files (any size, gray or colour), with tiny nets trained a few real steps on digits."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lsgan.cli import CLIError
from lsgan.loading import load_method
from lsgan.run import train
from lsgan.sample import main as sample_main
from tests.test_run import LOAD_EXTRA

METHODS = ["coupled", "clustergan", "nemgan", "slcgan"]


@pytest.fixture(scope="module")
def my_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mine")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(folder / "a.png")  # colour, not square
    Image.fromarray(rng.integers(0, 256, (50, 50), dtype=np.uint8)).save(folder / "b.jpg")     # gray
    return folder


def trained(tiny_cfg, tmp_path, method):
    res = train(tiny_cfg(f"method={method}", "dataset=digits", "trainer.steps=2", *LOAD_EXTRA.get(method, [])),
                tmp_path / "run")
    return res.checkpoint


@pytest.mark.parametrize("method", METHODS)
def test_sample_like_draws_n_per_image_for_every_method(tiny_cfg, tmp_path, my_images, method):
    ckpt = trained(tiny_cfg, tmp_path, method)
    paths = sample_main([f"ckpt={ckpt}", "n=3", f"like={my_images}", f"out={tmp_path / 'like'}"])
    data = np.load(paths["npz"])
    m, _ = load_method(ckpt)
    c, h, w = m.data_info.shape
    assert data["images"].shape == (6, h, w, c) and data["like_index"].tolist() == [0, 0, 0, 1, 1, 1]
    assert [p.endswith(n) for p, n in zip(data["like_files"], ("a.png", "b.jpg"))] == [True, True]
    grid = np.asarray(Image.open(paths["png"]))
    assert grid.shape[1] > grid.shape[0]  # two rows of 1 + 3 columns
    if method != "coupled":  # the condition found for each image is recorded with its samples
        assert set(data["conditions"].tolist()) <= set(range(m.num_conditions))
    x = torch.rand(2, c, h, w) * 2 - 1
    out = m.sample_like(x, 4)
    assert out.shape == (2, 4, c, h, w) and out.abs().max() <= 1


def test_like_errors_are_one_line(tiny_cfg, tmp_path, my_images):
    ckpt = trained(tiny_cfg, tmp_path, "sngan")
    with pytest.raises(CLIError, match="method=sngan has no conditions"):
        sample_main([f"ckpt={ckpt}", "n=2", f"like={my_images / 'a.png'}"])
    (tmp_path / "bad.png").write_text("not an image")
    slc = trained(tiny_cfg, tmp_path / "s", "slcgan")
    with pytest.raises(CLIError, match="not a readable image"):
        sample_main([f"ckpt={slc}", "n=2", f"like={tmp_path / 'bad.png'}"])
    with pytest.raises(CLIError, match="no such file or folder"):
        sample_main([f"ckpt={slc}", "n=2", f"like={tmp_path / 'missing.png'}"])
