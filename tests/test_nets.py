"""Networks: shapes, conditioning, projection parts, real optimizer steps, spectral norm, EMA."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.nn.utils import parametrize

from lsgan.config import ConfigError, ModelConfig
from lsgan.nets import (EMA, ClassEmbedding, ConditionalBatchNorm2d, build_discriminator, build_encoder,
                        build_generator)

B, Z, K, WIDTH = 8, 16, 5, 16
CONF = Path(__file__).resolve().parent.parent / "conf" / "model"


def cfg(arch, **over):
    base = dict(arch=arch, g_width=WIDTH, d_width=WIDTH, mlp_width=32, mlp_depth=2)
    return OmegaConf.structured(ModelConfig(**{**base, **over}))


def shape_for(arch, size=32, channels=3):
    return (2,) if arch == "mlp" else (channels, size, size)


def randomize_conditioning_(net):
    """CBN gains start at zero (G ignores y at init); give them values so y matters."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(("gain_weight", "bias_weight")):
                p.normal_(0, 0.5)


def sigma_max(weight):
    return torch.linalg.matrix_norm(weight.flatten(1), ord=2).item()


def sn_layers(net):
    return [m for m in net.modules() if parametrize.is_parametrized(m, "weight")]


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("arch,size,channels", [("dcgan", 28, 1), ("dcgan", 32, 3), ("dcgan", 64, 3),
                                                ("resnet", 32, 3), ("resnet", 64, 3), ("mlp", None, None)])
@torch.no_grad()
def test_shapes_and_range(arch, size, channels):
    torch.manual_seed(0)
    shape = shape_for(arch, size, channels)
    G, D = build_generator(cfg(arch), Z, shape), build_discriminator(cfg(arch), shape)
    x = G(torch.randn(B, Z))
    assert x.shape == (B, *shape)
    if arch != "mlp":
        assert x.min() >= -1 and x.max() <= 1
    assert D(x).shape == (B,)
    assert D.features(x).shape == (B, D.feat_dim)
    E = build_encoder(cfg(arch), shape, out_dim=7)
    assert E(x).shape == (B, 7) and E.features(x).shape == (B, E.feat_dim)


def test_paper_sizes_at_width_64():
    """At width 64 the ResNet pair is SNGAN's CIFAR model: 4.3M (G) and 1.05M (D) parameters."""
    G = build_generator(cfg("resnet", g_width=64), 128, (3, 32, 32))
    D = build_discriminator(cfg("resnet", d_width=64), (3, 32, 32))
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(G) == 4_276_739 and count(D) == 1_053_825


def test_mlp_generator_is_unbounded():
    G = build_generator(cfg("mlp"), Z, (2,))
    with torch.no_grad():
        G.out.bias.fill_(5.0)  # tanh would clip this to < 1
    assert G(torch.randn(B, Z)).min() > 1.5


# --------------------------------------------------------------------------- conditioning
def test_class_embedding_ids_onehot_soft():
    emb = ClassEmbedding(K, 6)
    ids = torch.tensor([0, 3, 4, 3])
    assert torch.allclose(emb(ids), emb(F.one_hot(ids, K).float()))
    assert torch.allclose(emb(ids), emb.proj.weight.t()[ids])  # a lookup, like nn.Embedding
    soft = torch.softmax(torch.randn(4, K), dim=1)
    all_codes = emb(torch.arange(K))
    assert torch.allclose(emb(soft), soft @ all_codes, atol=1e-6)  # soft label = mixture of class codes
    with pytest.raises(ValueError, match=f"\\(B, {K}\\)"):
        emb(torch.randn(4, K + 1))


def test_conditional_batchnorm_known_answer():
    cbn = ConditionalBatchNorm2d(3, 4)
    x = torch.randn(B, 3, 5, 5)
    code = torch.randn(B, 4)
    assert torch.allclose(cbn(x, code), F.batch_norm(x, None, None, training=True), atol=1e-5)  # zero init = BN
    with torch.no_grad():
        cbn.gain_weight.normal_()
        cbn.bias_weight.normal_()
    gain = 1 + code @ cbn.gain_weight.t()
    bias = code @ cbn.bias_weight.t()
    expected = F.batch_norm(x, None, None, training=True) * gain[:, :, None, None] + bias[:, :, None, None]
    assert torch.allclose(cbn(x, code), expected, atol=1e-5)


@pytest.mark.parametrize("arch", ["dcgan", "resnet", "mlp"])
@pytest.mark.parametrize("batchnorm", [True, False])
@torch.no_grad()
def test_conditional_generator(arch, batchnorm):
    torch.manual_seed(0)
    shape = shape_for(arch)
    G = build_generator(cfg(arch, g_batchnorm=batchnorm), Z, shape, num_classes=K).eval()
    randomize_conditioning_(G)
    z = torch.randn(B, Z)
    ids = torch.arange(B) % K
    out_ids = G(z, ids)
    assert out_ids.shape == (B, *shape)
    assert torch.allclose(out_ids, G(z, F.one_hot(ids, K).float()), atol=1e-5)
    assert not torch.allclose(out_ids, G(z, (ids + 1) % K), rtol=1e-2, atol=0)  # the label changes the sample
    soft = torch.softmax(torch.randn(B, K), dim=1)
    out_soft = G(z, soft)
    assert out_soft.shape == (B, *shape) and torch.isfinite(out_soft).all()
    with pytest.raises(ValueError, match="labels y are required"):
        G(z)


@pytest.mark.parametrize("arch", ["dcgan", "resnet", "mlp"])
@torch.no_grad()
def test_projection_discriminator(arch):
    torch.manual_seed(0)
    shape = shape_for(arch)
    D = build_discriminator(cfg(arch), shape, num_classes=K).eval()
    x = torch.randn(B, *shape)
    ids = torch.arange(B) % K
    onehot = F.one_hot(ids, K).float()
    assert torch.allclose(D(x, ids), D(x, onehot), atol=1e-5)
    unary, joint = D.forward_parts(x, ids)
    assert torch.allclose(unary + joint, D(x, ids), atol=1e-5)
    assert torch.allclose(unary, D(x), atol=1e-5)  # no label: unary term alone
    expected_joint = (D.embed(ids) * D.features(x)).sum(1)  # <e(y), φ(x)>
    assert torch.allclose(joint, expected_joint, atol=1e-4)
    assert joint.abs().max() > 0
    soft = torch.softmax(torch.randn(B, K), dim=1)
    assert D(x, soft).shape == (B,)


def test_unconditional_nets_reject_labels():
    G, D = build_generator(cfg("dcgan"), Z, (3, 32, 32)), build_discriminator(cfg("dcgan"), (3, 32, 32))
    ids = torch.zeros(B, dtype=torch.long)
    with pytest.raises(ValueError, match="unconditional"):
        G(torch.randn(B, Z), ids)
    with pytest.raises(ValueError, match="unconditional"):
        D(torch.randn(B, 3, 32, 32), ids)
    unary, joint = D.forward_parts(torch.randn(B, 3, 32, 32))
    assert torch.equal(joint, torch.zeros(B))


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
@torch.no_grad()
def test_pair_discriminator(arch):
    D = build_discriminator(cfg(arch), (6, 32, 32))
    a, b = torch.randn(B, 3, 32, 32), torch.randn(B, 3, 32, 32)
    assert D(torch.cat([a, b], dim=1)).shape == (B,)


# --------------------------------------------------------------------------- training steps
@pytest.mark.parametrize("arch", ["dcgan", "resnet", "mlp"])
def test_hinge_steps_update_parameters(arch):
    torch.manual_seed(0)
    shape = shape_for(arch)
    G = build_generator(cfg(arch), Z, shape, num_classes=K)
    D = build_discriminator(cfg(arch), shape, num_classes=K)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.0, 0.9))
    real, y = torch.rand(B, *shape) * 2 - 1, torch.arange(B) % K

    d_before = copy.deepcopy(D.state_dict())
    fake = G(torch.randn(B, Z), y).detach()
    d_loss = F.relu(1 - D(real, y)).mean() + F.relu(1 + D(fake, y)).mean()
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    assert torch.isfinite(d_loss)
    for name, p in D.named_parameters():
        # The head bias may sit still: with every logit inside the hinge margin its gradient is -1 + 1 = 0.
        if name != "head.bias":
            assert not torch.equal(p, d_before[name]), f"D parameter {name} did not move"

    def g_step():
        before = copy.deepcopy(G.state_dict())
        g_loss = -D(G(torch.randn(B, Z), y), y).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        assert torch.isfinite(g_loss)
        return {name for name, p in G.named_parameters() if torch.equal(p, before[name])}

    d_after = copy.deepcopy(D.state_dict())
    # The CBN gains start at zero, so the class embedding gets its first gradient on the second step.
    assert g_step() == {"embed.proj.weight"}
    assert g_step() == set()
    for name, p in D.named_parameters():
        assert torch.equal(p, d_after[name])  # G steps leave D alone


# --------------------------------------------------------------------------- spectral norm
@pytest.mark.parametrize("arch", ["dcgan", "resnet", "mlp"])
def test_spectral_norm_on_every_layer(arch):
    D = build_discriminator(cfg(arch), shape_for(arch), num_classes=K)
    layers = [m for m in D.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(sn_layers(D)) == len(layers) > 0
    assert not sn_layers(build_discriminator(cfg(arch, spectral_norm=False), shape_for(arch)))


def test_spectral_norm_bounds_largest_singular_value():
    torch.manual_seed(0)
    D = build_discriminator(cfg("dcgan"), (3, 32, 32))
    for layer in sn_layers(D):  # registration already ran 15 power iterations
        assert sigma_max(layer.weight) == pytest.approx(1.0, abs=0.05)
    conv = D.trunk.body[2]  # a 4×4 conv
    raw = conv.parametrizations.weight.original
    with torch.no_grad():  # a 50× larger weight with its directions perturbed by ~10%
        raw.mul_(50.0).add_(0.1 * torch.randn_like(raw))
    assert sigma_max(raw) > 10
    D.train()
    for _ in range(100):  # in training mode every read of .weight (so every forward) is one power iteration
        for layer in sn_layers(D):
            layer.weight
    assert sigma_max(conv.weight) == pytest.approx(1.0, abs=1e-3)
    for layer in sn_layers(D):
        assert sigma_max(layer.weight) == pytest.approx(1.0, abs=0.01)


def test_spectral_norm_state_dict_round_trip_and_deepcopy():
    torch.manual_seed(0)
    D = build_discriminator(cfg("resnet"), (3, 32, 32), num_classes=K)
    x, y = torch.randn(B, 3, 32, 32), torch.arange(B) % K
    D.train()
    D(x, y)  # advance the power-iteration state
    state = D.state_dict()
    assert any(k.endswith("_u") for k in state)
    torch.manual_seed(1)
    D2 = build_discriminator(cfg("resnet"), (3, 32, 32), num_classes=K)
    D2.load_state_dict(state)
    D.eval(), D2.eval()
    assert torch.equal(D(x, y), D2(x, y))
    assert torch.equal(D(x, y), copy.deepcopy(D)(x, y))


# --------------------------------------------------------------------------- EMA
def test_ema_decay_and_buffers():
    torch.manual_seed(0)
    G = build_generator(cfg("dcgan"), Z, (3, 32, 32), num_classes=K)
    ema = EMA(G)
    assert not ema.module.training and not any(p.requires_grad for p in ema.parameters())
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p))
    G(torch.randn(B, Z), torch.arange(B) % K)  # train-mode forward moves BN running stats

    start = copy.deepcopy(ema.state_dict())
    ema.update(G, decay=1.0)
    for name, p in ema.module.named_parameters():
        assert torch.equal(p, start["module." + name])  # decay 1 keeps
    for name, b in ema.module.named_buffers():
        assert torch.equal(b, dict(G.named_buffers())[name])  # buffers copied regardless

    ema.update(G, decay=0.5)
    for name, p in ema.module.named_parameters():
        assert torch.allclose(p, 0.5 * start["module." + name] + 0.5 * dict(G.named_parameters())[name])

    ema.update(G, decay=0.0)
    for name, p in ema.module.named_parameters():
        assert torch.equal(p, dict(G.named_parameters())[name])  # decay 0 copies
    G.eval()
    z, y = torch.randn(B, Z), torch.arange(B) % K
    assert torch.equal(ema(z, y), G(z, y))


def test_ema_stays_eval_and_is_in_owner_state_dict():
    G = build_generator(cfg("resnet"), Z, (3, 32, 32))
    owner = torch.nn.Module()
    owner.G, owner.G_ema = G, EMA(G)
    owner.train()
    assert owner.G.training and not owner.G_ema.module.training
    assert any(k.startswith("G_ema.module.") for k in owner.state_dict())
    with pytest.raises(ValueError, match="decay"):
        owner.G_ema.update(G, 1.5)


# --------------------------------------------------------------------------- config
@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
def test_unsupported_size_is_a_config_error(arch):
    with pytest.raises(ConfigError, match="data.size=48.*accepted values: 28, 32, 64, 128"):
        build_generator(cfg(arch), Z, (3, 48, 48))
    with pytest.raises(ConfigError, match="model.arch=.*mlp"):
        build_discriminator(cfg(arch), (2,))


def test_unknown_arch_is_a_config_error():
    model = OmegaConf.create({"arch": "vit"})
    with pytest.raises(ConfigError, match="model.arch='vit'.*dcgan, resnet, mlp"):
        build_generator(model, Z, (3, 32, 32))


@pytest.mark.parametrize("name", ["dcgan", "resnet", "mlp"])
def test_model_yaml_matches_schema(name):
    text = (CONF / f"{name}.yaml").read_text()
    assert text.startswith("# @package model")
    node = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.create(text))
    assert node.arch == name
    shape = shape_for(name)
    assert build_generator(node, Z, shape)(torch.randn(2, Z)).shape == (2, *shape)
