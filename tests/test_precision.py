"""trainer.precision=auto: bf16-mixed only where bf16 is native (feature flags), else 32-true."""
import pytest
import torch

from lsgan import precision as P
from lsgan.run import train
from tests.test_run import read_csv


@pytest.fixture
def cpu_bf16(monkeypatch):
    def set_native(native: bool):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    return set_native


@pytest.mark.parametrize("native,expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_follows_the_cpu_feature_flags(cpu_bf16, native, expected):
    cpu_bf16(native)
    assert P.native_bf16("cpu") is native
    assert P.resolve_precision("auto", "cpu") == expected


def test_explicit_precisions_are_kept_and_emulated_bf16_is_warned(cpu_bf16):
    cpu_bf16(False)
    assert P.resolve_precision("32-true", "cpu") == "32-true"
    with pytest.warns(UserWarning, match=r"trainer.precision=bf16-mixed: CPU .* no native bf16"):
        assert P.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    cpu_bf16(True)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert P.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"


def test_unmeasured_accelerators_resolve_to_fp32():
    assert P.native_bf16("mps") is False
    assert P.resolve_precision("auto", "mps", warn=False) == "32-true"


@pytest.mark.parametrize("native", [False, True])
def test_a_run_at_auto_trains_at_the_resolved_precision(tiny_cfg, tmp_path, cpu_bf16, capsys, native):
    import pytorch_lightning as pl

    seen = []

    class Precision(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            seen.append(trainer.precision)

    cpu_bf16(native)
    res = train(tiny_cfg("trainer.precision=auto", "trainer.steps=2", "trainer.accelerator=cpu"), tmp_path,
                callbacks=[Precision()])
    out = capsys.readouterr()
    want = "bf16-mixed" if native else "32-true"
    assert seen == [want]
    assert f"trainer.precision=auto -> {want} (CPU (" in out.out
    assert res.iteration == 2
    losses = [float(r["loss_d"]) for r in read_csv(tmp_path / "metrics.csv") if r.get("loss_d")]
    assert losses and all(v == v for v in losses)  # logged, not NaN
    # the saved config keeps the request, so a resume elsewhere resolves for its own machine
    assert "precision: auto" in (tmp_path / "config.yaml").read_text()


def test_resume_says_when_auto_resolves_differently_than_the_checkpoint_was_trained(tiny_cfg, tmp_path, cpu_bf16,
                                                                                   capsys):
    cpu_bf16(True)
    train(tiny_cfg("trainer.precision=auto", "trainer.steps=2", "trainer.accelerator=cpu"), tmp_path)
    blob = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert blob["lsgan"]["precision"] == "bf16-mixed"
    capsys.readouterr()
    cpu_bf16(False)  # the same run continued on a CPU without native bf16
    res = train(tiny_cfg("trainer.precision=auto", "trainer.steps=4", "trainer.accelerator=cpu"), tmp_path)
    assert res.iteration == 4
    assert "the checkpoint was trained at bf16-mixed; continuing at 32-true" in capsys.readouterr().out
