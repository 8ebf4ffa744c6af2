"""python -m lsgan.runs: one table of every run under a folder (overrides, iteration, last metrics, latest
evaluation), grouped over seeds, as text, Markdown or CSV."""
from __future__ import annotations

import csv
import io
import json
import re
import shlex
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lsgan.io import atomic_file
from lsgan.loggers import RunCSVLogger
from lsgan.metrics.results import to_jsonable
from lsgan.run import _save_config, train
from lsgan.runs import fmt, main, parser, table

REPO = Path(__file__).resolve().parent.parent


def fake_run(run_dir: Path, method="clustergan", dataset="mnist", seed=0, k=10, logged=(), evals=(),
             overrides=None) -> Path:
    """A run dir as lsgan.run and lsgan.evaluate leave it, written by their own writers where they have one:
    ``logged``: (step, {column: value}) rows of metrics.csv; ``evals``: (subfolder of eval/, iteration,
    {metric: result}) metrics.json files."""
    cfg = OmegaConf.create({"method": {"name": method}, "data": {"name": dataset}, "seed": seed,
                            "prior": {"name": "onehot_gaussian", "k": k}, "loss": {"name": "full"}})
    _save_config(cfg, run_dir, overrides)
    (run_dir / "checkpoints").mkdir()
    logger = RunCSVLogger(str(run_dir))
    for step, values in logged:
        logger.log_metrics(values, step=step)
    logger.save()
    for sub, iteration, results in evals:
        doc = {"checkpoint": str(run_dir / "checkpoints" / "last.ckpt"), "method": method, "dataset": dataset,
               "iteration": iteration, "num_conditions": k, "evaluator": None, "seconds": 0.1,
               "metrics": to_jsonable(results)}  # as lsgan.evaluate: NaN becomes null
        (run_dir / "eval" / sub).mkdir(parents=True, exist_ok=True)
        with atomic_file(run_dir / "eval" / sub / "metrics.json", "w") as fh:
            fh.write(json.dumps(doc, indent=2, allow_nan=False))
    return run_dir


def evaluated(acc: float, **more) -> dict:
    """lsgan.evaluate's results: cond_acc with a sub-number, fid skipped, cluster not finite."""
    return {"cond_acc": {"value": acc, "chance": 0.1, "protocol": {"n": 10}, "seconds": 0.2},
            "fid": {"skipped": "no Inception weights", "seconds": 0.0},
            "cluster": {"value": float("nan"), "nmi": float("nan"), "protocol": {}, "seconds": 0.1}, **more}


@pytest.fixture
def runs(tmp_path) -> Path:
    """Two clustergan seeds (the second evaluated twice: last.ckpt and an earlier checkpoint) and one sngan run."""
    root = tmp_path / "runs"
    root.mkdir()
    fake_run(root / "cg0", seed=0, overrides=["method=clustergan", "seed=0"],
             logged=[(2, {"loss_d": 1.0, "cond_acc": 0.5}), (4, {"loss_d": 0.5, "cond_acc": 0.75}),
                     (6, {"loss_d": 0.25})],
             evals=[("", 6, evaluated(0.8))])
    fake_run(root / "cg1", seed=1, logged=[(6, {"loss_d": 0.3, "cond_acc": 0.65})],
             evals=[("iter_0000002", 2, evaluated(0.1)), ("", 6, evaluated(0.9, variety={"value": 0.4}))])
    fake_run(root / "sn", method="sngan", dataset="digits", k=0, logged=[(3, {"loss_d": 2.0})])
    return root


def printed(capsys, *argv) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def csv_rows(text: str):
    return list(csv.DictReader(io.StringIO(text)))


def test_rows_hold_the_last_training_metrics_and_the_latest_evaluation(runs):
    rows = {r["run"]: r for r in table([runs])}
    cg0, cg1, sn = rows["cg0"], rows["cg1"], rows["sn"]
    # training: the last step, each metric's last logged value; losses are not results
    assert (cg0["method"], cg0["dataset"], cg0["iteration"], cg0["cond_acc"]) == ("clustergan", "mnist", "6", "0.75")
    assert cg0["overrides"] == "method=clustergan seed=0" and "loss_d" not in cg0
    # evaluation: the numbers of metrics.json, the iteration it describes; skipped / not finite: no number
    assert (cg0["eval/iteration"], cg0["eval/cond_acc"], cg0["eval/cond_acc/chance"]) == ("6", "0.8", "0.1")
    assert cg0["eval/fid"] == "" and cg0["eval/cluster"] == "" and "eval/cluster/nmi" not in cg0
    # of two evaluations, the one at the higher iteration (last.ckpt's here, not iter_0000002's)
    assert (cg1["eval/iteration"], cg1["eval/cond_acc"], cg1["eval/variety"]) == ("6", "0.9", "0.4")
    assert (sn["method"], sn["iteration"], sn["overrides"]) == ("sngan", "3", "") and "eval/iteration" not in sn


def test_plain_table_shows_a_skipped_metric_as_a_dash_and_rounds_to_three_digits(runs, capsys):
    lines = printed(capsys, str(runs)).splitlines()
    header = lines[0].split()
    assert header == ["run", "method", "dataset", "iteration", "overrides", "cond_acc", "eval/iteration",
                      "eval/cluster", "eval/cond_acc", "eval/fid", "eval/variety"]  # headlines only
    cells = {line.split()[0]: line.split() for line in lines[1:]}
    assert cells["cg1"] == ["cg1", "clustergan", "mnist", "6", "-", "0.650", "6", "-", "0.900", "-", "0.400"]
    assert cells["sn"] == ["sn", "sngan", "digits", "3", "-", "-", "-", "-", "-", "-", "-"]


def test_number_rule():
    assert [fmt(v) for v in (0.9123, 0.001234, 23.46, 181.9, 12345.6, 0.0, -0.5, 1.0)] == \
        ["0.912", "0.00123", "23.5", "182", "12346", "0", "-0.500", "1"]


def test_group_by_method_folds_seeds_into_mean_and_std(runs, capsys):
    rows = {r["method"]: r for r in csv_rows(printed(capsys, str(runs), "--group-by", "method", "--csv"))}
    cg, sn = rows["clustergan"], rows["sngan"]
    assert list(cg)[:4] == ["method", "n", "iteration", "iteration_std"]
    assert (cg["n"], cg["eval/cond_acc"], cg["eval/cond_acc_std"]) == ("2", "0.850", "0.071")  # sample std
    assert (cg["cond_acc"], cg["cond_acc_std"]) == ("0.700", "0.071")
    assert (cg["eval/fid"], cg["eval/fid_std"]) == ("", "")  # skipped in every run
    assert (cg["eval/variety"], cg["eval/variety_std"]) == ("0.400", "")  # one run has it
    assert (sn["n"], sn["iteration"], sn["iteration_std"], sn["cond_acc"]) == ("1", "3", "", "")

    text = printed(capsys, str(runs), "--group-by", "method", "--metrics", "eval/cond_acc,eval/variety")
    assert text.splitlines()[0].split() == ["method", "n", "iteration", "eval/iteration", "eval/cond_acc",
                                            "eval/variety"]
    assert "0.850 ± 0.071" in text and "0.400 (1 of 2)" in text  # the count says how many runs a mean has
    assert re.search(r"^sngan\s+1\s+3\s+-\s+-\s+-$", text, re.M)  # n=1: the value alone


def test_group_by_config_keys_and_a_list_of_them(runs, capsys):
    by_k = csv_rows(printed(capsys, str(runs), "--group-by", "prior.k", "--csv", "--metrics", "eval/cond_acc"))
    assert [(r["prior.k"], r["n"], r["eval/cond_acc"]) for r in by_k] == [("0", "1", ""), ("10", "2", "0.850")]
    by_both = csv_rows(printed(capsys, str(runs), "--group-by", "method,seed", "--csv", "--metrics", "eval/cond_acc"))
    assert [(r["method"], r["seed"], r["n"], r["eval/cond_acc"]) for r in by_both] == \
        [("clustergan", "0", "1", "0.800"), ("clustergan", "1", "1", "0.900"), ("sngan", "0", "1", "")]
    by_group = csv_rows(printed(capsys, str(runs), "--group-by", "loss,dataset", "--csv", "--metrics", "cond_acc"))
    assert [(r["loss"], r["dataset"], r["n"]) for r in by_group] == [("full", "digits", "1"), ("full", "mnist", "2")]


def test_metrics_picks_columns_in_order_with_globs(runs, capsys):
    rows = csv_rows(printed(capsys, str(runs), "--csv", "--metrics", "cond_acc,eval/cond_acc*"))
    assert list(rows[0]) == ["run", "method", "dataset", "iteration", "overrides", "cond_acc", "eval/iteration",
                             "eval/cond_acc", "eval/cond_acc/chance"]
    assert [(r["run"], r["cond_acc"], r["eval/cond_acc"], r["eval/cond_acc/chance"]) for r in rows] == \
        [("cg0", "0.750", "0.800", "0.100"), ("cg1", "0.650", "0.900", "0.100"), ("sn", "", "", "")]


def test_markdown_table(runs, capsys):
    lines = printed(capsys, str(runs), "--markdown", "--metrics", "eval/cond_acc", "--group-by", "method").splitlines()
    assert lines == ["| method | n | iteration | eval/iteration | eval/cond_acc |", "|---|---|---|---|---|",
                     "| clustergan | 2 | 6 ± 0 | 6 ± 0 | 0.850 ± 0.071 |", "| sngan | 1 | 3 | - | - |"]


def test_bad_flags_are_one_line_errors_naming_the_flag(runs, capsys):
    assert main([str(runs), "--metrics", "cond_acc,fidd"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --metrics: no column 'fidd'; available: cond_acc, ")
    assert "eval/cond_acc/chance" in err[0] and "eval/fid" in err[0]
    assert main([str(runs), "--group-by", "method,prior.kk"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --group-by: 'prior.kk' is neither a column")
    assert main([str(runs), "--csv", "runs.csv"]) == 2  # the old --csv OUT
    assert "--csv prints to stdout" in capsys.readouterr().err


def test_runs_table_on_a_missing_or_empty_folder_says_so(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 1
    assert "no runs" in capsys.readouterr().err


def test_every_documented_runs_command_parses():
    """The ``python -m lsgan.runs ...`` lines of the README and the experiments' READMEs use flags that exist."""
    seen = 0
    for path in [REPO / "README.md", *sorted(REPO.glob("experiments/*/README.md"))]:
        for m in re.finditer(r"python -m lsgan\.runs\b([^`\n|#>]*)", path.read_text()):
            args = parser().parse_intermixed_args(shlex.split(m.group(1)))  # an unknown flag: SystemExit
            assert not any(d.endswith((".csv", ".md")) for d in args.dirs), (path.name, m.group(0))  # not a DIR
            seen += 1
    assert seen >= 4


def test_the_collectors_read_runs_through_lsgan_runs(runs):
    """experiments/: what the collectors read of a run (folders, metrics.csv, config, overrides) is lsgan.runs'."""
    import importlib.util
    import sys

    def script(name):
        spec = importlib.util.spec_from_file_location(f"{name}_collect_under_test",
                                                      REPO / "experiments" / name / "collect.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    coupled, nemgan = script("coupled"), script("nemgan")
    assert coupled.find_runs([str(runs)]) == [runs / "cg0", runs / "cg1", runs / "sn"]
    assert coupled.last_logged(runs / "cg0" / "metrics.csv") == {"cond_acc": 0.75, "classifier_fid": None, "step": 6}
    described = coupled.describe(runs / "sn", [str(runs)])
    assert (described["method"], described["loss"], described["dataset"]) == ("sngan", "full", "digits")
    assert nemgan.run_overrides(runs / "cg0") == {"method": "clustergan", "seed": "0"}
    (runs / "cg1" / "checkpoints" / "last.ckpt").touch()
    assert sys.modules["_common"].find_runs([str(runs)]) == [runs / "cg1"]  # finished runs only


def test_runs_table_of_real_runs(tiny_cfg, tmp_path, capsys):
    cg = ("method=clustergan", "prior.dim=16", "prior.k=4", "trainer.steps=2")
    train(tiny_cfg(*cg, "metrics.every=2", "metrics.names=[cluster]", "metrics.n_samples=16"), tmp_path / "a",
          overrides=["method=clustergan", "seed=3"])
    train(tiny_cfg("method=sngan", "trainer.steps=1"), tmp_path / "nested" / "b")  # from Python: no overrides
    capsys.readouterr()  # the training runs' own output
    rows = {r["run"]: r for r in csv_rows(printed(capsys, str(tmp_path), "--csv"))}
    assert set(rows) == {"a", "nested/b"}
    a, b = rows["a"], rows["nested/b"]
    assert (a["method"], a["iteration"], a["overrides"]) == ("clustergan", "2", "method=clustergan seed=3")
    assert 0 <= float(a["cluster"]) <= 1 and "loss_d" not in a  # metrics, not losses
    assert (b["method"], b["iteration"], b["overrides"], b["cluster"]) == ("sngan", "1", "", "")
