"""method=nemgan: the engineered prior, the losses against hand-computed values, the ablation
switches, semi-supervision (off by default), real training steps and the report helpers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

import lsgan.methods.nemgan as nem
from lsgan.config import ConfigError, validate
from lsgan.losses import latent_norm_loss, mode_matching_loss, predicted_mode_kl
from lsgan.metrics.clustering import balanced_cluster_acc
from lsgan.reports.nemgan import class_mean_distances, evaluate_nemgan, mode_matching_report, nearest_mean_agreement
from lsgan.priors import PriorConfig, build_prior
from lsgan.run import build_datamodule, build_method, train

# tiny conv nets on the bundled 8×8 digits (upsampled to 32 px)
DIGITS = ("method=nemgan", "prior.dim=20", "model.g_width=8", "model.d_width=8", "data.batch_size=8")
# tiny MLPs on 800 ring8 points; its labels are the 8 modes, so semi-supervision applies
RING = ("method=nemgan", "dataset=ring8", "model=mlp", "model.mlp_width=32", "model.mlp_depth=2",
        "prior.k=8", "prior.dim=16", "data.n_points=800")


class Grab(pl.Callback):
    """Keeps the trained LightningModule so a test can inspect it after ``train``."""

    def on_train_end(self, trainer, pl_module):
        self.module = pl_module
        self.datamodule = trainer.datamodule


# --------------------------------------------------------------------------- prior
def test_engineered_prior_modes_disjoint_with_requested_proportions():
    w, weights = 0.3, [0.1, 0.3, 0.6]
    prior = build_prior(PriorConfig(name="engineered", k=3, dim=31, weights=weights, noise_width=w))
    n = 30000
    z, y = prior.sample(n, generator=torch.Generator().manual_seed(0))
    assert z.shape == (n, 31) and prior.block == 10
    blocks = z[:, :30].view(n, 3, 10)
    own = blocks[torch.arange(n), y]
    other = blocks[torch.nn.functional.one_hot(y, 3) == 0]
    # every sample sits in its own mode's support: own block in [1-w, 1+w], everything else in [-w, w]
    assert own.min() >= 1 - w and own.max() <= 1 + w
    assert other.abs().max() <= w and z[:, 30].abs().max() <= w
    # so any two samples of different modes differ by >= 1 - 2w on some coordinate (disjoint supports)
    a, b = z[y == 0][:500], z[y == 2][:500]
    assert torch.cdist(a, b, p=float("inf")).min() >= 1 - 2 * w
    # proportions: each count is Binomial(n, p); a deviation of 5 standard deviations has
    # probability < 6e-7 per mode, so this never fails for a correct sampler
    counts = torch.bincount(y, minlength=3).double()
    for c, p in enumerate(weights):
        assert abs(counts[c] - n * p) <= 5 * math.sqrt(n * p * (1 - p)), (c, counts[c])
    z2, y2 = prior.sample(7, modes=2)
    assert (y2 == 2).all() and (z2[:, 20:30] >= 1 - w).all()
    assert prior.sample(3, modes=[2, 0, 1])[1].tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="give one mode or 7 \\(one per sample\\), got 2"):
        prior.sample(7, modes=[0, 1])
    with pytest.raises(ValueError, match="modes must be in 0..2"):
        prior.sample(2, modes=[0, 3])


# --------------------------------------------------------------------------- losses
def test_norm_loss_hand_computed():
    z = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    z_hat = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    # p=1: per-sample mean |.| = 1.5 and 3.5
    assert latent_norm_loss(z, z_hat, 1.0).item() == pytest.approx(2.5)
    # p=2: sqrt((1+4)/2) and sqrt((9+16)/2)
    assert latent_norm_loss(z, z_hat, 2.0).item() == pytest.approx((math.sqrt(2.5) + math.sqrt(12.5)) / 2)
    same = z.clone().requires_grad_(True)
    loss = latent_norm_loss(same, z, 2.0)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-5) and torch.isfinite(same.grad).all()
    with pytest.raises(ValueError, match="z / z_hat"):
        latent_norm_loss(z, z_hat[:, :1])


def test_mode_matching_loss_hand_computed():
    logits = torch.tensor([[0.0, math.log(3.0)]])
    assert mode_matching_loss(logits, torch.tensor([0])).item() == pytest.approx(math.log(4.0))
    assert mode_matching_loss(logits, torch.tensor([1])).item() == pytest.approx(math.log(4.0 / 3.0))
    # AM-softmax: s·(cos − m·onehot) = 2·([0.5, 0] − [0.5, 0]) = [0, 0] → CE = log 2
    cos = torch.tensor([[0.5, 0.0]])
    assert mode_matching_loss(cos, torch.tensor([0]), margin=0.5, scale=2.0).item() == pytest.approx(math.log(2.0))
    # predicted P_Ŷ = mean softmax = [0.75, 0.25]; KL([.5,.5] ‖ P_Ŷ) = 0.5·log(4/3)
    probs_logits = torch.tensor([[0.0, -1e4], [0.0, 0.0]])
    kl = predicted_mode_kl(torch.tensor([0.5, 0.5]), probs_logits)
    assert kl.item() == pytest.approx(0.5 * math.log(4.0 / 3.0), rel=1e-5)
    # a zero-weight mode contributes 0 (0·log 0)
    assert predicted_mode_kl(torch.tensor([1.0, 0.0]), probs_logits).item() == pytest.approx(-math.log(0.75), rel=1e-5)


# --------------------------------------------------------------------------- ablations
def _method(tiny_cfg, *overrides):
    cfg = validate(tiny_cfg(*overrides))
    pl.seed_everything(0, verbose=False)
    return build_method(cfg, build_datamodule(cfg))


def _grads(module):
    return [p.grad for p in module.parameters()]


@pytest.mark.parametrize("loss,norm_on,mode_on", [
    ("full", True, True), ("no_h1", False, True), ("no_h2", True, False), ("gan_only", False, False)])
def test_ablation_switches_remove_their_terms(tiny_cfg, monkeypatch, loss, norm_on, mode_on):
    calls = {"norm": 0, "mode": 0}
    for name, key in (("latent_norm_loss", "norm"), ("mode_matching_loss", "mode")):
        orig = getattr(nem, name)
        monkeypatch.setattr(nem, name, lambda *a, _o=orig, _k=key, **kw: (calls.__setitem__(_k, calls[_k] + 1),
                                                                           _o(*a, **kw))[1])
    m = _method(tiny_cfg, *RING, f"loss={loss}")
    z, y = m.prior.sample(8, generator=torch.Generator().manual_seed(1))
    total, logs = m.generator_objective(z, y)
    total.backward()
    assert calls == {"norm": int(norm_on), "mode": int(mode_on)}
    assert ("norm" in logs) == norm_on and ("mode" in logs) == mode_on
    h1_trained, h2_trained = norm_on or mode_on, mode_on
    assert all(g is not None for g in _grads(m.G))
    assert all((g is not None and g.abs().sum() > 0) for g in _grads(m.h1)) == h1_trained
    assert all(g is None for g in _grads(m.h1)) == (not h1_trained)
    assert all(g is None for g in _grads(m.h2)) == (not h2_trained)


def test_no_h1_equals_full_objective_without_the_norm_term(tiny_cfg):
    """Removing a term is exactly a zero weight on it: same total and same gradients."""
    grads = []
    for overrides in (("loss=no_h1",), ("loss=full", "method.norm_weight=0")):
        m = _method(tiny_cfg, *RING, *overrides)
        z, y = m.prior.sample(8, generator=torch.Generator().manual_seed(1))
        total, _ = m.generator_objective(z, y)
        total.backward()
        grads.append([total.detach()] + [p.grad for p in list(m.G.parameters()) + list(m.h2.parameters())])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("loss", ["full", "no_h1", "no_h2", "gan_only"])
def test_ablations_train_only_their_networks(tiny_cfg, tmp_path, loss):
    cfg = tiny_cfg(*RING, f"loss={loss}", "trainer.steps=2")
    res = train(cfg, tmp_path)
    trained = torch.load(res.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    fresh = _method(tiny_cfg, *RING, f"loss={loss}", "trainer.steps=2").state_dict()

    def moved(prefix):
        return any(not torch.equal(trained[k], fresh[k]) for k in fresh if k.startswith(prefix))

    assert moved("G.") and moved("D.")
    assert moved("h1.") == (loss != "gan_only")
    assert moved("h2.") == (loss in ("full", "no_h1"))


@pytest.mark.parametrize("loss", ["no_h2", "gan_only"])
def test_a_recipe_ablation_without_h2_drops_the_clustering_term(tiny_cfg, tmp_path, loss):
    """experiment=nemgan_mnist loss=no_h2 composes: the recipe's clustering term trains h2, which
    the ablation removes, so the term is dropped (not refused) and the mode net stays untrained."""
    recipe = (*DIGITS, "method.encoder=hybrid", "method.clustering.weight=1.0", "method.clustering.augment.kind=affine",
              "method.h_reads_fakes=false", f"loss={loss}", "trainer.steps=2")
    fresh = _method(tiny_cfg, *recipe)
    assert fresh.cluster_term is None
    res = train(validate(tiny_cfg(*recipe)), tmp_path)
    trained = torch.load(res.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    fresh = fresh.state_dict()
    assert all(torch.equal(trained[k], fresh[k]) for k in fresh if k.startswith("mode_net."))
    assert any(not torch.equal(trained[k], fresh[k]) for k in fresh if k.startswith("G."))


# --------------------------------------------------------------------------- training
def test_train_digits_then_generate_infer_reconstruct(tiny_cfg, tmp_path, monkeypatch):
    """Default config (semi-supervision off): real steps, and the semi path never runs."""
    def never(*args, **kwargs):
        raise AssertionError("semi-supervision ran although method.semi_fraction=0")

    monkeypatch.setattr(nem, "labelled_subset", never)
    monkeypatch.setattr(nem.NEMGAN, "semi_step", never)
    grab = Grab()
    res = train(tiny_cfg(*DIGITS, "trainer.sample_every=2"), tmp_path, callbacks=[grab])
    assert res.iteration == 4 and res.samples.is_file()
    m = grab.module
    assert m.semi_index is None and m.num_conditions == 10 and m.latent_dim == 20
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"loss_d", "loss_g", "g_adv", "norm", "mode", "mode_acc", "mode_kl"} <= set(header)
    assert not {"semi_loss", "semi_acc"} & set(header)
    m.eval()
    x = grab.datamodule.eval_set.images()[:12]
    assert m.sample(5, condition=3).shape == (5, 1, 32, 32)
    assert m.sample(4).shape == (4, 1, 32, 32)
    cond = m.condition_of(x)
    assert cond.shape == (12,) and cond.dtype == torch.int64 and 0 <= cond.min() and cond.max() < 10
    rec = m.reconstruct(x)
    assert rec.shape == x.shape and rec.abs().max() <= 1
    with pytest.raises(ValueError, match="condition"):
        m.sample(2, condition=10)


def test_semi_supervision_runs_every_n_iterations_on_a_fixed_subset(tiny_cfg, tmp_path, monkeypatch):
    calls = []
    orig = nem.NEMGAN.semi_step

    def spy(self):
        calls.append(self.iteration)
        return orig(self)

    monkeypatch.setattr(nem.NEMGAN, "semi_step", spy)
    grab = Grab()
    train(tiny_cfg(*RING, "method.semi_fraction=0.05", "method.semi_every=2"), tmp_path, callbacks=[grab])
    assert calls == [0, 2]
    labels = grab.datamodule.train_set.labels
    idx = grab.module.semi_index
    expected = [max(1, round(0.05 * int((labels == c).sum()))) for c in range(8)]
    assert torch.bincount(labels[idx], minlength=8).tolist() == expected
    assert torch.equal(idx, nem.labelled_subset(labels, 0.05, seed=0))  # fixed by the seed
    assert not torch.equal(idx, nem.labelled_subset(labels, 0.05, seed=1))
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"semi_loss", "semi_acc"} <= set(header)


def test_wgan_gp_form_and_am_softmax_head_take_real_steps(tiny_cfg, tmp_path):
    grab = Grab()
    train(tiny_cfg(*RING, "method.adv_loss=wgan_gp", "method.am_margin=0.2", "trainer.steps=2"), tmp_path,
          callbacks=[grab])
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"gp", "mode", "norm"} <= set(header)
    m = grab.module
    assert m.h2.cosine and m.h2.head.bias is None
    cos = m.h2(torch.randn(5, m.latent_dim))
    assert cos.abs().max() <= 1 + 1e-5  # cosine logits, scaled by am_scale only inside the loss


def test_ring8_mlp_steps_and_reports(tiny_cfg, tmp_path):
    grab = Grab()
    train(tiny_cfg(*RING, "trainer.steps=3"), tmp_path, callbacks=[grab])
    m = grab.module.eval()
    assert m.sample(6, condition=torch.arange(6)).shape == (6, 2)
    numbers = evaluate_nemgan(m, grab.datamodule, n_gen=400)
    assert numbers["n_modes"] == 8 and 0 <= numbers["modes"] <= 8 and 0 <= numbers["high_quality"] <= 1
    assert 0 <= numbers["h_acc"] <= 1 and 0 <= numbers["h_bal_acc"] <= 1
    ev = grab.datamodule.eval_set
    rep = mode_matching_report(m, str(tmp_path / "report"), n_per_mode=30,
                               real_features=ev.images()[:400], real_labels=ev.clean_labels[:400])
    # the engineered modes are disjoint, so in latent space every sample is nearest its own mode mean
    assert rep["latent_agreement"] == 1.0 and 0 <= rep["generated_agreement"] <= 1
    assert rep["kl_matrix"].shape == (8, 8)
    assert all((tmp_path / "report" / f).is_file() for f in ("mode_distances.png", "mode_class_kl.png"))


class LinearEvaluator:
    """A stand-in evaluator (the interface MetricSuite reads): fixed random linear logits over 12 classes on
    4×4-pooled pixels; the features are the pooled pixels."""

    def __init__(self):
        self.w = torch.randn(16, 12, generator=torch.Generator().manual_seed(0))
        self.meta = {"arch": "linear", "dataset": "digits", "n_classes": 12, "test_acc": None}

    def features(self, images, what: str = "evaluator features"):
        return torch.nn.functional.adaptive_avg_pool2d(torch.as_tensor(images).float(), 4).flatten(1)

    def logits(self, images):
        return self.features(images) @ self.w

    def predict(self, images):
        return self.logits(images).argmax(1)

    def fingerprint(self):
        return "linear-test"


def test_digits_numbers_come_from_the_metric_suite(tiny_cfg, tmp_path):
    """evaluate_nemgan is the suite's cluster / cond_acc (modes evenly) / classifier_fid, flattened; a
    given evaluator is read on the dataset's classes only (ClassSubsetEvaluator), and the caller's RNG
    is left alone."""
    from lsgan.metrics import ClassSubsetEvaluator
    from lsgan.metrics.suite import MetricSuite

    grab = Grab()
    train(tiny_cfg(*DIGITS, "trainer.steps=2", f"metrics.cache_dir={tmp_path / 'cache'}"), tmp_path / "run",
          callbacks=[grab])
    m, dm = grab.module.eval(), grab.datamodule
    ev = LinearEvaluator()
    before = torch.get_rng_state()
    numbers = evaluate_nemgan(m, dm, ev, n_gen=100)
    assert torch.equal(before, torch.get_rng_state())
    assert set(numbers) == {"h_acc", "h_bal_acc", "h_nmi", "h_ari", "cond_acc", "variety", "classifier_fid"}
    assert 0 <= numbers["h_acc"] <= 1 and 0 <= numbers["cond_acc"] <= 1 and numbers["classifier_fid"] > 0
    assert evaluate_nemgan(m, dm, ev, n_gen=100) == numbers  # seeded: the same numbers again
    # the same numbers straight from the suite: 12 evaluator classes read as the dataset's 10
    cfg = OmegaConf.merge(m.cfg, {"metrics": {"ref_n": 100, "ref_split": m.cfg.data.eval_split}})
    suite = MetricSuite(m, dm, cfg, evaluator=ClassSubsetEvaluator(ev, range(10)), log=None)
    cond = suite.compute(["cond_acc"], 100, spread="even")["cond_acc"]
    assert cond["value"] == numbers["cond_acc"] and np.asarray(cond["confusion"]).sum(1).tolist() == [10] * 10
    assert suite.compute(["classifier_fid"], 100)["classifier_fid"]["value"] == pytest.approx(numbers["classifier_fid"])
    assert evaluate_nemgan(m, dm, None, n_gen=100).keys() == {"h_acc", "h_bal_acc", "h_nmi", "h_ari"}


def test_class_mean_distances_hand_computed():
    f = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
    y = torch.tensor([0, 0, 1])
    d = class_mean_distances(f, y, 3)  # means: (1, 0), (0, 4), none
    assert np.allclose(d[:, :2], [[1.0, 4.0], [1.0, math.sqrt(20)], [math.sqrt(17), 0.0]])
    assert np.isnan(d[:, 2]).all()
    assert nearest_mean_agreement(d, y) == 1.0


def test_balanced_cluster_acc_hand_computed():
    y = np.array([0, 0, 0, 1])
    assert balanced_cluster_acc(y, np.zeros(4, dtype=np.int64), 2, 2) == 0.5  # majority guess: ACC 0.75
    assert balanced_cluster_acc(y, 1 - y, 2, 2) == 1.0                        # a relabelled perfect split
    # class 0 recall 2/3 (cluster 1), class 1 recall 1 (cluster 0)
    assert balanced_cluster_acc(y, np.array([1, 1, 0, 0]), 2, 2) == pytest.approx((2 / 3 + 1) / 2)


# --------------------------------------------------------------------------- config errors
@pytest.mark.parametrize("override,needle", [
    ("method.adv_loss=lsq", "method.adv_loss"),
    ("prior=onehot_gaussian", "prior=onehot_gaussian"),
    ("method.norm_p=0", "method.norm_p"),
    ("method.semi_fraction=1.5", "method.semi_fraction"),
    ("loss=hinge", "loss=hinge: loss= names the objective/ablation (accepted for method=nemgan: full, no_h1, no_h2, "
                   "gan_only); the adversarial form is method.adv_loss=hinge"),
])
def test_bad_config_fails_in_one_line(tiny_cfg, override, needle):
    with pytest.raises(ConfigError) as err:
        validate(tiny_cfg("method=nemgan", override))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_semi_needs_the_mode_term(tiny_cfg):
    with pytest.raises(ConfigError, match="loss=no_h2"):
        validate(tiny_cfg("method=nemgan", "loss=no_h2", "method.semi_fraction=0.05"))


def test_mode_seeking_takes_real_steps_on_a_shared_trunk_h1(tiny_cfg, tmp_path):
    from lsgan.nets import SharedTrunkEncoder

    grab = Grab()
    train(tiny_cfg(*DIGITS, "method.encoder=hybrid", "method.mode_seeking_weight=0.5", "trainer.steps=2"), tmp_path,
          callbacks=[grab])
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"norm", "mode", "mode_seeking"} <= set(header)
    m = grab.module
    assert isinstance(m.h1, SharedTrunkEncoder) and m.h1.discriminator is m.D
    assert m.condition_of(m.sample(4, condition=1)).shape == (4,)


def test_hybrid_h1_reads_d_and_modes_come_from_a_net_of_their_own(tiny_cfg, tmp_path):
    """encoder=hybrid: h1 (the norm term) is a head on D's trunk; the modes come from a net of
    their own (straight to the k logits), which the clustering term on
    real images trains while D's trunk is left to D; with h_reads_fakes=false the mode term on g's
    samples leaves that net alone."""
    from lsgan.data.batch import Batch
    from lsgan.nets import SharedTrunkEncoder

    cfg = validate(tiny_cfg(*DIGITS, "method.encoder=hybrid", "method.h_spectral_norm=true",
                            "method.clustering.weight=1.0", "method.clustering.augment.kind=affine",
                            "method.h_reads_fakes=false", "trainer.steps=2"))
    m = build_method(cfg, build_datamodule(cfg))
    assert isinstance(m.h1, SharedTrunkEncoder) and m.h1.discriminator is m.D
    assert not isinstance(m.mode_net, SharedTrunkEncoder)
    k = cfg.prior.k
    assert m.mode_net(torch.zeros(2, 1, 32, 32)).shape == (2, k)
    assert isinstance(m.h2, torch.nn.Identity)
    assert any("weight_orig" in name or "parametrizations" in name for name, _ in m.mode_net.named_parameters())
    x = torch.rand(8, 1, 32, 32) * 2 - 1
    m.eval()
    assert torch.equal(m.cluster_logits(x), m.h2(m.mode_net(x)))
    assert torch.equal(m.condition_of(x), m.h2(m.mode_net(x)).argmax(1))
    g_params = [p for group in m.optimizer_groups()["g"]["params"] for p in group["params"]]
    assert {id(p) for p in m.mode_net.parameters()} <= {id(p) for p in g_params}
    m.train()
    captured = {}
    m.step_opt = lambda name, loss: captured.__setitem__(name, loss)
    m.g_step(Batch(x=x, index=torch.arange(8)))
    mode_params = list(m.mode_net.parameters()) + list(m.h2.parameters())
    grads = torch.autograd.grad(captured["g"], mode_params + list(m.h1.parameters()), allow_unused=True)
    assert all(g is not None and g.abs().sum() > 0 for g in grads[len(mode_params):])  # norm term: h1's head
    # the mode net moves only through the clustering term on real images: with that term off it gets nothing
    m.cluster_term = None
    m.g_step(Batch(x=x, index=torch.arange(8)))
    grads = torch.autograd.grad(captured["g"], mode_params, allow_unused=True)
    assert all(g is None or g.abs().sum() == 0 for g in grads)
    m.d_step(Batch(x=x, index=torch.arange(8)))
    grab = Grab()
    train(cfg, tmp_path, callbacks=[grab])
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"norm", "mode", "consistency"} <= set(header) and "d_consistency" not in header


def test_hybrid_direct_mode_net_refuses_the_cosine_head(tiny_cfg):
    with pytest.raises(ConfigError, match="method.am_margin=0.4.*accepted: encoder=separate"):
        validate(tiny_cfg(*DIGITS, "method.encoder=hybrid", "method.am_margin=0.4"))
    validate(tiny_cfg(*DIGITS, "method.encoder=separate", "method.am_margin=0.4"))


def test_sinkhorn_heads_need_a_mode_net(tiny_cfg):
    with pytest.raises(ConfigError, match=r"method.clustering.heads=3 .* needs method.encoder=hybrid \| extractor") as err:
        validate(tiny_cfg(*DIGITS, "method.clustering.assign=sinkhorn", "method.clustering.heads=3", "method.encoder=separate"))
    assert "\n" not in str(err.value)
    validate(tiny_cfg(*DIGITS, "method.clustering.assign=sinkhorn", "method.clustering.heads=3", "method.encoder=hybrid"))


# encoder=extractor on a random AlexNet (no RotNet to train), features computed at fit start without the cache
EXTRACTOR = ("method.encoder=extractor", "method.h_reads_fakes=false", "method.clustering.weight=1.0",
             "method.clustering.augment.kind=affine", "extractor=alexnet_random", "extractor.pool=2", "extractor.cache=false")


def test_extractor_modes_come_from_a_head_on_the_frozen_extractor_fed_mined_neighbours(tiny_cfg, tmp_path, monkeypatch):
    """encoder=extractor: h1 is a head on D's trunk (as hybrid), the modes come from a head on the frozen
    extractor's features; with clustering.neighbours the clustering term's second views are mined neighbours.
    The head learns and gets the clustering term's gradient, the extractor's weights never move, and the
    checkpoint rebuilds the same module (what lsgan.evaluate and lsgan.sample load)."""
    from lsgan.data.batch import Batch
    from lsgan.loading import load_method
    from lsgan.nets import SharedTrunkEncoder
    from lsgan.nets.feature_head import FeatureHead

    cfg = validate(tiny_cfg(*DIGITS, *EXTRACTOR, "method.clustering.neighbours=3", "trainer.steps=3"))
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    fresh = build_method(cfg, build_datamodule(cfg))
    assert isinstance(fresh.h1, SharedTrunkEncoder) and fresh.h1.discriminator is fresh.D
    assert isinstance(fresh.mode_net, FeatureHead) and isinstance(fresh.h2, torch.nn.Identity)
    paired = []
    pick = nem.MinedNeighbours.pick
    monkeypatch.setattr(nem.MinedNeighbours, "pick", lambda self, index: paired.append(len(index)) or pick(self, index))
    grab = Grab()
    res = train(cfg, tmp_path, callbacks=[grab])
    m = grab.module
    assert res.iteration == 3 and paired == [8, 8, 8]  # every g step paired its batch with mined neighbours
    assert m.neighbours.table.shape == (len(m.neighbours.train_set), 3)
    params = lambda net: torch.cat([p.detach().flatten() for p in net.parameters()])
    assert not torch.allclose(params(fresh.mode_net.head), params(m.mode_net.head))
    assert torch.equal(params(fresh.mode_net.extractor), params(m.mode_net.extractor))
    assert all(p.grad is None for p in m.mode_net.extractor.parameters())
    assert not m.mode_net.extractor.training  # kept in eval mode while the method trained
    # one more g step on real images: the clustering term (with neighbours) reaches the head; h is frozen for fakes
    captured = {}
    m.step_opt = lambda name, loss: captured.__setitem__(name, loss)
    x, index = m.neighbours.train_set.images(torch.arange(8)), torch.arange(8)
    m.g_step(Batch(x=x, index=index))
    head = list(m.mode_net.head.parameters())
    assert all(g is not None and g.abs().sum() > 0 for g in torch.autograd.grad(captured["g"], head, allow_unused=True))
    assert not any(p.requires_grad for p in m.mode_net.extractor.parameters())
    loaded, _ = load_method(res.checkpoint)
    assert isinstance(loaded.mode_net, FeatureHead)
    saved = torch.load(res.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.equal(v, saved[f"mode_net.{k}"]) for k, v in loaded.mode_net.state_dict().items())
    assert any(k.startswith("mode_net.extractor.") for k in saved)  # the extractor travels with the checkpoint
    m.load_state_dict(saved)
    assert torch.equal(loaded.condition_of(x), m.condition_of(x)) and int(loaded.condition_of(x).max()) < cfg.prior.k
    assert loaded.sample(4, condition=1).shape == (4, 1, 32, 32)


def test_extractor_options_that_do_not_fit_are_refused_in_one_line(tiny_cfg):
    with pytest.raises(ConfigError, match=r"method\.clustering\.neighbours=3 .* needs method\.encoder=extractor "
                                          r"\(got encoder=hybrid\), or neighbours=0") as err:
        validate(tiny_cfg(*DIGITS, "method.encoder=hybrid", "method.clustering.weight=1.0", "method.clustering.neighbours=3"))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"method\.am_margin=0\.4 .* encoder=extractor's mode net .* accepted: "
                                          r"encoder=separate, or am_margin=0") as err:
        validate(tiny_cfg(*DIGITS, *EXTRACTOR, "method.am_margin=0.4"))
    assert "\n" not in str(err.value)
    ring = validate(tiny_cfg(*RING, "method.encoder=extractor"))
    with pytest.raises(ConfigError, match="method.encoder=extractor: dataset=ring8 is not image data"):
        build_method(ring, build_datamodule(ring))
    # SeLa heads: the head on the extractor gives every head its k logits
    cfg = validate(tiny_cfg(*DIGITS, *EXTRACTOR, "method.clustering.assign=sinkhorn", "method.clustering.heads=2"))
    m = build_method(cfg, build_datamodule(cfg))
    assert m.mode_net(torch.zeros(2, 1, 32, 32)).shape == (2, 2 * cfg.prior.k)
    assert m.cluster_logits(torch.zeros(2, 1, 32, 32)).shape == (2, cfg.prior.k)


def test_mode_head_starts_at_unit_scale_and_the_clustering_term_reads_scaled_cosines(tiny_cfg):
    """h2's logits start with std ~1 on unit-scale inputs (not torch's default ~0.2, a nearly flat
    softmax); with the cosine head the clustering term sees the cosines times am_scale, as the mode term."""
    torch.manual_seed(0)
    logits = nem.ModeHead(50, 10, width=64, depth=1)(torch.randn(4096, 50))
    assert 0.6 < logits.std().item() < 1.6
    cfg = validate(tiny_cfg(*DIGITS, "method.am_margin=0.4", "method.am_scale=30", "method.clustering.weight=1"))
    m = build_method(cfg, build_datamodule(cfg)).eval()
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    cos = m.cluster_logits(x)
    assert cos.abs().max() <= 1 + 1e-5
    assert torch.allclose(m.scaled_head_logits(x), 30 * cos)




def test_stratify_modes_draws_every_mode_evenly_and_weights_d(tiny_cfg, tmp_path, monkeypatch):
    """method.stratify_modes=balanced: training latents hold the k modes in equal numbers (sample() still follows
    P_Y), and D's real term gets weights that give each mode h assigns an equal share. The default draws from P_Y
    with no weight. Real steps run."""
    skew = ("prior.k=2", "prior.weights=[0.1,0.9]")
    cfg = validate(tiny_cfg(*DIGITS, *skew))
    plain = build_method(cfg, build_datamodule(cfg))
    torch.manual_seed(0)
    z, y = plain.draw_training_latent(64)
    assert torch.bincount(y, minlength=2)[0] < 20  # P_Y: about 6 of 64 in mode 0
    assert plain.real_mode_weight(torch.zeros(8, 1, 32, 32)) is None
    bal = build_method(validate(tiny_cfg(*DIGITS, *skew, "method.stratify_modes=balanced")), build_datamodule(cfg))
    z, y = bal.draw_training_latent(8)
    assert torch.bincount(y, minlength=2).tolist() == [4, 4]
    assert (z[:, :20].view(8, 2, 10).mean(2).argmax(1) == y).all()  # the latents are the drawn modes' codes
    # h puts 2 of 8 real images in mode 0: those get 8 / (2 · 2) = 2 each, the other six 8 / (2 · 6)
    monkeypatch.setattr(bal, "cluster_logits", lambda x: torch.tensor([[1.0, 0.0]] * 2 + [[0.0, 1.0]] * 6))
    assert torch.allclose(bal.real_mode_weight(torch.zeros(8, 1, 32, 32)), torch.tensor([2.0] * 2 + [2 / 3] * 6))
    monkeypatch.setattr(bal, "cluster_logits", lambda x: torch.tensor([[0.0, 1.0]] * 8))
    assert torch.allclose(bal.real_mode_weight(torch.zeros(8, 1, 32, 32)), torch.ones(8))  # one mode present
    monkeypatch.undo()
    seen = []
    step = nem.NEMGAN.adversarial_d_step

    def spy(self, *args, real_weight=None, **kwargs):
        seen.append(real_weight)
        return step(self, *args, real_weight=real_weight, **kwargs)

    monkeypatch.setattr(nem.NEMGAN, "adversarial_d_step", spy)
    train(tiny_cfg(*DIGITS, *skew, "method.stratify_modes=balanced", "trainer.steps=2"), tmp_path / "balanced")
    assert len(seen) == 2 and all(torch.isclose(r.mean(), torch.tensor(1.0)) for r in seen)
    header = (tmp_path / "balanced" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"loss_d", "mode", "norm"} <= set(header)
    with pytest.raises(ConfigError, match="method.stratify_modes='sometimes' is not accepted; accepted values: none, balanced"):
        validate(tiny_cfg(*DIGITS, "method.stratify_modes=sometimes"))
    with pytest.raises(ConfigError, match="method.stratify_modes=balanced reads h's modes"):
        validate(tiny_cfg(*DIGITS, "method.stratify_modes=balanced", "loss=no_h2"))
