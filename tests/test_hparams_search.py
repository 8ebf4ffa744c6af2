"""Hyper-parameter search: ``hparams_search=<recipe>_optuna`` runs an Optuna study through Hydra's sweeper, each
trial a training run scored by ``optimized_metric`` from the run's own evaluation."""
from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys

import pytest
import yaml
from omegaconf import OmegaConf

from lsgan.compose import group_choices
from lsgan.errors import ConfigError
from lsgan.run import precheck_overrides, train
from tests.conftest import REPO, TINY

HAVE_OPTUNA = importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None
needs_optuna = pytest.mark.skipif(not HAVE_OPTUNA, reason="hydra-optuna-sweeper is not installed "
                                                          "(pip install '.[search]')")
SEARCHES = group_choices("hparams_search")


def last_logged(run_dir, key: str) -> float:
    """The last value of ``key`` in the run's metrics.csv."""
    with open(run_dir / "metrics.csv", newline="") as fh:
        values = [row[key] for row in csv.DictReader(fh) if row.get(key)]
    return float(values[-1])


def test_train_returns_the_optimized_metric_it_logged(tiny_cfg, tmp_path):
    cfg = tiny_cfg("method=clustergan", "metrics.names=[cluster]", "optimized_metric=cluster/acc")
    result = train(cfg, tmp_path)
    # evaluated once, at the last iteration (metrics.every is 0), and logged with the run's other numbers
    assert result.iteration == 4 and {"cluster", "cluster/acc", "cluster/nmi"} <= set(result.metrics)
    assert result.optimized == result.metrics["cluster/acc"] == last_logged(tmp_path, "cluster/acc")
    assert 0.0 <= result.optimized <= 1.0


def test_a_metric_the_run_does_not_compute_is_one_line_before_training(tiny_cfg):
    from lsgan.config import validate

    with pytest.raises(ConfigError, match=r"optimized_metric=cond_acc: metrics.names=\['cluster'\] does not compute "
                                          r"it; add cond_acc to metrics.names") as err:
        validate(tiny_cfg("method=clustergan", "metrics.names=[cluster]", "optimized_metric=cond_acc"))
    assert "\n" not in str(err.value)


def test_a_name_the_evaluation_did_not_report_lists_the_available_ones():
    from lsgan.search import optimized_metric

    reported = {"cluster": 0.5, "cluster/acc": 0.5, "cluster/nmi": 0.4}
    assert optimized_metric(reported, "cluster/nmi") == 0.4
    with pytest.raises(ConfigError) as err:
        optimized_metric(reported, "cluster/accuracy", iteration=7)
    assert str(err.value) == ("optimized_metric=cluster/accuracy: not among the numbers the run's evaluation reported "
                              "at iteration 7; available: cluster, cluster/acc, cluster/nmi")


def test_hparams_search_without_the_plugin_says_how_to_install_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("hydra_plugins.hydra_optuna") else real(name, *a))
    with pytest.raises(ConfigError, match=r"hparams_search=slcgan_mnist_optuna needs Hydra's Optuna sweeper: "
                                          r"pip install '\.\[search\]'"):
        precheck_overrides(["experiment=slcgan_mnist", "hparams_search=slcgan_mnist_optuna"])
    with pytest.raises(ConfigError, match="hparams_search=nope is not a known choice; accepted values: "
                                          + ", ".join(SEARCHES)):
        precheck_overrides(["hparams_search=nope"])


@needs_optuna
@pytest.mark.parametrize("search", SEARCHES)
def test_each_search_composes_with_its_recipe_and_searches_real_keys(search):
    from hydra import compose, initialize_config_dir

    from lsgan.compose import CONF_DIR
    from lsgan.config import validate

    overrides = [f"experiment={search.removesuffix('_optuna')}", f"hparams_search={search}"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        hydra = compose("config", overrides=overrides, return_hydra_config=True).hydra
        cfg = compose("config", overrides=overrides + ["dataset=digits"])  # validate reads the data (size: auto)
    sweeper = hydra.sweeper
    assert str(hydra.mode).endswith("MULTIRUN") and sweeper.direction in ("maximize", "minimize")
    assert sweeper.n_trials >= 2 and sweeper.sampler.seed is not None and cfg.trainer.max_minutes > 0
    for key in sweeper.params:  # every searched key is one the recipe has
        assert OmegaConf.select(cfg, key, default="missing") != "missing", key
    validate(cfg)  # optimized_metric is one of metrics.names


@needs_optuna
def test_a_two_trial_search_reports_its_best_trial(tmp_path):
    """A real search on digits with tiny nets: two trials with different sampled values, each scored by its own
    evaluation, and optimization_results.yaml holding the best of them; run_dir=DIR is the search's dir, each trial
    a folder of its own in it."""
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "lsgan.run", "experiment=clustergan_mnist", "hparams_search=clustergan_mnist_optuna",
         "dataset=digits", *TINY, "trainer.max_minutes=null", "hydra.sweeper.n_trials=2", f"run_dir={sweep}"],
        cwd=REPO, env={**os.environ, "WANDB_MODE": "offline"},
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = sorted(p for p in sweep.iterdir() if (p / "config.yaml").is_file())
    assert [t.name.split("_")[0] for t in trials] == ["0", "1"]
    params = list(OmegaConf.load(REPO / "conf/hparams_search/clustergan_mnist_optuna.yaml").hydra.sweeper.params)
    sampled, scores = [], []
    for trial in trials:
        config = OmegaConf.load(trial / "config.yaml")
        sampled.append({key: OmegaConf.select(config, key) for key in params})
        assert config.optimized_metric == "cluster/acc" and config.data.name == "digits"
        scores.append(last_logged(trial, "cluster/acc"))  # the trial's own evaluation, at its last iteration
    assert all(sampled[0][key] != sampled[1][key] for key in params)  # each value sampled anew
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    best = max(range(2), key=lambda i: scores[i])  # direction: maximize
    assert results["best_value"] == pytest.approx(scores[best], abs=1e-12)
    assert results["best_params"] == pytest.approx(sampled[best])
