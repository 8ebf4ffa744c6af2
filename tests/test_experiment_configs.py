"""Every recipe in conf/experiment/ composes, validates and trains for two iterations on tiny data
(the lightning-hydra-template's experiment tests): a recipe that stops composing after a schema
change fails here, not in a user's 30-minute run."""
from __future__ import annotations

import math

import pytest
from omegaconf import OmegaConf

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
    assert cfg.data.name == name.split("_")[1].rstrip("0123456789")  # mnist, mnist04 -> mnist, digits


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


def test_coupled_recipe_runs_on_any_gray_npz_without_edits(tmp_path):
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(200, 28, 28), dtype=np.uint8)  # 10 "classes" of random 28-px gray images
    y = np.arange(200) % 10
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x[:160], y_train=y[:160], x_test=x[160:], y_test=y[160:])
    overrides = ["experiment=coupled_mnist", "dataset=npz", f"data.path={path}",
                 f"extractor.cache_dir={tmp_path / 'features'}", "method.pair_pool=16"] + SMALL
    res = train(compose_config(overrides), tmp_path / "run")
    assert res.iteration == 2 and res.samples.is_file()
    from lsgan.loading import load_method

    method, _ = load_method(res.checkpoint)
    exemplars = torch.as_tensor(x[160:164]).float().div(127.5).sub(1).unsqueeze(1)
    exemplars = torch.nn.functional.interpolate(exemplars, size=tuple(method.data_info.shape[1:]))
    out = method.sample(8, condition=exemplars)
    assert out.shape == (8,) + tuple(method.data_info.shape) and out.abs().max() <= 1


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_a_sweep_carried_by_an_experiment_names_valid_choices(name):
    """An experiment's own hydra.sweeper.params (e.g. coupled_mnist_ablation's losses) compose one by one."""
    import yaml

    params = ((yaml.safe_load((REPO / "conf" / "experiment" / f"{name}.yaml").read_text()) or {})
              .get("hydra", {}).get("sweeper", {}).get("params", {}))
    for key, values in params.items():
        for value in str(values).split(","):
            cfg = validate(compose_config([f"experiment={name}", f"{key}={value}"]))
            got = cfg[key].name if key in ("loss", "model", "prior", "extractor", "method") else OmegaConf.select(cfg, key)
            assert str(got) == value


def test_the_ablation_experiment_sweeps_the_papers_losses():
    import yaml

    doc = yaml.safe_load((REPO / "conf" / "experiment" / "coupled_mnist_ablation.yaml").read_text())
    assert doc["hydra"]["sweeper"]["params"]["loss"].split(",") == ["full", "proto_a", "proto_b", "proto_c",
                                                                   "feature_cgan"]
