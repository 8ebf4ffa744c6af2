"""experiments/: the collectors' shared evaluation cache, one collector end to end, nemgan's setting columns."""
from __future__ import annotations

import importlib.util
import json
import sys

from lsgan.run import compose_config, train
from tests.conftest import REPO, TINY

sys.path.insert(0, str(REPO / "experiments"))
import _common  # noqa: E402


def load_script(path):
    spec = importlib.util.spec_from_file_location(path.stem + "_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cached_evaluation_is_reused_only_when_it_matches(tmp_path):
    path = tmp_path / "eval.json"
    assert _common.read_cached(path, iteration=3) is None
    _common.write_cached(path, {"iteration": 3, "protocol": {"n": 10}, "acc": 0.5})
    assert _common.read_cached(path, iteration=3, protocol={"n": 10})["acc"] == 0.5
    assert _common.read_cached(path, iteration=4) is None  # newer checkpoint: recompute
    assert [p.name for p in tmp_path.iterdir()] == ["eval.json"]  # no temporary left behind
    path.write_text("{ half a file")
    assert _common.read_cached(path, iteration=3) is None  # damaged: recomputed, never trusted


def test_clustergan_collect_end_to_end(tmp_path, capsys):
    root = tmp_path / "runs"
    cfg = compose_config(TINY + ["method=clustergan", "prior.dim=16", "prior.k=4", "trainer.steps=2",
                                 "method.n_dis=1", f"metrics.cache_dir={tmp_path / 'cache'}"])
    train(cfg, str(root / "sweep" / "0_run"))
    collect = load_script(REPO / "experiments" / "clustergan" / "collect.py")
    out = tmp_path / "results.md"
    results = collect.main([str(root), "--out", str(out), "--n-samples", "40", "--device", "cpu"])
    assert len(results) == 1 and results[0]["settings"]["iteration"] == 2
    cluster = results[0]["metrics"]["cluster"]
    assert 0 <= cluster["acc"] <= 1 and 0 <= cluster["kmeans"]["acc"] <= 1  # real labels, no evaluator needed
    # no evaluator classifier cached: skipped with the reason, shown as "–" in the table
    assert "skipped" in results[0]["metrics"]["cond_acc"]
    table = out.read_text().splitlines()
    assert table[-1].startswith("| onehot_gaussian | 16 | 0.1 |") and "–" in table[-1]
    assert out.with_suffix(".csv").read_text().count("\n") == 2
    cached = json.loads((root / "sweep" / "0_run" / "clustergan_eval.json").read_text())
    assert cached["iteration"] == 2
    # a second collect reuses the cached numbers (same iteration and protocol)
    again = collect.main([str(root), "--out", str(out), "--n-samples", "40", "--device", "cpu"])
    assert again[0] == cached


def test_nemgan_collect_reads_a_runs_setting_from_its_config():
    """An experiment file's fixed values are not in a job's overrides: the setting columns come from its config."""
    collect = load_script(REPO / "experiments" / "nemgan" / "collect.py")
    cfg = {"data": {"name": "mnist", "classes": [3, 5], "class_ratio": [0.3, 0.7]},
           "prior": {"k": 2, "weights": [0.35, 0.65]}, "loss": {"name": "no_h1"},
           "method": {"semi_fraction": 0.05, "adv_loss": "hinge"}}
    overrides = {"experiment": "nemgan_mnist_biased_prior", "data.root": "../shared/data", "seed": "1",
                 "prior.weights": "[0.35,0.65]", "loss": "no_h1", "method.adv_loss": "hinge", "trainer.accelerator": "gpu"}
    assert collect.run_setting(overrides, cfg) == {
        "trainer.accelerator": "gpu", "data.name": "mnist", "data.classes": "[3,5]", "data.class_ratio": "[0.3,0.7]",
        "prior.k": "2", "prior.weights": "[0.35,0.65]", "loss.name": "no_h1", "method.adv_loss": "hinge",
        "method.semi_fraction": "0.05"}
    assert collect.run_setting({}, {"data": {"classes": None}})["data.classes"] == "–"
