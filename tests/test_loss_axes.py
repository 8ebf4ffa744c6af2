"""The two loss axes, the same for every method: ``loss=`` names the objective / ablation
(``full`` everywhere, plus each method's ablations) and ``method.adv_loss`` the adversarial form. The old
spellings fail in one line saying what to write; configs saved before the split still load and resume."""
from __future__ import annotations

import itertools
import re
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from lsgan.config import ADV_FORMS, ConfigError, upgrade_saved_config, validate
from lsgan.methods import METHODS
from lsgan.methods.base import DataInfo
from lsgan.run import compose_config, group_choices, precheck_overrides, train
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


def readme_sweep() -> list:
    """The README's example of a sweep that composes uniformly (a `python -m lsgan.run -m ... loss=full
    method.adv_loss=...` line), as its arguments."""
    for line in (REPO / "README.md").read_text().splitlines():
        text = line.strip().strip("`")
        if text.startswith("python -m lsgan.run -m") and "loss=full" in text and "method.adv_loss=" in text:
            return text.split("#")[0].split()[4:]
    raise AssertionError("README.md: no `python -m lsgan.run -m ... loss=full method.adv_loss=...` sweep line")


def test_the_readme_sweep_over_dataset_method_and_form_composes_every_job():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    axes = []
    for arg in readme_sweep():
        o = parser.parse_override(arg)
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        axes.append([f"{o.key_or_group}={v}" for v in values])
    jobs = list(itertools.product(*axes))
    keys = {a.split("=")[0] for job in jobs for a in job}
    assert {"dataset", "method", "loss", "method.adv_loss"} <= keys
    assert len({job for job in jobs}) >= 8  # datasets x methods x forms
    precheck_overrides(readme_sweep(), check_keys=True)
    for job in jobs:
        cfg = validate(compose_config(list(job)))
        assert cfg.loss.name == "full"


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


# --------------------------------------------------------------------------- configs saved before the split
def old_spelling(cfg: dict) -> dict:
    """``cfg`` (today's spelling, a plain dict) as lsgan wrote it before loss= and method.adv_loss were split."""
    out = OmegaConf.to_container(OmegaConf.create(cfg))
    method, loss = out["method"], out["loss"]
    form, gp = method.pop("adv_loss"), method.pop("gp_weight", 10.0)
    if method["name"] in ("sngan", "cgan", "clustergan"):
        loss["name"] = form
    elif method["name"] == "coupled":
        method["g_loss"] = {"ns": "ns", "minimax": "saturating"}[form]
    elif method["name"] == "nemgan":
        method["adv_loss"] = form
    loss["gp_weight"] = gp  # every old config had it
    return out


@pytest.mark.parametrize("old,expected_loss,expected_method", [
    ({"loss": {"name": "wgan_gp", "gp_weight": 5.0}, "method": {"name": "sngan"}},
     {"name": "full"}, {"name": "sngan", "adv_loss": "wgan_gp", "gp_weight": 5.0}),
    ({"loss": {"name": "minimax", "gp_weight": 10.0}, "method": {"name": "cgan"}},
     {"name": "full"}, {"name": "cgan", "adv_loss": "minimax"}),
    ({"loss": {"name": "hinge", "gp_weight": 10.0}, "method": {"name": "clustergan", "n_dis": 1}},
     {"name": "full"}, {"name": "clustergan", "n_dis": 1, "adv_loss": "hinge", "gp_weight": 10.0}),
    ({"loss": {"name": "proto_b", "gp_weight": 10.0}, "method": {"name": "coupled", "g_loss": "saturating"}},
     {"name": "proto_b"}, {"name": "coupled", "adv_loss": "minimax"}),
    ({"loss": {"name": "full", "gp_weight": 10.0}, "method": {"name": "coupled", "g_loss": "ns"}},
     {"name": "full"}, {"name": "coupled", "adv_loss": "ns"}),
    ({"loss": {"name": "no_h1", "gp_weight": 3.0}, "method": {"name": "nemgan", "adv_loss": "wgan_gp"}},
     {"name": "no_h1"}, {"name": "nemgan", "adv_loss": "wgan_gp", "gp_weight": 3.0}),
    ({"loss": {"name": "no_aug", "gp_weight": 10.0}, "method": {"name": "slcgan"}},
     {"name": "no_aug"}, {"name": "slcgan"}),  # slcgan's form was fixed: the schema default (hinge) applies
])
def test_upgrade_saved_config_translates_each_methods_old_spelling(old, expected_loss, expected_method):
    new = upgrade_saved_config(old)
    assert new["loss"] == expected_loss and new["method"] == expected_method
    assert old["loss"].get("gp_weight") is not None  # the input is not modified
    assert upgrade_saved_config(new) == new           # idempotent


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_todays_config_is_left_alone_and_its_old_spelling_reads_back_the_same(method):
    """upgrade_saved_config is the identity on today's configs, and old_spelling -> upgrade_saved_config too
    (slcgan: its form was never written, so it reads back as the schema default, hinge)."""
    form = METHODS[method].ADV_LOSSES[-1]
    cfg = OmegaConf.to_container(validate(compose_config([f"method={method}", f"method.adv_loss={form}"])),
                                 resolve=True)
    assert upgrade_saved_config(cfg) == cfg
    back = upgrade_saved_config(old_spelling(cfg))
    if method == "slcgan":
        assert "adv_loss" not in back["method"]
        back["method"]["adv_loss"] = "hinge"
    assert back == cfg


def rewrite_checkpoint_cfg(src, dst, fn) -> None:
    blob = torch.load(src, map_location="cpu", weights_only=False)
    blob["hyper_parameters"]["cfg"] = fn(blob["hyper_parameters"]["cfg"])
    torch.save(blob, dst)


def test_an_old_checkpoint_loads_and_resumes_with_its_adversarial_form(tiny_cfg, tmp_path):
    """A checkpoint whose saved config says loss.name: wgan_gp, loss.gp_weight: 5 (sngan before the split)
    rebuilds as method.adv_loss=wgan_gp, method.gp_weight=5 (lsgan.loading), and its run resumes under
    today's spelling of the same settings (resume's settings check reads it translated too)."""
    from lsgan.loading import load_method

    new = ("method=sngan", "method.adv_loss=wgan_gp", "method.gp_weight=5", "trainer.ckpt_every=2")
    run = tmp_path / "run"
    res = train(tiny_cfg(*new, "trainer.steps=2"), run)
    ckpt = res.checkpoint
    rewrite_checkpoint_cfg(ckpt, ckpt, old_spelling)
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)["hyper_parameters"]["cfg"]
    assert saved["loss"] == {"name": "wgan_gp", "gp_weight": 5.0} and "adv_loss" not in saved["method"]

    method, cfg = load_method(ckpt)
    assert (cfg.loss.name, cfg.method.adv_loss, cfg.method.gp_weight) == ("full", "wgan_gp", 5.0)
    assert (method.mcfg.adv_loss, method.mcfg.gp_weight) == ("wgan_gp", 5.0)
    from lsgan.losses import ADVERSARIAL

    assert (method.d_loss_fn, method.g_loss_fn) == ADVERSARIAL["wgan_gp"]
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.equal(v, state[k]) for k, v in method.state_dict().items())
    assert method.sample(4).shape[0] == 4

    with pytest.raises(ConfigError, match=r"method.adv_loss: 'wgan_gp' -> 'hinge'"):
        train(tiny_cfg("method=sngan", "method.gp_weight=5", "trainer.ckpt_every=2", "trainer.steps=3"), run)
    assert train(tiny_cfg(*new, "trainer.steps=3"), run).iteration == 3


def test_an_old_coupled_checkpoint_with_g_loss_loads(tiny_cfg, tmp_path):
    """coupled's old method.g_loss=saturating is method.adv_loss=minimax, through lsgan.loading and through the
    method's own constructor (Lightning's load_from_checkpoint passes the saved config straight to it)."""
    from lsgan.loading import load_method

    cfg = validate(tiny_cfg("method=coupled", "method.adv_loss=minimax", "loss=proto_c"))
    info = DataInfo(shape=(1, 32, 32), name="digits")
    m = METHODS["coupled"](cfg, info)
    old = old_spelling(OmegaConf.to_container(cfg, resolve=True))
    assert old["method"]["g_loss"] == "saturating" and "adv_loss" not in old["method"]
    blob = {"hyper_parameters": {"cfg": old, "data_info": info.__dict__}, "state_dict": m.state_dict(),
            "lsgan": {"iteration": 7}}
    torch.save(blob, tmp_path / "old.ckpt")
    loaded, loaded_cfg = load_method(tmp_path / "old.ckpt")
    assert (loaded_cfg.loss.name, loaded_cfg.method.adv_loss) == ("proto_c", "minimax")
    assert "g_loss" not in loaded_cfg.method and loaded.mcfg.adv_loss == "minimax" and loaded.iteration == 7
    direct = METHODS["coupled"](old, info)
    assert direct.mcfg.adv_loss == "minimax" and "g_loss" not in direct.hparams["cfg"]["method"]


def test_run_names_carry_both_axes(tiny_cfg):
    from lsgan.run import run_name

    assert run_name(validate(tiny_cfg("method=nemgan", "loss=no_h1", "method.adv_loss=hinge"))) == \
        "nemgan-digits-no_h1-hinge-s0"
    assert re.fullmatch(r"sngan-digits-full-hinge-s0", run_name(validate(tiny_cfg("method=sngan"))))
