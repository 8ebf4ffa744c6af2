"""method=slcgan: losses against hand-computed values, who gets which gradient, the D:G schedule,
the augmentation T, the generate-on-demand API, C's standalone state and a real training run."""
from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch

from lsgan.augment import AugmentConfig, MultiViewAugment
from lsgan.config import ConfigError, validate
from lsgan.losses import (mean_entropy, slcgan_aug_loss, slcgan_c_adversarial, slcgan_d_hinge, slcgan_g_hinge,
                          slcgan_mi_loss)
from lsgan.methods.base import DataInfo
from lsgan.methods.slcgan import CLUSTERER_FILE, SLCGAN, Clusterer, synthetic_outliers
from lsgan.reports.slcgan import plot_cluster_sizes, real_vs_generated_grid, sorted_cluster_sizes
from lsgan.metrics.clustering import kmeans_labels
from lsgan.run import train
from tests.conftest import make_cfg

SMALL = ["method=slcgan", "model.g_width=8", "model.d_width=8", "method.z_dim=8", "method.num_clusters=3"]
SHAPE = (1, 28, 28)


def build(*overrides, shape=SHAPE) -> SLCGAN:
    torch.manual_seed(0)
    return SLCGAN(validate(make_cfg(SMALL + list(overrides))), DataInfo(shape=shape, name="digits"))


def real_images(n=6, shape=SHAPE):
    return torch.rand((n,) + shape, generator=torch.Generator().manual_seed(1)) * 2 - 1


def grads(module):
    return [p.grad for p in module.parameters()]


# --------------------------------------------------------------------------- losses
def test_hinge_terms_match_hand_computed_values():
    u_r, s_r = torch.tensor([2.0, 0.5]), torch.tensor([-1.0, 1.0])
    u_f, s_f = torch.tensor([-2.0, 0.5]), torch.tensor([0.0, -0.5])
    # per sample: relu(1-u_r)+relu(1-s_r)+relu(1+u_f)+relu(1+s_f) = [0+2+0+1, 0.5+0+1.5+0.5]
    assert slcgan_d_hinge(u_r, s_r, u_f, s_f).item() == pytest.approx((3.0 + 2.5) / 2)
    assert slcgan_g_hinge(u_f, s_f).item() == pytest.approx((2.0 + 0.0) / 2)  # mean[-u_f - s_f]
    assert slcgan_c_adversarial(s_r).item() == pytest.approx(0.0)            # mean[s_r]


def test_mi_and_aug_losses_match_hand_computed_values():
    logits = torch.log(torch.tensor([[1.0, 3.0]]))  # softmax = [0.25, 0.75]
    assert slcgan_mi_loss(logits, torch.tensor([1])).item() == pytest.approx(-math.log(0.75))
    clean = logits.clone().requires_grad_(True)
    view = torch.zeros(1, 2, requires_grad=True)    # q = [0.5, 0.5]
    loss = slcgan_aug_loss(clean, view)
    assert loss.item() == pytest.approx(-(0.5 * math.log(0.25) + 0.5 * math.log(0.75)))
    loss.backward()
    assert view.grad is None                        # q is a stop-gradient target by default
    assert torch.allclose(clean.grad, torch.tensor([[0.25 - 0.5, 0.75 - 0.5]]))  # p - q
    view2 = torch.zeros(1, 2, requires_grad=True)
    slcgan_aug_loss(clean, view2, grad_through_target=True).backward()
    assert view2.grad is not None and view2.grad.abs().sum() > 0




def test_mean_entropy_is_zero_when_certain_and_log_k_when_uniform():
    assert mean_entropy(torch.tensor([[50.0, 0.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-6)
    assert mean_entropy(torch.zeros(2, 4)).item() == pytest.approx(math.log(4))




def test_synthetic_outliers_are_flat_or_noise_images_in_range():
    x = real_images(7)
    o = synthetic_outliers(x)
    assert o.shape == x.shape and o.dtype == x.dtype and o.min() >= -1 and o.max() <= 1
    flat = o[:4].flatten(1)
    assert torch.equal(flat, flat[:, :1].expand_as(flat))  # one level per flat image
    assert (o[4:].flatten(1).std(dim=1) > 0.4).all()       # uniform noise on [-1, 1]: std 0.58
    few = synthetic_outliers(x, 3)
    assert few.shape == (3, *x.shape[1:]) and torch.equal(few[0].flatten(), few[0].flatten()[:1].expand(few[0].numel()))


def test_outlier_count_sets_the_outlier_batch_c_sees():
    m = build("method.c_outlier_weight=1.0", "method.c_outlier_count=2", "loss=no_aug", "method.c_adv_weight=0")
    seen = []
    m.C.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[0]))
    m.c_loss(real_images(8))
    assert seen == [8, 2]  # C(x) on the real batch, then C on two outliers
    with pytest.raises(ConfigError, match=r"^method\.c_outlier_count=0: need an integer >= 1 \(or null = the batch size\)$"):
        validate(make_cfg(SMALL + ["method.c_outlier_count=0"]))


def test_outlier_term_enters_cs_loss_and_teaches_c_doubt_on_a_black_image():
    m = build("method.c_outlier_weight=1.0", "method.c_spectral_norm=false", "method.c_adv_weight=0", "loss=no_aug",
              "method.clustering.balance_weight=0")
    x = real_images(8)
    torch.manual_seed(4)
    loss, logs = m.c_loss(x)
    assert loss.item() == pytest.approx(-logs["c_outlier_entropy"].item())  # the only term left
    black = -torch.ones(1, *SHAPE)
    with torch.no_grad():  # make C sure of a black image first, as an early C in a training run can be
        m.C.net.head.bias.copy_(torch.tensor([6.0, 0.0, 0.0]))
    before = mean_entropy(m.C(black)).item()
    opt = torch.optim.Adam(m.C.parameters(), lr=1e-3)
    for _ in range(30):  # real optimizer steps on C's loss: the outlier term alone
        opt.zero_grad()
        m.c_loss(x)[0].backward()
        opt.step()
    assert before < 0.05 and mean_entropy(m.C(black)).item() > 0.5
    assert "c_outlier_entropy" not in build().c_loss(x)[1]  # off by default (the paper)
    with pytest.raises(ConfigError, match=r"^method\.c_outlier_weight=-1\.0: must be >= 0$"):
        validate(make_cfg(SMALL + ["method.c_outlier_weight=-1"]))


# --------------------------------------------------------------------------- gradients
def test_mi_changes_g_gradients_and_leaves_c_untouched():
    m = build()
    torch.manual_seed(3)
    loss, logs = m.g_loss(8)
    loss.backward()
    with_mi = [g.clone() for g in grads(m.G)]
    assert logs["loss_mi"] > 0
    assert all(g is None for g in grads(m.C)), "L_mi must not reach C"
    m.zero_grad(set_to_none=True)
    m.mi_weight = 0.0
    torch.manual_seed(3)  # same z and c
    loss, logs = m.g_loss(8)
    loss.backward()
    assert "loss_mi" not in logs
    assert all(g is None for g in grads(m.C))
    changed = [not torch.allclose(a, b) for a, b in zip(with_mi, grads(m.G))]
    assert any(changed), "L_mi must change G's gradients"




def test_d_and_c_losses_reach_only_their_own_player():
    m = build()
    x = real_images()
    m.d_loss(x)[0].backward()
    assert all(g is None for g in grads(m.G)) and all(g is None for g in grads(m.C))
    assert all(g is not None for g in grads(m.D))
    m.zero_grad(set_to_none=True)
    loss, logs = m.c_loss(x)
    loss.backward()
    assert all(g is None for g in grads(m.G))  # C's loss never runs G: no fake image in it
    assert sum(g.abs().sum() for g in grads(m.C)) > 0
    assert "loss_aug" in logs and "loss_c_adv" in logs


def test_no_aug_and_no_mi_switch_their_terms_off():
    m = build("loss=no_aug")
    assert m.augment is None and "loss_aug" not in m.c_loss(real_images())[1]
    assert "loss_mi" not in build("loss=no_mi").g_loss(4)[1]


# --------------------------------------------------------------------------- augmentation
def test_augment_gives_each_image_its_own_view_in_range():
    aug = MultiViewAugment(AugmentConfig(), (3, 16, 16))
    x = real_images(1, (3, 16, 16)).expand(6, -1, -1, -1).contiguous()
    torch.manual_seed(0)
    views = aug(x)
    assert views.shape == x.shape and views.device == x.device
    assert views.min() >= -1 and views.max() <= 1
    assert not torch.allclose(views[0], views[1])  # per-image random parameters
    assert not torch.allclose(views[0], x[0])


def test_bad_values_fail_in_one_line_naming_the_field():
    with pytest.raises(ConfigError, match=r"method\.clustering\.augment\.hue"):
        validate(make_cfg(SMALL + ["method.clustering.augment.hue=0.7"]))
    with pytest.raises(ConfigError, match=r"method\.clustering\.augment\.crop_scale"):
        validate(make_cfg(SMALL + ["method.clustering.augment.crop_scale=[0.9,0.2]"]))
    with pytest.raises(ConfigError, match=r"method\.num_clusters"):
        validate(make_cfg(SMALL + ["method.num_clusters=1"]))
    with pytest.raises(ConfigError, match="loss=hinge: .*accepted for method=slcgan: full, no_mi, no_aug.*"
                                          "method.adv_loss=hinge"):
        validate(make_cfg(SMALL + ["loss=hinge"]))
    with pytest.raises(ConfigError, match="method.adv_loss='ns' is not accepted by method=slcgan; accepted values: hinge"):
        validate(make_cfg(SMALL + ["method.adv_loss=ns"]))
    with pytest.raises(ConfigError, match="loss='no_h1' is not accepted by method=slcgan; accepted values: full, no_mi, no_aug"):
        validate(make_cfg(SMALL + ["loss=no_h1"]))
    with pytest.raises(ConfigError, match="method.clustering.balance_kl='backward'.*forward, reverse"):
        validate(make_cfg(SMALL + ["method.clustering.balance_kl=backward"]))
    with pytest.raises(ConfigError, match="use loss=no_aug"):
        build(shape=(2,))


# --------------------------------------------------------------------------- API and C's state
def test_sample_condition_of_and_clusterer_round_trip(tmp_path):
    m = build()
    m.eval()
    assert m.num_conditions == 3
    assert m.sample(5, condition=2).shape == (5,) + SHAPE
    assert m.sample(4).shape == (4,) + SHAPE
    with pytest.raises(ValueError, match="condition"):
        m.sample(2, condition=3)
    x = real_images()
    ids = m.condition_of(x)
    assert ids.shape == (6,) and ids.dtype == torch.long and ((ids >= 0) & (ids < 3)).all()
    assert torch.equal(ids, m.C(x).argmax(1))
    path = m.C.save(str(tmp_path / "c.pt"))
    loaded = Clusterer.load(path)
    assert torch.allclose(loaded(x), m.C(x)) and loaded.k == 3
    assert real_vs_generated_grid(m, x, clusters=[0, 2], per_side=3).shape == (2 * 2 * 3,) + SHAPE


def test_cluster_size_figure_helpers(tmp_path):
    gen = torch.Generator().manual_seed(0)
    blobs = torch.cat([torch.randn(30, 2, generator=gen) * 0.1 + torch.tensor(c) for c in ([0, 0], [5, 5], [0, 5])])
    ids = kmeans_labels(blobs, 3)
    assert sorted(sorted_cluster_sizes(ids, 3).tolist()) == [30, 30, 30]
    assert list(sorted_cluster_sizes(torch.tensor([2, 2, 0]), 4)) == [2, 1, 0, 0]
    out = plot_cluster_sizes(ids, torch.zeros(90, dtype=torch.long), 3, str(tmp_path / "sizes.png"))
    assert (tmp_path / "sizes.png").stat().st_size > 0 and out.endswith("sizes.png")


# --------------------------------------------------------------------------- real training
class Probe(pl.Callback):
    """Counts optimizer steps per player, snapshots the weights, and records every forward of C."""

    def __init__(self):
        self.steps = {"d": 0, "g": 0, "c": 0}
        self.fakes = []    # G's outputs, held so their identities stay unique
        self.c_calls = []  # (input is a generated image, C's parameters could get a gradient)

    def on_train_start(self, trainer, m):
        self.before = {k: v.detach().clone() for k, v in m.state_dict().items()}
        for name, opt in zip(m._opt_names, trainer.optimizers):
            opt.register_step_post_hook(lambda *_, name=name: self.steps.__setitem__(name, self.steps[name] + 1))
        m.G.register_forward_hook(lambda mod, inp, out: self.fakes.append(out))
        m.C.register_forward_hook(lambda mod, inp, out: self.c_calls.append(
            (any(inp[0] is f for f in self.fakes),
             torch.is_grad_enabled() and any(p.requires_grad for p in mod.parameters()))))


def test_real_training_steps_d_twice_per_g_and_c_learns_from_real_images_only(tiny_cfg, tmp_path):
    cfg = tiny_cfg("method=slcgan", "method.num_clusters=3", "model.g_width=8", "model.d_width=8")
    probe = Probe()
    torch.manual_seed(0)
    result = train(cfg, str(tmp_path), callbacks=[probe])
    assert result.iteration == 4
    assert probe.steps == {"d": 4, "g": 2, "c": 2}, "D twice per G; C once per G"
    fake_calls = [trainable for is_fake, trainable in probe.c_calls if is_fake]
    assert fake_calls and not any(fake_calls), "C saw generated images with its parameters trainable"
    assert any(trainable for is_fake, trainable in probe.c_calls if not is_fake)
    state = torch.load(result.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    for net in ("G.", "D.", "C."):  # every player's weights moved
        assert any(not torch.equal(v, state[k]) for k, v in probe.before.items()
                   if k.startswith(net) and v.is_floating_point())
    # C's own state file, equal to the C inside the Lightning checkpoint
    c = Clusterer.load(str(tmp_path / CLUSTERER_FILE))
    for k, v in c.state_dict().items():
        assert torch.equal(v, state[f"C.{k}"])
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    for key in ("loss_d", "loss_g", "loss_c", "loss_mi", "loss_aug", "s_real", "u_fake"):
        assert key in header


def test_marginal_entropy_known_answer_and_balance_term():
    from lsgan.losses import slcgan_marginal_entropy

    even = torch.eye(4)
    assert math.isclose(slcgan_marginal_entropy(even).item(), math.log(4), rel_tol=1e-6)
    assert slcgan_marginal_entropy(torch.tensor([[1.0, 0.0], [1.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-6)
    m = build("method.clustering.balance_weight=1.0")
    m.eval()  # no spectral-norm power iteration between the two calls
    x = real_images()
    torch.manual_seed(3)  # the same augmented views in both calls
    with_term, _ = m.c_loss(x)
    m.mcfg.clustering.balance_weight = 0.0
    torch.manual_seed(3)
    without, logs = m.c_loss(x)
    expected = math.log(m.num_conditions) - logs["c_marginal_entropy"].item()
    assert with_term.item() - without.item() == pytest.approx(expected, abs=1e-4)


def test_reverse_balance_keeps_a_gradient_on_a_collapsed_clusterer():
    # every image confidently in cluster 0: the forward term's gradient on C's logits vanishes with the
    # saturated softmax, the reverse term's does not (what lets C climb back out of a collapse)
    m = build("method.clustering.balance_weight=1.0", "method.c_adv_weight=0", "loss=no_aug")
    m.eval()
    x = real_images()
    norms = {}
    for kind in ("forward", "reverse"):
        m.mcfg.clustering.balance_kl = kind
        logits = torch.full((x.shape[0], m.num_conditions), -20.0)
        logits[:, 0] = 20.0
        logits.requires_grad_(True)
        loss, logs = m.c_loss(x, logits)
        loss.backward()
        norms[kind] = logits.grad.abs().max().item()
        assert logs["c_balance"].item() == pytest.approx(loss.item())
    assert norms["forward"] < 1e-12
    assert norms["reverse"] > 1e-3


# --------------------------------------------------------------------------- shared passes (speed)
def test_c_loss_on_kept_logits_equals_a_fresh_pass():
    m = build("method.c_spectral_norm=false", "method.c_adv_weight=0")  # the recipe's C: no SN, D not in its loss
    x = real_images()
    kept = m.C(x)  # as d_step keeps it
    torch.manual_seed(3)  # the same augmented views in both calls
    a, _ = m.c_loss(x, kept)
    a.backward()
    kept_grads = [g.clone() for g in grads(m.C)]
    m.zero_grad(set_to_none=True)
    torch.manual_seed(3)
    b, _ = m.c_loss(x)
    b.backward()
    assert a.item() == b.item()
    assert all(torch.equal(g, h) for g, h in zip(kept_grads, grads(m.C)))


def test_c_loss_skips_d_when_its_adversarial_term_has_weight_zero():
    m = build()
    m.eval()  # no spectral-norm power iteration between the calls
    x = real_images()
    torch.manual_seed(3)
    with_adv, logs = m.c_loss(x)
    m.mcfg.c_adv_weight = 0.0
    calls = []
    hook = m.D.trunk.register_forward_hook(lambda *_: calls.append(1))
    torch.manual_seed(3)
    without, logs0 = m.c_loss(x)
    hook.remove()
    assert calls == [] and "loss_c_adv" not in logs0
    assert with_adv.item() - without.item() == pytest.approx(logs["loss_c_adv"].item(), abs=1e-5)


@pytest.mark.parametrize("n_dis,c_adv_weight,c_passes,d_passes", [(1, 0.0, 6, 6), (1, 1.0, 6, 8), (2, 0.0, 4, 5)])
def test_c_and_d_passes_per_iteration(tiny_cfg, tmp_path, n_dis, c_adv_weight, c_passes, d_passes):
    """d_step's C(x) is reused by the C step: in an iteration with a G step C runs on x, on the fakes
    (L_mi) and on the views; D on real and fake (D step), fake (G step) and, only with a weight,
    (x, C(x)). With n_dis 2 the second iteration is a D step alone: C(x) once without a graph, D twice."""
    counts = {"C": 0, "D": 0}

    class Count(pl.Callback):
        def on_train_start(self, trainer, m):
            m.C.net.register_forward_hook(lambda *_: counts.__setitem__("C", counts["C"] + 1))
            m.D.trunk.register_forward_hook(lambda *_: counts.__setitem__("D", counts["D"] + 1))

    cfg = tiny_cfg("method=slcgan", "method.num_clusters=3", "model.g_width=8", "model.d_width=8",
                   f"method.n_dis={n_dis}", f"method.c_adv_weight={c_adv_weight}", "trainer.steps=2")
    train(cfg, str(tmp_path), callbacks=[Count()])
    assert counts == {"C": c_passes, "D": d_passes}


def test_c_without_any_weighted_term_is_left_as_it_is(tiny_cfg, tmp_path):
    cfg = tiny_cfg("method=slcgan", "method.num_clusters=3", "model.g_width=8", "model.d_width=8", "loss=no_aug",
                   "method.c_adv_weight=0", "method.clustering.balance_weight=0", "trainer.steps=2")
    probe = Probe()
    result = train(cfg, str(tmp_path), callbacks=[probe])
    assert result.iteration == 2 and probe.steps["c"] == 0 and probe.steps["g"] >= 1


def test_ema_of_c_labels_real_images_and_is_saved_as_the_clusterer(tiny_cfg, tmp_path):
    # ema_start 1: step 0 copies C, the later steps average; training keeps reading the online C
    cfg = tiny_cfg("method=slcgan", "method.num_clusters=3", "model.g_width=8", "model.d_width=8", "method.n_dis=1",
                   "method.c_ema_decay=0.5", "method.ema_start=1", "trainer.steps=3")
    probe = Probe()
    torch.manual_seed(0)
    result = train(cfg, str(tmp_path), callbacks=[probe])
    assert probe.steps["c"] == 3
    state = torch.load(result.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    ema = {k[len("c_ema.module."):]: v for k, v in state.items() if k.startswith("c_ema.module.")}
    online = {k[len("C."):]: v for k, v in state.items() if k.startswith("C.")}
    assert ema.keys() == online.keys()
    weights = [k for k, v in online.items() if v.is_floating_point()]
    assert any(not torch.equal(ema[k], online[k]) for k in weights), "the average lags the online C"
    assert any(not torch.equal(ema[k], probe.before[f"C.{k}"]) for k in weights), "the average moved"
    saved = Clusterer.load(str(tmp_path / CLUSTERER_FILE))
    for k, v in saved.state_dict().items():
        assert torch.equal(v, ema[k])
    m = build("method.c_ema_decay=0.9")
    m.eval()
    with torch.no_grad():
        for p in m.C.parameters():
            p.add_(torch.randn_like(p))  # the online C moves away from its average
    x = real_images()
    assert torch.equal(m.condition_of(x), m.c_ema.module(x).argmax(1))
    assert torch.equal(m.features_of(x), m.c_ema.module.features(x))
    with pytest.raises(ConfigError, match=r"method\.c_ema_decay=1\.5"):
        validate(make_cfg(SMALL + ["method.c_ema_decay=1.5"]))


def test_c_as_a_head_on_the_frozen_extractor_with_mined_neighbours(tiny_cfg, tmp_path):
    """c_net=extractor: C is a head on the frozen extractor's features; with clustering.neighbours L_aug
    pairs each image with a view of a mined neighbour. The head learns, the extractor does not, and C's own
    file rebuilds the same C (head and extractor)."""
    from lsgan.nets.feature_head import FeatureHead

    cfg = tiny_cfg("method=slcgan", "method.num_clusters=3", "model.g_width=8", "model.d_width=8", "method.c_net=extractor",
                   "method.clustering.neighbours=3", "method.clustering.augment.kind=affine", "extractor=alexnet_random",
                   "extractor.pool=2", "extractor.cache=false")
    torch.manual_seed(0)
    result = train(cfg, str(tmp_path))
    state = torch.load(result.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    c = Clusterer.load(str(tmp_path / CLUSTERER_FILE))
    assert isinstance(c.net, FeatureHead)
    for k, v in c.state_dict().items():
        assert torch.equal(v, state[f"C.{k}"])
    from lsgan.features.extractors import build_extractor

    built = build_extractor(validate(cfg).extractor, (1, 32, 32)).state_dict()  # the weights it started from
    assert built.keys() == c.net.extractor.state_dict().keys()
    assert all(torch.equal(built[k], v) for k, v in c.net.extractor.state_dict().items())
    x = real_images(shape=(1, 32, 32))
    assert c.assign(x).shape == (6,) and c.embed(x).shape == (6, 256)


def test_c_net_is_checked():
    with pytest.raises(ConfigError, match="method.c_net='shared' is not accepted; accepted values: own, extractor"):
        build("method.c_net=shared")
