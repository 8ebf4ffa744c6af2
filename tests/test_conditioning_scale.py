"""The conditioning terms reach G at init.

clustergan's E, nemgan's h1 and slcgan's C carry the condition back to G. Built from a D trunk
with D's init they started ~1e-5 in scale, so at init the gradient G got from the conditioning
terms was ~1,000x below the adversarial one and the method ran as a plain GAN while the game
settled. These tests pin the fix (lsgan.nets.layers.Encoder) on every MNIST recipe in
conf/experiment/, and the inference-mode contract of ``sample`` / ``condition_of``.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from lsgan.losses import latent_norm_loss, mode_matching_loss, slcgan_g_hinge, slcgan_mi_loss
from lsgan.methods import METHODS
from lsgan.methods.base import DataInfo
from lsgan.nets.ema import ema_decay_at
from lsgan.data.profile import DataProfile, auto_values
from lsgan.nets import build_encoder
from lsgan.run import compose_config
from tests.conftest import REPO

MNIST = DataInfo(shape=(1, 28, 28), name="mnist")
ENCODER_RECIPES = ["clustergan_mnist", "nemgan_mnist", "nemgan_mnist04", "slcgan_mnist"]


def build(experiment, *overrides, seed=0):
    torch.manual_seed(seed)
    # what the MNIST recipes read from MNIST (their `auto` keys; no data is loaded here)
    cfg = compose_config([f"experiment={experiment}", *overrides])
    for key, value in auto_values(DataProfile(side=28, channels=1, plain_border=1.0)).items():
        if OmegaConf.select(cfg, key, default=None) == "auto":
            OmegaConf.update(cfg, key, value, merge=False)
    method = METHODS[cfg.method.name](cfg, MNIST)
    method.train()
    return method


def grad_norm(loss, params):
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.sqrt(sum((g ** 2).sum() for g in grads if g is not None)).item()


def generator_gradients(m, n=64):
    """Norm of the gradient on G's parameters of the adversarial term and of each conditioning
    term of the method's G objective, each weighted as in training."""
    params = list(m.G.parameters())
    name = m.mcfg.name
    if name == "clustergan":
        z, modes = m.draw_latent(n)
        fake = m.G(z)
        adv = m.g_loss_fn(m.D(fake))
        cond, _ = m.code_loss(z, modes, m.E(fake))  # β_n·recovery + β_c·CE, as g_step weights them
        return {"adv": grad_norm(adv, params), "cond": grad_norm(cond, params)}
    if name == "nemgan":
        z, y = m.draw_latent(n)
        fake = m.G(z)
        adv = m.g_loss_fn(m.D(fake))
        z_hat = m.h1(fake)
        norm = m.mcfg.norm_weight * latent_norm_loss(z, z_hat, m.mcfg.norm_p)
        mode = m.mcfg.mode_weight * mode_matching_loss(m.h2(z_hat), y, m.mcfg.am_margin, m._logit_scale)
        return {"adv": grad_norm(adv, params), "norm": grad_norm(norm, params), "mode": grad_norm(mode, params)}
    if name == "slcgan":
        c = m.draw_conditions(n)
        fake = m.G(m.draw_z(n), c)
        u, s = m.D.forward_parts(fake, F.one_hot(c, m.num_conditions).float())
        mi = m.mi_weight * slcgan_mi_loss(m.C(fake), c)
        return {"adv": grad_norm(slcgan_g_hinge(u, s), params), "mi": grad_norm(mi, params)}
    raise AssertionError(name)


def test_every_experiment_has_its_recipe_file():
    have = {p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")}
    assert set(ENCODER_RECIPES) <= have


@pytest.mark.parametrize("experiment", ENCODER_RECIPES)
def test_conditioning_gradient_reaches_g_at_init(experiment):
    grads = generator_gradients(build(experiment))
    adv = grads.pop("adv")
    assert adv > 0
    for term, g in grads.items():
        # at least 5 % of the adversarial gradient (it was ~0.1 % before the encoder fix)
        assert g >= 0.05 * adv, f"{experiment}: {term} gradient {g:.3g} vs adversarial {adv:.3g}"


@pytest.mark.parametrize("arch", ["dcgan", "resnet", "mlp"])
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_encoder_outputs_start_at_unit_scale(arch, spectral_norm):
    torch.manual_seed(0)
    model = OmegaConf.create(dict(arch=arch, g_width=16, d_width=16, mlp_width=64, mlp_depth=2,
                                  spectral_norm=True, g_batchnorm=True))
    shape = (2,) if arch == "mlp" else (1, 28, 28)
    E = build_encoder(model, shape, 10, spectral_norm=spectral_norm)
    x = torch.rand((64,) + shape) * 2 - 1
    with torch.no_grad():
        out = E(x)
    # a softmax over these logits is neither uniform (std ~1e-5 before) nor one-hot (sum pooling)
    assert 0.3 < out.std().item() < 3.0
    p = out.softmax(dim=1).max(dim=1).values
    assert 0.12 < p.mean().item() < 0.9


def test_ema_warm_up():
    assert ema_decay_at(0, 1000, 0.999) == 0.0 and ema_decay_at(999, 1000, 0.999) == 0.0
    assert ema_decay_at(1000, 1000, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(1090, 1000, 0.999) == pytest.approx(91 / 100)
    assert ema_decay_at(10 ** 7, 1000, 0.999) == 0.999


@pytest.mark.parametrize("experiment", ENCODER_RECIPES)
def test_sample_and_condition_of_run_in_eval_mode(experiment):
    m = build(experiment, "model.g_width=8", "model.d_width=8", "method.ema_decay=null")
    bn = [mod for mod in m.G.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    assert bn, "the recipe's G has BatchNorm"
    with torch.no_grad():  # give BN running statistics that differ from a fresh batch's
        for mod in bn:
            mod.running_mean.fill_(0.3)
            mod.running_var.fill_(2.0)
    stats = [mod.running_mean.clone() for mod in bn]
    modes = [mod.training for mod in m.modules()]  # train mode, but EMA copies (slcgan's C) stay in eval
    assert m.training and m.G.training
    z = torch.randn(64, m.latent_dim)
    one = m.sample_from_noise(z[:4], condition=0)
    batch = m.sample_from_noise(z, condition=0)[:4]
    # running statistics, not batch statistics: a sample does not depend on its batch
    assert torch.allclose(one, batch, atol=1e-5)
    assert [mod.training for mod in m.modules()] == modes  # the caller's modes are restored
    assert all(torch.equal(s, mod.running_mean) for s, mod in zip(stats, bn))
    ids = m.condition_of(torch.rand(8, 1, 28, 28) * 2 - 1)
    assert ids.shape == (8,) and m.training and m.G.training
