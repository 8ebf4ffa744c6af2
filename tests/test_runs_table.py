"""python -m lsgan.runs: one table of every run under a folder (overrides, iteration, last metrics)."""
from __future__ import annotations

import csv

from lsgan.run import train
from lsgan.runs import main


def test_runs_table_lists_each_run_with_its_overrides_iteration_and_metrics(tiny_cfg, tmp_path, capsys):
    cg = ("method=clustergan", "prior.dim=16", "prior.k=4", "trainer.steps=2")
    train(tiny_cfg(*cg, "metrics.every=2", "metrics.names=[cluster]", "metrics.n_samples=16"), tmp_path / "a",
          overrides=["method=clustergan", "seed=3"])
    train(tiny_cfg("method=sngan", "trainer.steps=1"), tmp_path / "nested" / "b")  # from Python: no overrides
    capsys.readouterr()  # the training runs' own output
    assert main([str(tmp_path), "--csv", str(tmp_path / "runs.csv")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[:5] == ["run", "method", "dataset", "iteration", "overrides"] and len(printed) == 3
    rows = {r["run"]: r for r in csv.DictReader(open(tmp_path / "runs.csv"))}
    assert set(rows) == {"a", "nested/b"}
    a, b = rows["a"], rows["nested/b"]
    assert (a["method"], a["iteration"], a["overrides"]) == ("clustergan", "2", "method=clustergan seed=3")
    assert 0 <= float(a["cluster/acc"]) <= 1 and "loss_d" not in a  # metrics, not losses
    assert (b["method"], b["iteration"], b["overrides"], b["cluster/acc"]) == ("sngan", "1", "", "")


def test_runs_table_on_a_missing_or_empty_folder_says_so(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 1
    assert "no runs" in capsys.readouterr().err
