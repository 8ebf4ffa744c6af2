"""lsgan.leaderboard: every row trained and evaluated on equal terms, the table written, a rerun resumes."""
from __future__ import annotations

import json

import pytest

from lsgan import leaderboard as L

TINY = ["model.g_width=8", "model.d_width=8", "data.batch_size=16", "trainer.steps=3", "trainer.ckpt_every=0",
        "trainer.sample_every=3", "trainer.log_every=1", "trainer.accelerator=cpu", "data.max_train=256",
        "metrics.ref_n=200"]


def test_bad_arguments_are_one_line_errors(capsys):
    assert L.main(["seeds=2"]) == 2 and "dataset=: required" in capsys.readouterr().err
    assert L.main(["dataset=digits", "rows=sngan,vae"]) == 2
    assert "vae is not a row; accepted: coupled, clustergan" in capsys.readouterr().err
    assert L.main(["dataset=digits", "seeds=0"]) == 2 and "seeds=0: need an integer >= 1" in capsys.readouterr().err
    assert L.main(["dataset=digits", "budget=3"]) == 2 and "budget=3: not a key=value" in capsys.readouterr().err


def test_a_board_of_two_rows_trains_evaluates_writes_and_resumes(tmp_path, capsys, monkeypatch):
    args = ["dataset=digits", "rows=clustergan,sngan", "seeds=1", "budget_minutes=5", "n=64", "parallel=2",
            f"runs={tmp_path / 'runs'}", f"out={tmp_path / 'out'}", *TINY]
    pytest.importorskip("sklearn")
    assert L.main(args) == 0
    md = (tmp_path / "out" / "leaderboard_digits.md").read_text()
    assert "Equal terms" in md and "trained on: " in md and "| clustergan | 1 |" in md and "| sngan | 1 |" in md
    assert (tmp_path / "out" / "figures" / "leaderboard_digits_clustergan.png").is_file()
    csv_rows = (tmp_path / "out" / "leaderboard_digits.csv").read_text().splitlines()
    assert csv_rows[0].startswith("method,seeds,ACC,ACC_std") and len(csv_rows) == 3
    clustergan = next(r for r in csv_rows if r.startswith("clustergan")).split(",")
    assert 0.0 <= float(clustergan[2]) <= 1.0  # the clusterer's ACC
    sngan = next(r for r in csv_rows if r.startswith("sngan")).split(",")
    assert sngan[2] == ""  # no clusterer: ACC does not apply
    first = json.loads((tmp_path / "runs" / "digits" / "sngan" / "seed0" / "board.json").read_text())
    assert "trainer.max_minutes=5" in first["command"]
    # resume: a finished board is neither trained nor evaluated again; an interrupted run starts over
    stamp = (tmp_path / "runs" / "digits" / "clustergan" / "seed0" / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    (tmp_path / "runs" / "digits" / "sngan" / "seed0" / "board.json").unlink()
    record = tmp_path / "out" / "leaderboard_digits_runs.csv"  # an interrupted run never reached the record
    record.write_text("".join(line for line in record.read_text().splitlines(True) if not line.startswith("sngan")))
    calls = []
    real_call = L._call
    monkeypatch.setattr(L, "_call", lambda cmd, log, **kw: (calls.append(cmd[2]), real_call(cmd, log, **kw)))
    assert L.main(args) == 0
    assert calls == ["lsgan.run", "lsgan.evaluate"]  # the interrupted run alone, trained anew and evaluated
    assert (tmp_path / "runs" / "digits" / "clustergan" / "seed0" / "checkpoints" / "last.ckpt").stat().st_mtime_ns == stamp
    # the per-run record: the table is folded from it, and a board whose run folders are gone runs nothing
    record = record.read_text().splitlines()
    assert record[0].startswith("row,seed,budget_minutes,n,train_minutes,device,eval/cluster") and len(record) == 3
    assert record[1].startswith("clustergan,0,5,64,")
    import shutil

    shutil.rmtree(tmp_path / "runs")
    calls.clear()
    assert L.main(args) == 0 and calls == []
    assert (tmp_path / "out" / "leaderboard_digits.csv").read_text().splitlines() == csv_rows
    # other terms (another budget) are not this board's: they are run, and both records are kept
    calls.clear()
    assert L.main([a for a in args if not a.startswith("budget_minutes")] + ["budget_minutes=4",
                                                                              "rows=sngan"]) == 0
    assert calls == ["lsgan.run", "lsgan.evaluate"]
    assert len((tmp_path / "out" / "leaderboard_digits_runs.csv").read_text().splitlines()) == 4
    # a board run for some rows writes the whole table from the record
    table = (tmp_path / "out" / "leaderboard_digits.md").read_text()
    assert "| sngan | 1 |" in table and "clustergan" not in table  # the budget-4 board holds sngan alone
    calls.clear()
    assert L.main([a for a in args if not a.startswith("rows")] + ["rows=sngan"]) == 0 and calls == []
    assert "| clustergan | 1 |" in (tmp_path / "out" / "leaderboard_digits.md").read_text()
