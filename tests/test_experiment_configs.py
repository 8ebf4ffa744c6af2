"""Every recipe in conf/experiment/ composes, validates and trains for two iterations on tiny data
(the lightning-hydra-template's experiment tests): a recipe that stops composing after a schema
change fails here, not in a user's 30-minute run."""
from __future__ import annotations

import math

import pytest

from lsgan.config import validate
from lsgan.run import compose_config, train
from tests.conftest import REPO, SHARED, TINY, needs_shared

EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))
# Tiny nets and a few real images; each recipe keeps its own method, loss, prior and options.
SMALL = [o for o in TINY if not o.startswith("method.z_dim")] + [
    "trainer.steps=2", "model.g_width=8", "model.d_width=8", "data.batch_size=16", "data.max_train=128",
    "extractor.pca_dim=8", "metrics.every=0"]


def test_experiment_group_is_not_empty():
    assert {"clustergan_mnist", "nemgan_mnist", "nemgan_mnist04", "slcgan_mnist", "coupled_mnist",
            "coupled_mnist_paper"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_names_its_method(name):
    cfg = validate(compose_config([f"experiment={name}", "data.root=../shared/data"]))
    assert name.startswith(cfg.method.name)
    assert cfg.data.name == "mnist"


@needs_shared
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_trains_two_iterations(name, tmp_path):
    overrides = [f"experiment={name}", f"data.root={SHARED}", f"extractor.cache_dir={tmp_path / 'features'}"] + SMALL
    if name.startswith("coupled"):
        overrides.append("method.pair_pool=16")
    if name == "nemgan_mnist04":  # two classes at 02:98: enough images that the 2 % class is not empty
        overrides.append("data.max_train=600")
    res = train(compose_config(overrides), tmp_path / "run")
    assert res.iteration == 2
    rows = res.metrics_csv.read_text().strip().splitlines()
    assert len(rows) == 3  # header + one row per iteration (log_every=1)
    assert res.checkpoint.is_file() and res.samples.is_file()
    assert all(math.isfinite(float(v)) for v in rows[-1].split(",") if v)
