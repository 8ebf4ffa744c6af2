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


def test_a_terminal_gets_one_progress_bar_and_no_plain_lines(tmp_path, tiny_cfg, monkeypatch, capsys):
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ProgressBar

    from lsgan.callbacks import IterationProgressBar, PlainProgress

    seen = {}

    class Peek(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            seen["bars"] = [c for c in trainer.callbacks if isinstance(c, (ProgressBar, PlainProgress))]

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    train(tiny_cfg("method=sngan", "trainer.progress_bar=true"), tmp_path, callbacks=[Peek()])
    assert [type(c) for c in seen["bars"]] == [IterationProgressBar]
    assert "iteration 4/4" not in capsys.readouterr().out  # the bar, not PlainProgress's lines


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
    assert [line.split(" (")[0] for line in lines] == [f"[lsgan] generating samples: {k}/30 images" for k in (10, 20, 30)]
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
    assert len(generating) == 10  # 25 over 10 conditions in batches of <= 4: a line per batch, the last one says done
    assert [line.split(" (")[0] for line in err if "reference" in line] == [
        f"[lsgan] Inception features of the reference images: {k}/10 images" for k in (4, 8, 10)]


# --------------------------------------------------------------------------- labelled sample grids
def test_labelled_grid_adds_a_margin_and_keeps_the_images_pixel_for_pixel(tmp_path):
    import numpy as np
    import torch
    from PIL import Image
    from torchvision.utils import save_image

    from lsgan.callbacks import grid_picture, save_sample_grid

    images = torch.rand(6, 3, 16, 16) * 2 - 1  # two rows of three
    save_image(images, tmp_path / "tv.png", nrow=3, normalize=True, value_range=(-1, 1), padding=1)
    save_sample_grid(images, tmp_path / "raw.png", 3)
    raw = np.asarray(Image.open(tmp_path / "raw.png").convert("RGB"))
    assert np.array_equal(raw, np.asarray(Image.open(tmp_path / "tv.png").convert("RGB")))  # no labels: torchvision's grid
    save_sample_grid(images, tmp_path / "labelled.png", 3, row_labels=["c0", "c7"], column_label="exemplar")
    out = np.asarray(Image.open(tmp_path / "labelled.png").convert("RGB"))
    top, left = out.shape[0] - raw.shape[0], out.shape[1] - raw.shape[1]
    assert top > 0 and left > 0
    assert np.array_equal(out[top:, left:], raw)  # the images, unchanged, below and right of the labels
    for r in range(2):  # ink beside each row
        assert (out[top + 1 + r * 17: top + 1 + r * 17 + 16, :left] < 128).any()
    assert (out[:top, left:left + 17] < 128).any()  # "exemplar" over the first column
    assert (out[:top, :left] == 255).all()  # nothing in the corner
    rows_only = grid_picture(images, 3, row_labels=["c0", "c7"])
    assert rows_only.size == (raw.shape[1] + left, raw.shape[0])
    # where the layout does not allow it: rows lower than the text, a header wider than the grid
    assert grid_picture(torch.rand(4, 1, 6, 6), 2, row_labels=["c0", "c1"]).size == (15, 15)
    assert grid_picture(torch.rand(2, 1, 8, 8), 1, column_label="exemplar").size == (10, 19)


def test_sample_grids_of_a_conditional_run_and_lsgan_sample_are_labelled(tmp_path, tiny_cfg):
    from PIL import Image

    from lsgan.sample import main as sample_main
    from lsgan.sample import row_conditions

    res = train(tiny_cfg("method=cgan", "trainer.steps=1"), tmp_path / "run")
    width, height = Image.open(res.samples).size
    assert height == 10 * 33 + 1 and width > 10 * 33 + 1  # ten rows c0..c9, the label margin at the left
    paths = sample_main([f"ckpt={res.checkpoint}", "n=20", f"out={tmp_path / 's'}", "device=cpu"])
    assert Image.open(paths["png"]).size[0] > 2 * 33 + 1
    import torch

    assert row_conditions(torch.tensor([3, 3, 5, 5]), 2) == ["c3", "c5"]
    assert row_conditions(torch.tensor([3, 5, 5, 5]), 2) is None and row_conditions(torch.tensor([-1, -1]), 2) is None
