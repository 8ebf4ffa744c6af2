"""Callbacks from config: ``callbacks=<file>`` or ``+callbacks.<name>._target_=...`` adds Lightning callbacks
beside lsgan's own, instantiated with their arguments; bad entries are one line before any work."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl

from lsgan.config import ConfigError
from lsgan.run import train


class Recorder(pl.Callback):
    """Counts the training batches it sees (class-level, so the test reads what the run's instance saw)."""

    seen = []

    def __init__(self, tag: str = "x"):
        self.tag = tag

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        Recorder.seen.append((self.tag, pl_module.iteration))


def test_a_callback_from_the_command_line_runs_with_its_arguments(tiny_cfg, tmp_path):
    Recorder.seen.clear()
    res = train(tiny_cfg("method=sngan", "dataset=digits", "trainer.steps=3",
                         f"+callbacks.rec._target_={__name__}.Recorder", "+callbacks.rec.tag=mine"), tmp_path / "run")
    assert res.iteration == 3 and Recorder.seen == [("mine", 1), ("mine", 2), ("mine", 3)]


def test_the_summary_file_of_the_group_trains(tiny_cfg, tmp_path, caplog):
    with caplog.at_level("INFO"):
        train(tiny_cfg("method=sngan", "dataset=digits", "trainer.steps=1", "callbacks=summary"), tmp_path / "run")
    assert "Trainable params" in caplog.text  # Lightning logs its summary


@pytest.mark.parametrize("entry,needle", [
    (["+callbacks.bad.tag=1"], "callbacks.bad: needs a _target_"),
    (["+callbacks.ck._target_=pytorch_lightning.callbacks.ModelCheckpoint"], "checkpoints are lsgan's own"),
    (["+callbacks.no._target_=no.such.Callback"], "callbacks.no: cannot build no.such.Callback"),
])
def test_bad_callback_entries_are_one_line_and_leave_no_run_dir(tiny_cfg, tmp_path, entry, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")) as err:
        train(tiny_cfg("method=sngan", "dataset=digits", "trainer.steps=1", *entry), tmp_path / "run")
    assert "\n" not in str(err.value) and not (tmp_path / "run").exists()
