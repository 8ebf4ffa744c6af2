"""The two loss axes, the same for every method (issue 11): ``loss=`` names the objective / ablation
(``full`` everywhere, plus each method's ablations) and ``method.adv_loss`` the adversarial form. The old
spellings fail in one line saying what to write."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from lsgan.config import ADV_FORMS, ConfigError, validate
from lsgan.methods import METHODS
from lsgan.methods.base import DataInfo
from lsgan.run import compose_config, group_choices, precheck_overrides
from tests.conftest import REPO

# (method, loss) for every method and each of its objectives: full and its ablations
OBJECTIVES = [(m, loss) for m in sorted(METHODS) for loss in METHODS[m].LOSSES]


def test_every_method_accepts_full_as_its_default_and_lists_its_forms():
    for name, cls in METHODS.items():
        assert cls.LOSSES[0] == "full", name
        assert cls.ADV_LOSSES and set(cls.ADV_LOSSES) <= set(ADV_FORMS), name
    expected = {"sngan": ("full",), "cgan": ("full",), "clustergan": ("full",),
                "coupled": ("full", "proto_a", "proto_b", "proto_c", "feature_cgan"),
                "nemgan": ("full", "no_h1", "no_h2", "gan_only"), "slcgan": ("full", "no_mi", "no_aug")}
    assert {m: tuple(c.LOSSES) for m, c in METHODS.items()} == expected
    # today's defaults of the adversarial form, unchanged by the split
    defaults = {m: validate(compose_config([f"method={m}"])).method.adv_loss for m in METHODS}
    assert defaults == {"sngan": "hinge", "cgan": "hinge", "clustergan": "wgan_gp", "coupled": "ns", "nemgan": "ns",
                        "slcgan": "hinge"}


def test_the_loss_group_holds_objectives_only():
    """No conf/loss file composes an adversarial form: the group is exactly the methods' objectives."""
    assert set(group_choices("loss")) == {loss for _, loss in OBJECTIVES}
    assert not set(group_choices("loss")) & set(ADV_FORMS)
    assert not (REPO / "conf" / "loss" / "default").exists()


@pytest.mark.parametrize("method,loss", OBJECTIVES)
@pytest.mark.parametrize("form", ADV_FORMS)
def test_every_objective_composes_with_each_form_the_method_accepts(method, loss, form):
    """``method=<m> loss=<objective> method.adv_loss=<form>`` composes and validates for every method, its full
    objective and each ablation, whenever the method can use the form; otherwise one line names method.adv_loss
    and the method's accepted values."""
    overrides = [f"method={method}", f"loss={loss}", f"method.adv_loss={form}"]
    if form in METHODS[method].ADV_LOSSES:
        cfg = validate(compose_config(overrides))
        assert (cfg.method.name, cfg.loss.name, cfg.method.adv_loss) == (method, loss, form)
    else:
        with pytest.raises(ConfigError) as err:
            validate(compose_config(overrides))
        msg = str(err.value)
        assert msg == (f"method.adv_loss='{form}' is not accepted by method={method}; accepted values: "
                       f"{', '.join(METHODS[method].ADV_LOSSES)}")


@pytest.mark.parametrize("method", ["sngan", "cgan", "clustergan", "nemgan"])
@pytest.mark.parametrize("form", ADV_FORMS)
def test_the_form_picks_the_adversarial_functions(tiny_cfg, method, form):
    from lsgan.losses import ADVERSARIAL

    if form not in METHODS[method].ADV_LOSSES:
        return
    extra = {"clustergan": ["prior.dim=16"], "nemgan": [], "cgan": [], "sngan": []}[method]
    cfg = validate(tiny_cfg(f"method={method}", f"method.adv_loss={form}", *extra))
    m = METHODS[method](cfg, DataInfo(shape=(1, 32, 32), num_classes=10, name="digits"))
    assert (m.d_loss_fn, m.g_loss_fn) == ADVERSARIAL[form]


# --------------------------------------------------------------------------- the old spellings
@pytest.mark.parametrize("args,message", [
    (["method=sngan", "loss=wgan_gp"],
     "loss=wgan_gp: loss= names the objective/ablation (accepted for method=sngan: full); the adversarial form is "
     "method.adv_loss=wgan_gp"),
    (["method=nemgan", "loss=ns"],
     "loss=ns: loss= names the objective/ablation (accepted for method=nemgan: full, no_h1, no_h2, gan_only); the "
     "adversarial form is method.adv_loss=ns"),
    (["experiment=clustergan_mnist", "loss=hinge"],
     "loss=hinge: loss= names the objective/ablation (accepted for method=clustergan: full); the adversarial form "
     "is method.adv_loss=hinge"),
    (["method=slcgan", "loss=minimax"],
     "loss=minimax: loss= names the objective/ablation (accepted for method=slcgan: full, no_mi, no_aug); the "
     "adversarial form is method.adv_loss=minimax, which method=slcgan does not accept (accepted: hinge)"),
    (["method=sngan", "loss.gp_weight=5"],
     "loss.gp_weight=5: the gradient-penalty weight moved next to the adversarial form; write method.gp_weight=5 "
     "(methods that accept method.adv_loss=wgan_gp)"),
    (["method=coupled", "method.g_loss=saturating"],
     "method.g_loss=saturating: coupled's G-loss form is now method.adv_loss, as for every method (g_loss=ns is "
     "adv_loss=ns, g_loss=saturating is adv_loss=minimax); write method.adv_loss=minimax"),
])
def test_old_spellings_fail_in_one_line_saying_what_to_write(args, message):
    with pytest.raises(ConfigError) as err:
        compose_config(args)  # tests, benchmarks, notebooks
    assert str(err.value) == message
    with pytest.raises(ConfigError) as err:
        precheck_overrides(args, check_keys=True)  # the CLI, before Hydra
    assert str(err.value) == message


def test_old_spellings_in_a_sweep_fail_too():
    with pytest.raises(ConfigError, match=r"^loss=wgan_gp: .*method=sngan: full\).*method.adv_loss=wgan_gp$"):
        precheck_overrides(["method=sngan,nemgan", "loss=full,wgan_gp"])


def test_a_config_in_the_old_spelling_fails_validation_saying_what_to_write():
    cfg = compose_config(["method=sngan"])
    cfg.loss.name = "wgan_gp"
    with pytest.raises(ConfigError, match=r"^loss=wgan_gp: .* the adversarial form is method.adv_loss=wgan_gp$"):
        validate(cfg)
    cfg = compose_config(["method=sngan"])
    OmegaConf.set_struct(cfg, False)
    cfg.loss.gp_weight = 5.0
    with pytest.raises(ConfigError, match=r"write method.gp_weight=5.0"):
        validate(cfg)


def test_the_cli_refuses_an_old_spelling_in_one_line():
    out = subprocess.run([sys.executable, "-m", "lsgan.run", "method=sngan", "loss=wgan_gp"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip() == ("error: loss=wgan_gp: loss= names the objective/ablation (accepted for "
                                  "method=sngan: full); the adversarial form is method.adv_loss=wgan_gp")


def test_run_names_carry_both_axes(tiny_cfg):
    from lsgan.run import run_name

    assert run_name(validate(tiny_cfg("method=nemgan", "loss=no_h1", "method.adv_loss=hinge"))) == \
        "nemgan-digits-no_h1-hinge-s0"
    assert re.fullmatch(r"sngan-digits-full-hinge-s0", run_name(validate(tiny_cfg("method=sngan"))))
