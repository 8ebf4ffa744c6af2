"""trainer.compile: the trained nets run through torch.compile in place and compute what eager does;
what it cannot do (a double backward) is refused in one line."""
from __future__ import annotations

import pytest
import torch

from lsgan.config import validate
from lsgan.errors import ConfigError
from lsgan.loading import load_method
from lsgan.run import train

# aot_eager traces forward and backward through dynamo and aot_autograd as inductor does, without
# generating C++: seconds on the CPU, and the same arithmetic as eager.
COMPILED = ["trainer.compile=true", "trainer.compile_backend=aot_eager"]


def _trained(tiny_cfg, tmp_path, *overrides):
    result = train(tiny_cfg("method=slcgan", "method.num_clusters=4", "trainer.ckpt_every=0", *overrides), tmp_path)
    m, _ = load_method(result.checkpoint)
    return m


def test_compiled_nets_train_to_what_eager_trains_with_the_same_checkpoint_keys(tiny_cfg, tmp_path):
    # slcgan: G, D and C all train, and C's step unfreezes itself (freeze_others_in_g_step False)
    eager = _trained(tiny_cfg, tmp_path / "eager")
    torch._dynamo.reset()
    compiled = _trained(tiny_cfg, tmp_path / "compiled", *COMPILED)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # the compiled path did run
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # in place: no _orig_mod. in checkpoints
    # Compared on what the nets compute, not weight by weight: a conv bias just before a BatchNorm has a
    # zero gradient up to rounding, which Adam scales to full steps, so its value is rounding noise that
    # the BatchNorm removes again (it differs between any two kernels, compiled or not).
    torch.manual_seed(0)
    z, x = torch.randn(8, eager.latent_dim), torch.rand(8, 1, 32, 32) * 2 - 1
    cond = torch.arange(8) % 4
    for m in (eager, compiled):
        m.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled.sample_from_noise(z, condition=cond), eager.sample_from_noise(z, condition=cond),
                                   rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(compiled.D(x, cond), eager.D(x, cond), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(compiled.C(x), eager.C(x), rtol=1e-4, atol=1e-4)


def test_configure_model_compiles_trained_nets_only(tiny_cfg):
    from lsgan.methods import METHODS
    from lsgan.methods.base import DataInfo

    cfg = validate(tiny_cfg("method=slcgan", "method.num_clusters=4", *COMPILED))
    m = METHODS["slcgan"](cfg, DataInfo(shape=(1, 32, 32), name="digits"))
    m.configure_model()
    m.configure_model()  # Lightning may call it again (idempotent)
    for name in ("G", "D", "C"):
        assert getattr(m, name)._compiled_call_impl is not None, name
    # the submodules slcgan reaches without the nets' forward (D.forward_parts -> trunk, C.probs -> net)
    assert m.D.trunk._compiled_call_impl is not None and m.C.net._compiled_call_impl is not None
    assert m.augment._compiled_call_impl is None  # no parameters: nothing to gain
    off = METHODS["slcgan"](validate(tiny_cfg("method=slcgan", "method.num_clusters=4")),
                            DataInfo(shape=(1, 32, 32), name="digits"))
    off.configure_model()
    assert off.G._compiled_call_impl is None


def test_clustergans_hybrid_encoder_parts_are_compiled_too(tiny_cfg):
    from lsgan.methods import METHODS
    from lsgan.methods.base import DataInfo

    cfg = validate(tiny_cfg("method=clustergan", "prior=onehot_gaussian", "prior.dim=16", "method.adv_loss=hinge",
                            "method.encoder=hybrid", *COMPILED))
    m = METHODS["clustergan"](cfg, DataInfo(shape=(1, 32, 32), name="digits"))
    m.configure_model()
    assert len(m.E.parts) == 2 and all(p._compiled_call_impl is not None for p in m.E.parts)


@pytest.mark.parametrize("gp_weight", ["10", "0"])  # the penalty is computed (and differentiated) at any weight
def test_compile_refuses_the_gradient_penalty_in_one_line(tiny_cfg, gp_weight):
    with pytest.raises(ConfigError) as e:
        validate(tiny_cfg("method=clustergan", "prior=onehot_gaussian", "prior.dim=16", "method.adv_loss=wgan_gp",
                          f"method.gp_weight={gp_weight}", *COMPILED))
    msg = str(e.value)
    assert "\n" not in msg and "trainer.compile" in msg and "accepted values" in msg
    assert "method.adv_loss=hinge | ns" in msg  # clustergan's other forms
    # the same method with hinge compiles
    validate(tiny_cfg("method=clustergan", "prior=onehot_gaussian", "prior.dim=16", "method.adv_loss=hinge", *COMPILED))


@pytest.mark.parametrize("override, field", [("trainer.compile_backend=nope", "trainer.compile_backend"),
                                             ("trainer.compile_mode=fastest", "trainer.compile_mode")])
def test_bad_compile_settings_name_the_field_and_the_accepted_values(tiny_cfg, override, field):
    with pytest.raises(ConfigError, match=f"^{field}=.*accepted values: .*"):
        validate(tiny_cfg("method=sngan", "trainer.compile=true", override))


def test_compile_mode_needs_inductor(tiny_cfg):
    with pytest.raises(ConfigError, match="trainer.compile_mode=default is an inductor mode"):
        validate(tiny_cfg("method=sngan", *COMPILED, "trainer.compile_mode=default"))
