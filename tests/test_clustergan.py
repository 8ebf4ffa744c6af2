"""method=clustergan: losses against hand-computed values, the priors' structure, real training
steps through train(), the generate / infer round trip, the perceptual term, steering."""
from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn.utils import parametrize

from lsgan import losses as L
from lsgan.config import ConfigError, validate
from lsgan.methods import clustergan as cg
from lsgan.nets import perceptual
from lsgan.priors import build_prior
from lsgan.run import build_datamodule, build_method, train
from lsgan.steering import steer_latent

# Tiny nets at the digits dataset's 32 px.
CG = ["method=clustergan", "prior.dim=16", "prior.k=4", "trainer.steps=6", "method.n_dis=2"]
# 2-D points and small MLPs: hundreds of real steps in seconds.
RING = ["dataset=ring8", "model=mlp", "model.mlp_width=32", "model.mlp_depth=2", "data.n_points=2000"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Nets this small run faster on one thread; on a shared 2-core machine a second intra-op
    thread mostly waits for the core (a tiny MLP step went from ~1 s to ~0.03 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- losses
def test_ge_loss_hand_values():
    z_n = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    z_hat = torch.tensor([[0.0, 2.0], [0.0, 2.0]])  # squared errors 1, 0, 0, 4 -> mean 1.25
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    modes = torch.tensor([0, 0])  # CE: -log(1/2) and -log(3/4)
    ce = (math.log(2.0) - math.log(0.75)) / 2
    assert math.isclose(L.latent_recovery_loss(z_n, z_hat).item(), 1.25, rel_tol=1e-6)
    assert math.isclose(L.cluster_code_loss(logits, modes).item(), ce, rel_tol=1e-6)
    total, parts = L.clustergan_ge_loss(torch.tensor(0.5), z_n, z_hat, modes, logits, beta_n=10.0, beta_c=2.0)
    assert math.isclose(total.item(), 0.5 + 12.5 + 2 * ce, rel_tol=1e-6)
    assert set(parts) == {"adv_g", "zn_loss", "zc_loss"}


def test_perceptual_loss_hand_values():
    a = [torch.zeros(1, 2, 1, 1), torch.zeros(1, 1, 2, 2)]
    b = [torch.tensor([1.0, 3.0]).view(1, 2, 1, 1), torch.full((1, 1, 2, 2), 2.0)]  # means 5 and 4
    assert math.isclose(L.perceptual_loss(a, b, [1.0, 0.5]).item(), 5.0 + 2.0, rel_tol=1e-6)
    with pytest.raises(ValueError):
        L.perceptual_loss(a, b, [1.0])


# --------------------------------------------------------------------------- priors
def test_onehot_gaussian_prior_structure(tiny_cfg):
    prior = build_prior(tiny_cfg(*CG, "prior.sigma=0.1", "prior.dim=30", "prior.k=10").prior)
    z, y = prior.sample(20000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (20000, 40) and prior.dim == 40
    code = z[:, 30:]
    assert torch.equal(code, torch.nn.functional.one_hot(y, 10).float())  # exact one-hot of the mode
    z_n = z[:, :30]
    assert abs(z_n.mean().item()) < 3e-3 and abs(z_n.std().item() - 0.1) < 3e-3
    counts = torch.bincount(y, minlength=10).float() / len(y)
    assert (counts - 0.1).abs().max() < 0.015  # uniform clusters
    z3, y3 = prior.sample(5, modes=3)
    assert (y3 == 3).all() and (z3[:, 33] == 1).all() and z3[:, 30:].sum().item() == 5


def test_gmm_prior_structure(tiny_cfg):
    prior = build_prior(tiny_cfg(*CG, "prior=gmm", "prior.dim=8", "prior.k=3", "prior.sigma=0.05").prior)
    z, y = prior.sample(6000, generator=torch.Generator().manual_seed(1))
    assert z.shape == (6000, 8)
    for k in range(3):
        zk = z[y == k]
        assert torch.allclose(zk.mean(0), prior.means[k], atol=0.01)
        assert abs(zk.std(0).mean().item() - 0.05) < 0.005
    nearest = torch.cdist(z, prior.means).argmin(dim=1)
    assert torch.equal(nearest, y)  # components well separated: each sample nearest its own mean


# --------------------------------------------------------------------------- config
@pytest.mark.parametrize("override,needle", [
    ("prior=engineered", "prior=engineered is not accepted by method=clustergan"),
    ("method.adv_loss=minimax", "method.adv_loss='minimax' is not accepted by method=clustergan; accepted values: "
                                "wgan_gp, hinge, ns"),
    ("loss=hinge", "the adversarial form is method.adv_loss=hinge"),
    ("method.zn_weight=-1", "method.zn_weight=-1.0: must be >= 0"),
    ("method.perceptual_layers=[relu9_9]", "method.perceptual_layers=['relu9_9']"),
])
def test_bad_config_is_one_line(tiny_cfg, override, needle):
    with pytest.raises(ConfigError) as err:
        validate(tiny_cfg(*CG, override))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_defaults_are_the_authors():
    from lsgan.run import compose_config

    cfg = validate(compose_config(["method=clustergan"]))
    m = cfg.method
    assert (cfg.loss.name, m.adv_loss, m.gp_weight, m.n_dis, m.lr_g, m.lr_d, list(m.betas)) == \
        ("full", "wgan_gp", 10.0, 5, 1e-4, 1e-4, [0.5, 0.9])
    assert (m.zn_weight, m.zc_weight, m.perceptual_weight, cfg.prior.name, cfg.prior.dim, cfg.prior.sigma) == \
        (10.0, 10.0, 0.0, "onehot_gaussian", 30, 0.1)


# --------------------------------------------------------------------------- training
def _params(module):
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


def _fresh(cfg):
    """The method as train() initialises it (same seeding and build order)."""
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    cfg = validate(cfg)
    return build_method(cfg, build_datamodule(cfg))


def _train_keep(cfg, run_dir):
    """train() and the trained module itself (so its nets can be inspected and sampled)."""
    kept = {}

    class Keep(pl.Callback):
        def on_train_end(self, trainer, pl_module):
            kept["m"] = pl_module

    res = train(cfg, run_dir, callbacks=[Keep()])
    return res, kept["m"]


@pytest.mark.parametrize("loss,prior", [("wgan_gp", "onehot_gaussian"), ("ns", "gmm"), ("hinge", "onehot_gaussian")])
def test_real_training_steps_move_g_e_and_d(tiny_cfg, tmp_path, loss, prior):
    cfg = tiny_cfg(*CG, f"method.adv_loss={loss}", f"prior={prior}", "prior.dim=16", "prior.k=4")
    fresh = _fresh(cfg)
    assert torch.equal(_params(fresh.E), _params(_fresh(cfg).E))  # the initialisation is seed-determined
    res, m = _train_keep(cfg, tmp_path)
    assert res.iteration == 6
    for net in ("G", "D", "E"):
        assert not torch.allclose(_params(getattr(fresh, net)), _params(getattr(m, net))), net
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert {"loss_d", "loss_g", "zn_loss", "zc_loss", "zc_acc"} <= set(header)
    # condition_of ∘ sample: valid cluster ids, one per sample
    for k in range(m.num_conditions):
        x = m.sample(8, condition=k)
        assert x.shape == (8, 1, 32, 32) and x.min() >= -1 and x.max() <= 1
        ids = m.condition_of(x)
        assert ids.dtype == torch.int64 and ids.shape == (8,)
        assert ((ids >= 0) & (ids < 4)).all()
    labels = m.cluster_kmeans(m.sample(40))
    assert labels.shape == (40,) and set(labels.tolist()) <= set(range(4))
    with pytest.raises(ValueError, match="0..3"):
        m.sample(2, condition=4)


def test_condition_of_recovers_conditions_after_short_training(tiny_cfg, tmp_path):
    """With β_c, E learns to read z_c back from G(z): after 250 steps on the 8-mode ring the round
    trip condition_of(sample(condition=k)) returns k far above chance (1/4); measured 1.0."""
    cfg = tiny_cfg(*CG, *RING, "trainer.steps=250", "method.n_dis=1", "method.adv_loss=ns", "method.lr_g=1e-3",
                   "method.lr_d=1e-3", "seed=1")
    _, m = _train_keep(cfg, tmp_path)
    torch.manual_seed(0)
    cond = torch.arange(4).repeat_interleave(25)
    x = m.sample(100, condition=cond, use_ema=False)
    assert x.shape == (100, 2)
    ids = m.condition_of(x)
    assert (ids == cond).float().mean().item() > 0.9
    # the metric suite clusters real points both ways: argmax of E's head and k-means on E(x)
    from lsgan.metrics.suite import MetricSuite

    vcfg = validate(cfg)
    res = MetricSuite(m, build_datamodule(vcfg), vcfg, evaluator="auto", log=None).compute(["cluster"])["cluster"]
    assert res["rule"] == "argmax of condition_of(x)" and 0 <= res["acc"] <= 1
    assert "k-means on cluster_features" in res["kmeans"]["rule"] and 0 <= res["kmeans"]["acc"] <= 1


# --------------------------------------------------------------------------- perceptual term
def _tiny_vgg() -> nn.Sequential:
    """A VGG-shaped stand-in (conv-ReLU-conv-ReLU-pool-conv-ReLU) with random weights."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 4, 3, padding=1),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(inplace=True))


def test_feature_maps_pick_layers_and_keep_relu_outputs():
    torch.manual_seed(0)
    fm = perceptual.FeatureMaps(_tiny_vgg(), [1, 6])
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    a, b = fm(x)
    assert a.shape == (2, 4, 8, 8) and b.shape == (2, 8, 4, 4) and (a >= 0).all()
    assert L.perceptual_loss(fm(x), fm(x.clone()), [1, 1]).item() == 0
    assert not any(p.requires_grad for p in fm.parameters())


def test_perceptual_term_trains_through_stand_in(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(cg, "build_perceptual_net", lambda mcfg: perceptual.FeatureMaps(_tiny_vgg(), [1, 6]))
    res = train(tiny_cfg(*CG, "method.perceptual_weight=1.0", "method.n_dis=1", "trainer.steps=2",
                         "method.perceptual_layers=[relu1_2,relu2_2]", "method.perceptual_layer_weights=[1.0,0.5]"),
                tmp_path)
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert res.iteration == 2 and "perceptual" in header


def test_vgg16_weights_load_from_configured_path(tmp_path):
    # A VGG16 state_dict holding only the first block (enough for relu1_2), random values.
    ref = perceptual.vgg16_features()
    state = {f"features.{k}": v for k, v in ref.state_dict().items() if k.split(".")[0] in ("0", "2")}
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    net = perceptual.load_vgg16_features(str(path), perceptual.VGG16_LAYERS["relu1_2"])
    assert torch.equal(net[2].weight, ref[2].weight) and len(net) == 4


def test_vgg16_missing_weights_is_one_clear_line(tiny_cfg, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="no such file") as err:
        perceptual.load_vgg16_features(str(tmp_path / "nope.pth"), 3)
    assert "\n" not in str(err.value)
    from torchvision.models import VGG16_Weights

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(type(VGG16_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    cfg = tiny_cfg(*CG, "method.perceptual_weight=1.0")
    with pytest.raises(ConfigError, match="torchvision's download failed") as err:
        build_method(validate(cfg), build_datamodule(validate(cfg)))
    assert "\n" not in str(err.value) and "method.perceptual_checkpoint" in str(err.value)


# --------------------------------------------------------------------------- steering
def test_steering_raises_target_probability_and_respects_mask():
    torch.manual_seed(0)
    gen = nn.Linear(6, 5)
    clf = nn.Linear(5, 3)
    z0 = torch.randn(4, 6)
    mask = torch.tensor([1, 1, 1, 1, 0, 0], dtype=torch.bool)  # e.g. keep the cluster code fixed
    res = steer_latent(gen, clf, z0, target=2, steps=60, lr=0.1, mask=mask)
    p0 = clf(gen(z0)).softmax(1)[:, 2]
    assert (res.target_prob[-1] > p0 + 0.05).all()
    assert torch.equal(res.z[:, 4:], z0[:, 4:]) and not torch.equal(res.z[:, :4], z0[:, :4])
    assert all(p.grad is None for p in list(gen.parameters()) + list(clf.parameters()))
    anchored = steer_latent(gen, clf, z0, target=2, steps=60, lr=0.1, anchor_weight=100.0)
    assert (anchored.z - z0).norm() < (res.z - z0).norm()


def test_noise_recovery_is_the_latent_term_in_units_of_sigma(tiny_cfg):
    cfg = validate(tiny_cfg("method=clustergan", "prior.dim=16", "prior.k=4", "method.recovery=noise"))
    m = build_method(cfg, build_datamodule(cfg))
    sigma = float(cfg.prior.sigma)
    assert m.recovery_scale == sigma
    e = torch.randn(5, 16 + 4)
    z_n_hat, logits = m.split_code(e)
    assert torch.allclose(z_n_hat, sigma * e[:, :16]) and torch.equal(logits, e[:, 16:])
    m.mcfg.recovery = "latent"
    assert m.recovery_scale == 1.0 and torch.equal(m.split_code(e)[0], e[:, :16])


@pytest.mark.parametrize("normed", [False, True])
def test_e_spectral_norm_bounds_a_separate_encoder(tiny_cfg, normed):
    """method.e_spectral_norm puts spectral norm on every weight layer of a separate E: each
    layer's largest singular value is then ~1 (a power-iteration estimate), far above 1 without."""
    m = _fresh(tiny_cfg(*CG, "method.encoder=separate", f"method.e_spectral_norm={normed}"))
    m.E.train()
    x = torch.rand(8, 1, 32, 32) * 2 - 1
    for _ in range(20):  # power iterations settle the estimate
        m.E(x)
    layers = [mod for mod in m.E.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
    assert layers
    assert all(parametrize.is_parametrized(mod, "weight") for mod in layers) == normed
    if normed:
        for mod in layers:
            sigma = torch.linalg.matrix_norm(mod.weight.detach().flatten(1), ord=2)
            assert sigma.item() == pytest.approx(1.0, abs=0.1)


def test_hybrid_encoder_reads_z_n_from_d_and_clusters_with_its_own_net(tiny_cfg, tmp_path):
    """encoder=hybrid: the z_n head sits on D's trunk, the cluster logits come from a net of E's
    own; the clustering term on real images trains that net and leaves D's trunk to D."""
    from lsgan.nets import ConcatEncoder, SharedTrunkEncoder

    cfg = tiny_cfg(*CG, "method.adv_loss=hinge", "method.n_dis=1", "prior.dim=16", "prior.k=4", "method.encoder=hybrid",
                   "method.clustering.weight=1.0", "method.clustering.augment.kind=affine")
    fresh = _fresh(cfg)
    noise, clusters = fresh.E.parts
    assert isinstance(fresh.E, ConcatEncoder) and isinstance(noise, SharedTrunkEncoder)
    assert noise.discriminator is fresh.D and noise.out_dim == 16
    assert not isinstance(clusters, SharedTrunkEncoder)
    x = torch.rand(8, 1, 32, 32) * 2 - 1
    fresh.eval()
    assert fresh.E(x).shape == (8, 16 + 4) and torch.equal(fresh.cluster_logits(x), clusters(x))
    d_ids = {id(p) for p in fresh.D.parameters()}
    assert not any(id(p) in d_ids for p in fresh.E.parameters())
    res, m = _train_keep(cfg, tmp_path)
    assert res.iteration == 6
    for net in ("G", "D", "E"):
        assert not torch.allclose(_params(getattr(fresh, net)), _params(getattr(m, net))), net
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "consistency" in header and "d_consistency" not in header  # D's trunk does not cluster
    z_n, logits = m.code_of(x)
    assert z_n.shape == (8, 16) and logits.shape == (8, 4)


def test_extractor_encoder_clusters_with_a_head_on_the_frozen_extractor_and_mined_neighbours(tiny_cfg, tmp_path):
    """encoder=extractor: z_n from D's trunk, the clusters from a head on the frozen extractor; with
    clustering.neighbours the term's second views are mined neighbours. The head, G, D and the z_n head learn;
    the extractor's weights never move, and the trained module clusters and samples."""
    from lsgan.nets import ConcatEncoder, SharedTrunkEncoder
    from lsgan.nets.feature_head import FeatureHead

    cfg = tiny_cfg(*CG, "method.adv_loss=hinge", "method.n_dis=1", "method.encoder=extractor", "method.e_reads_fakes=false",
                   "method.clustering.weight=1.0", "method.clustering.neighbours=3", "method.clustering.augment.kind=affine",
                   "extractor=alexnet_random", "extractor.pool=2", "extractor.cache=false")
    fresh = _fresh(cfg)
    noise, clusters = fresh.E.parts
    assert isinstance(fresh.E, ConcatEncoder) and isinstance(noise, SharedTrunkEncoder) and isinstance(clusters, FeatureHead)
    res, m = _train_keep(cfg, tmp_path)
    assert res.iteration == 6
    assert m.neighbours.table.shape == (len(m.neighbours.train_set), 3)
    head_before, head_after = _params(fresh.E.parts[1].head), _params(m.E.parts[1].head)
    assert not torch.allclose(head_before, head_after)
    assert torch.equal(_params(fresh.E.parts[1].extractor), _params(m.E.parts[1].extractor))
    assert not m.E.parts[1].extractor.training  # kept in eval mode while the method trained
    x = torch.rand(8, 1, 32, 32) * 2 - 1
    ids = m.condition_of(x)
    assert ids.shape == (8,) and int(ids.max()) < 4
    assert m.sample(4, condition=1).shape == (4, 1, 32, 32)


def test_feature_head_passes_gradient_to_the_images_not_the_extractor():
    from lsgan.nets.feature_head import FeatureHead

    class Stub(nn.Module):
        out_dim = 12

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3, padding=1)

        def forward(self, x):
            return nn.functional.adaptive_avg_pool2d(self.conv(x), 2).flatten(1)

    head = FeatureHead(Stub(), 5)
    x = torch.randn(6, 1, 8, 8, requires_grad=True)
    head(x).logsumexp(1).sum().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is None for p in head.extractor.parameters())
    assert all(p.grad is not None for p in head.head.parameters() if p.requires_grad)
