"""What a person sees at the console: run.log, progress lines, labelled sample grids, no library noise."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lsgan.errors import ConfigError
from lsgan.run import train
from tests.conftest import TINY

CLI_ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
# lines a library prints about its own API or offers as advice: none may come from lsgan's calls
NOISE = ("LeafSpec", "weights_only", "Tip:", "💡", "litlogger", "GPU available", "TPU available",
         "FutureWarning", "DeprecationWarning", "Traceback")


def console_lines(text: str):
    return [line for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------- run.log
def test_cli_with_run_dir_writes_only_there_and_run_log_is_its_console(tmp_path):
    cwd, run_dir = tmp_path / "cwd", tmp_path / "run"
    cwd.mkdir()
    args = ["method=sngan", *[o for o in TINY if not o.startswith(("trainer.progress_bar", "trainer.log_every"))],
            "trainer.progress_bar=true", "trainer.log_every=2", f"run_dir={run_dir}"]
    out = subprocess.run([sys.executable, "-m", "lsgan.run", *args], cwd=cwd, env=CLI_ENV,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert list(cwd.iterdir()) == []  # no runs/<name>/ beside the given run_dir
    console = console_lines(out.stdout) + console_lines(out.stderr)
    logged = console_lines((run_dir / "run.log").read_text())
    assert sorted(logged) == sorted(console)
    # not a terminal: one plain progress line per trainer.log_every iterations, then the summary
    assert [line.split(" it/s")[0].rsplit(" ", 1)[0] for line in logged if " it/s " in line] == [
        "[lsgan] sngan iteration 2/4", "[lsgan] sngan iteration 4/4"]
    assert any(line.startswith("[lsgan] done: 4 iterations") for line in logged)
    assert not [line for line in console if any(n in line for n in NOISE)], console


def test_a_rerun_appends_to_run_log(tmp_path, tiny_cfg):
    train(tiny_cfg("method=sngan", "trainer.steps=2"), tmp_path)
    train(tiny_cfg("method=sngan", "trainer.steps=3"), tmp_path)
    text = (tmp_path / "run.log").read_text()
    assert text.count("[lsgan] done:") == 2 and "resuming from" in text and text.index("done: 2") < text.index("done: 3")


def test_a_refused_rerun_logs_its_error_and_a_refused_first_run_leaves_nothing(tmp_path, tiny_cfg):
    train(tiny_cfg("method=sngan", "trainer.steps=2"), tmp_path)
    with pytest.raises(ConfigError):
        train(tiny_cfg("method=sngan", "trainer.steps=3", "model.g_width=8"), tmp_path)
    last = (tmp_path / "run.log").read_text().splitlines()[-1]
    assert last.startswith("error: resume=") and "model.g_width" in last
    fresh = tmp_path / "fresh"
    with pytest.raises(ConfigError):
        train(tiny_cfg("method=sngan", "data.batch_size=4000"), fresh)
    assert not fresh.exists()


def test_run_log_keeps_the_last_frame_of_a_redrawn_line_without_colour_codes(tmp_path, capsys):
    from lsgan.console import run_log

    with run_log(tmp_path / "run.log"):
        sys.stderr.write("\rbar 1/3")
        sys.stderr.write("\rbar 2/3")
        sys.stderr.write("\r\x1b[32mbar 3/3\x1b[0m\n")
        print("[lsgan] plain line")
        sys.stdout.write("no newline at the end")
    assert (tmp_path / "run.log").read_text() == "bar 3/3\n[lsgan] plain line\nno newline at the end\n"
    captured = capsys.readouterr()
    assert "bar 2/3" in captured.err and "[lsgan] plain line" in captured.out  # the console is unchanged
    assert sys.stdout is not None and not type(sys.stdout).__name__ == "_Tee"


# --------------------------------------------------------------------------- progress of long steps
def test_progress_prints_count_total_and_rate_now_and_then(monkeypatch, capsys):
    from lsgan.console import Progress

    with Progress("generating samples", 30, "images") as p:  # a quick step: nothing printed
        p.update(30)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(Progress, "every_s", 0.0)
    with Progress("generating samples", 30, "images") as p:
        for _ in range(3):
            p.update(10)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"[lsgan] generating samples: {k}/30 images" for k in (10, 20, 30, 30)]
    assert lines[0].endswith("images/s)") and "(33%, " in lines[0] and lines[-1].startswith(
        "[lsgan] generating samples: 30/30 images (100%, done in")
    monkeypatch.setenv("LSGAN_PROGRESS", "0")
    with Progress("quiet", 3) as p:
        p.update(3)
    assert capsys.readouterr().err == ""


def test_generation_and_feature_passes_report_progress(monkeypatch, capsys, tiny_cfg):
    import torch

    from lsgan.console import Progress
    from lsgan.generation import generate
    from lsgan.metrics.inception import batched_features
    from lsgan.run import build_datamodule, build_method

    cfg = tiny_cfg("method=cgan")
    method = build_method(cfg, build_datamodule(cfg)).eval()
    monkeypatch.setattr(Progress, "every_s", 0.0)
    assert len(generate(method, 25, batch_size=4)) == 25
    batched_features(torch.nn.Flatten(), torch.zeros(10, 1, 4, 4), 4, what="Inception features of the reference images")
    err = capsys.readouterr().err.splitlines()
    generating = [line for line in err if line.startswith("[lsgan] generating samples: ")]
    assert generating[-1].startswith("[lsgan] generating samples: 25/25 images (100%, done in")
    assert len(generating) == 10 + 1  # 25 over 10 conditions in batches of <= 4: one line per batch, then done
    assert [line.split(" (")[0] for line in err if "reference" in line] == [
        f"[lsgan] Inception features of the reference images: {k}/10 images" for k in (4, 8, 10, 10)]
