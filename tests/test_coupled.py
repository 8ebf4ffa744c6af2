"""method=coupled: pair sampling, the triple coupled loss, the pair discriminator, and training."""
from __future__ import annotations

import csv
import math

import pytest
import torch
from omegaconf import OmegaConf

from lsgan.config import ConfigError
from lsgan.data.pairs import nearest_farthest
from lsgan.losses import triple_coupled_d_loss, triple_coupled_g_loss
from lsgan.nets.pair import PairDiscriminator


# --------------------------------------------------------------------------- pairs
def brute_force(q, pool, p, exclude):
    near, far = [], []
    for i in range(len(q)):
        best, worst = None, None
        for j in range(len(pool)):
            if exclude(i, j):
                continue
            d = sum(abs(float(a) - float(b)) ** p for a, b in zip(q[i], pool[j])) ** (1.0 / p)
            if best is None or d < best[0]:
                best = (d, j)
            if worst is None or d > worst[0]:
                worst = (d, j)
        near.append(best[1])
        far.append(worst[1])
    return near, far


@pytest.mark.parametrize("p", [1, 2])
def test_nearest_farthest_matches_brute_force_and_never_self(p):
    gen = torch.Generator().manual_seed(p)
    f = torch.randn(13, 6, generator=gen)
    f[7] = f[2]  # an exact duplicate: its partner must be the other copy, never itself
    near, far = nearest_farthest(f, p=p)
    assert near.dtype == far.dtype == torch.int64 and near.shape == far.shape == (13,)
    ref_near, ref_far = brute_force(f, f, p, lambda i, j: i == j)
    assert near.tolist() == ref_near and far.tolist() == ref_far
    assert (near != torch.arange(13)).all() and (far != torch.arange(13)).all()
    assert near[2] == 7 and near[7] == 2


def test_l1_and_l2_can_disagree():
    # (0,0) vs candidates (3,0) [L1 3, L2 3] and (2,2) [L1 4, L2 2.83]: the metric decides.
    f = torch.tensor([[0.0, 0.0], [3.0, 0.0], [2.0, 2.0]])
    assert nearest_farthest(f, p=1)[0][0] == 1
    assert nearest_farthest(f, p=2)[0][0] == 2


def test_nearest_farthest_over_a_pool_excludes_the_query_by_id():
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(5, 4, generator=gen)
    extra = torch.randn(9, 4, generator=gen)
    pool = torch.cat([q, extra])
    q_ids = torch.tensor([10, 11, 12, 13, 14])
    pool_ids = torch.cat([q_ids, torch.tensor([20, 21, 22, 10, 23, 24, 25, 26, 27])])
    pool[8] = q[0]  # the same example (id 10) drawn again into the pool: still excluded
    near, far = nearest_farthest(q, p=1, pool=pool, query_ids=q_ids, pool_ids=pool_ids)
    ref_near, ref_far = brute_force(q, pool, 1, lambda i, j: int(pool_ids[j]) == int(q_ids[i]))
    assert near.tolist() == ref_near and far.tolist() == ref_far
    assert all(int(pool_ids[j]) != int(q_ids[i]) for idx in (near, far) for i, j in enumerate(idx.tolist()))
    with pytest.raises(ValueError, match="query_ids"):
        nearest_farthest(q, pool=pool, query_ids=q_ids)
    with pytest.raises(ValueError, match="at least 2"):
        nearest_farthest(q[:1])


# --------------------------------------------------------------------------- loss
def test_triple_coupled_loss_against_hand_computed_values():
    # logits 0, ln 3, −ln 3 are probabilities 1/2, 3/4, 1/4
    l3 = math.log(3.0)
    d_adv = torch.tensor([0.0, l3])     # D(x_adv): 1/2, 3/4
    d_same = torch.tensor([0.0, -l3])   # D(x_same): 1/2, 1/4
    d_diff = torch.tensor([l3, l3])     # D(x_diff): 3/4, 3/4
    L_adv = (math.log(1 - 0.5) + math.log(1 - 0.75)) / 2
    L_same = (math.log(0.5) + math.log(0.25)) / 2
    L_diff = math.log(1 - 0.75)
    got = triple_coupled_d_loss(d_adv, d_same, d_diff, lambda_adv=1.0, lambda_same=2.0, lambda_diff=0.5)
    assert got.item() == pytest.approx(-(L_adv + 2.0 * L_same + 0.5 * L_diff), abs=1e-6)
    assert triple_coupled_d_loss(d_adv, d_same, d_diff).item() == pytest.approx(-(L_adv + L_same + L_diff), abs=1e-6)
    # ablations: a zero-weight term may be omitted
    assert triple_coupled_d_loss(d_adv, None, None, lambda_same=0, lambda_diff=0).item() == pytest.approx(-L_adv, abs=1e-6)
    assert triple_coupled_d_loss(d_adv, d_same, None, lambda_diff=0).item() == pytest.approx(-(L_adv + L_same), abs=1e-6)
    with pytest.raises(ValueError, match="d_diff"):
        triple_coupled_d_loss(d_adv, d_same, None)
    # G: non-saturating −E log D(x_adv), saturating E log(1 − D(x_adv))
    ns = -(math.log(0.5) + math.log(0.75)) / 2
    assert triple_coupled_g_loss(d_adv).item() == pytest.approx(ns, abs=1e-6)
    assert triple_coupled_g_loss(d_adv, saturating=True).item() == pytest.approx(L_adv, abs=1e-6)


def test_d_loss_gradient_pushes_each_pair_type_the_right_way():
    logits = torch.zeros(3, requires_grad=True)
    triple_coupled_d_loss(logits[0:1], logits[1:2], logits[2:3]).backward()
    g = logits.grad
    assert g[0] > 0 and g[1] < 0 and g[2] > 0  # descent lowers adv & diff logits, raises same


# --------------------------------------------------------------------------- pair discriminator
MODEL = OmegaConf.create({"arch": "dcgan", "g_width": 4, "d_width": 4, "mlp_width": 8, "mlp_depth": 1,
                          "spectral_norm": True, "g_batchnorm": True})
SHAPE = (1, 28, 28)


def test_pair_discriminator_randomises_order_per_sample():
    torch.manual_seed(0)
    pd = PairDiscriminator(MODEL, SHAPE)
    pd.net.eval()  # freeze spectral norm's power iteration so repeated calls are comparable
    assert pd.training and pd.net.trunk.body[0].in_channels == 2  # the arch's D on 2·C channels
    a, b = torch.randn(64, *SHAPE), torch.randn(64, *SHAPE)
    with torch.no_grad():
        ab, ba = pd.net(pd.stack(a, b)), pd.net(pd.stack(b, a))
        out = pd(a, b, generator=torch.Generator().manual_seed(3))
    swap = torch.rand(64, generator=torch.Generator().manual_seed(3)) < 0.5
    assert torch.allclose(out, torch.where(swap, ba, ab), atol=1e-6)
    assert 10 < int(swap.sum()) < 54  # both orders occur
    pd.eval()  # eval: both orders averaged, so D is symmetric
    with torch.no_grad():
        assert torch.allclose(pd(a, b), pd(b, a), atol=1e-6)
        assert torch.allclose(pd(a, b), 0.5 * (ab + ba), atol=1e-6)


def _position_game(randomize: bool) -> float:
    """Train D to call (bright, dark) true and (dark, bright) false; return the final BCE."""
    torch.manual_seed(0)
    pd = PairDiscriminator(MODEL, SHAPE, randomize_order=randomize)
    opt = torch.optim.Adam(pd.parameters(), lr=2e-3)

    def game(n):
        bright, dark = 0.5 + 0.3 * torch.randn(n, *SHAPE), -0.5 + 0.3 * torch.randn(n, *SHAPE)
        return triple_coupled_d_loss(pd(dark, bright), pd(bright, dark), None, lambda_diff=0)

    for _ in range(8):
        loss = game(8)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return game(64).item()


def test_pair_order_randomisation_hides_position_from_d():
    # Fixed order: position alone separates the two pair types. Random order: the two pair
    # types have the same distribution, so D stays at chance (2·ln 2 for the two BCE terms).
    assert _position_game(randomize=False) < 0.3
    assert _position_game(randomize=True) > 2 * math.log(2) - 0.1


# --------------------------------------------------------------------------- method
@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory):
    """One feature cache for the module: the digits features are extracted once, then hit."""
    return tmp_path_factory.mktemp("features")


@pytest.fixture
def coupled_cfg(tiny_cfg, feature_cache):
    def _make(*extra):
        return tiny_cfg("method=coupled", "dataset=digits", "extractor=alexnet_random", "extractor.pool=1", "data.max_train=64",
                        "model.g_width=8", "model.d_width=8", "data.batch_size=8",
                        f"extractor.cache_dir={feature_cache}", *extra)
    return _make


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("loss,cols,absent", [
    ("full", ("d_adv", "d_same", "d_diff"), ()),
    ("proto_a", ("d_adv",), ("d_same", "d_diff")),
    ("proto_b", ("d_adv", "d_same"), ("d_diff",)),
    ("proto_c", ("d_adv", "d_diff"), ("d_same",)),
    ("feature_cgan", ("d_real", "d_fake"), ("d_adv",)),
])
def test_each_ablation_trains(coupled_cfg, tmp_path, loss, cols, absent):
    from lsgan.run import train

    res = train(coupled_cfg(f"loss={loss}", "trainer.steps=3"), tmp_path / "run")
    assert res.iteration == 3
    rows = read_csv(res.metrics_csv)
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    d_rows = [r for r in rows if r.get("loss_d")]
    assert [int(r["step"]) for r in d_rows] == [1, 3]  # n_gen=2: D at iterations 0 and 2
    assert all(math.isfinite(float(r["loss_g"])) for r in rows)  # G every iteration
    for c in cols:
        assert all(math.isfinite(float(r[c])) for r in d_rows), c
    for c in absent:
        assert c not in rows[0] or not any(r[c] for r in rows), c


@pytest.mark.parametrize("loss", ["full", "feature_cgan"])
@pytest.mark.parametrize("form,saturating", [("ns", False), ("minimax", True)])
def test_adv_loss_picks_gs_form_of_the_bce_game(coupled_cfg, tmp_path, monkeypatch, loss, form, saturating):
    """method.adv_loss=ns is G's non-saturating −log D, minimax the saturating log(1 − D) (what method.g_loss=ns |
    saturating was), for the pair game and the feature cGAN alike."""
    import lsgan.methods.coupled as coupled
    from lsgan.run import train

    seen = []

    def spy(d_adv, saturating=False):
        seen.append(saturating)
        return triple_coupled_g_loss(d_adv, saturating=saturating)

    monkeypatch.setattr(coupled, "triple_coupled_g_loss", spy)
    res = train(coupled_cfg(f"loss={loss}", f"method.adv_loss={form}", "trainer.steps=2"), tmp_path / "run")
    assert res.iteration == 2 and seen == [saturating, saturating]


def test_sampling_api_and_exemplar_grid(coupled_cfg, tmp_path):
    from lsgan.run import train

    res = train(coupled_cfg("trainer.steps=2", "trainer.sample_every=2"), tmp_path / "run")
    assert (res.run_dir / "samples" / "latest.png").is_file()
    from lsgan.loading import load_method

    m, _ = load_method(res.checkpoint)
    x = m.grid_images[:3]
    f = m.condition_of(x)
    assert f.shape == (3, m.feat_dim)
    torch.manual_seed(1)
    from_images = m.sample(6, condition=x)      # 2 per exemplar, in blocks
    torch.manual_seed(1)
    from_feats = m.sample(6, condition=f)
    assert from_images.shape == (6, 1, 32, 32) and torch.allclose(from_images, from_feats, atol=1e-5)
    assert m.sample(4, condition=f[0]).shape == (4, 1, 32, 32)  # "more like this"
    assert m.sample(5).shape == (5, 1, 32, 32)                  # random stored exemplars
    grid = m.sample_grid()
    assert grid.shape == (m.mcfg.grid_rows * 10, 1, 32, 32)
    assert torch.equal(grid[::10], m.grid_images)              # first column: the real exemplar
    with pytest.raises(ValueError, match="condition"):
        m.sample(5, condition=f[:2])


def test_a_checkpoint_that_calls_the_extractor_E_still_loads(coupled_cfg, tmp_path):
    """Checkpoints written before the frozen extractor was named ``extractor`` hold it under ``E.``: they load
    (the loader and a resume both go through load_state_dict) into the same method."""
    from lsgan.loading import load_method
    from lsgan.run import train

    res = train(coupled_cfg("trainer.steps=2"), tmp_path / "run")
    ckpt = torch.load(res.checkpoint, map_location="cpu", weights_only=False)
    assert any(k.startswith("extractor.") for k in ckpt["state_dict"])
    ckpt["state_dict"] = {("E." + k[len("extractor."):] if k.startswith("extractor.") else k): v
                          for k, v in ckpt["state_dict"].items()}
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    new, _ = load_method(res.checkpoint)
    loaded, _ = load_method(str(old))
    for k, v in new.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_partners_are_feature_space_nearest_and_farthest(coupled_cfg):
    from lsgan.config import validate
    from lsgan.features import features_for_datamodule
    from lsgan.run import build_datamodule, build_method

    cfg = validate(coupled_cfg("method.pair_pool=16"))
    dm = build_datamodule(cfg)
    dm.attach_features(features_for_datamodule(cfg, dm))
    m = build_method(cfg, dm)
    m._train_set = dm.train_set
    batch = dm.train_set.__getitems__(list(range(8)))
    f = batch.feat
    torch.manual_seed(0)
    near_x, far_x = m.partners(batch, f)
    # the same draw of pool indices, then brute force over batch ∪ pool, never the image itself
    torch.manual_seed(0)
    extra = torch.randint(0, len(dm.train_set), (16,))
    ids = torch.cat([batch.index, extra])
    feats = dm.train_set.features[ids]
    for i in range(8):
        d = (feats - f[i]).abs().sum(dim=1)
        d[ids == batch.index[i]] = float("nan")
        j_near = int(torch.where(torch.isnan(d), float("inf"), d).argmin())
        j_far = int(torch.where(torch.isnan(d), float("-inf"), d).argmax())
        assert torch.equal(near_x[i], dm.train_set.images([int(ids[j_near])])[0])
        assert torch.equal(far_x[i], dm.train_set.images([int(ids[j_far])])[0])
    m.mcfg.pair_pool = 0  # within the batch (the paper's Algorithm 1)
    near_x, far_x = m.partners(batch, f)
    near, far = nearest_farthest(f, p=1)
    assert torch.equal(near_x, batch.x[near]) and torch.equal(far_x, batch.x[far])


def test_bad_coupled_config_is_one_line(coupled_cfg):
    from lsgan.config import validate

    with pytest.raises(ConfigError, match="method.g_loss=saturating: .*write method.adv_loss=minimax"):
        validate(coupled_cfg("method.g_loss=saturating"))
    with pytest.raises(ConfigError, match=r"method.adv_loss='hinge' is not accepted by method=coupled; "
                                          r"accepted values: ns, minimax"):
        validate(coupled_cfg("method.adv_loss=hinge"))
    with pytest.raises(ConfigError, match=r"loss=hinge: loss= names the objective/ablation \(accepted for "
                                          r"method=coupled: full, proto_a, proto_b, proto_c, feature_cgan\)"):
        validate(coupled_cfg("loss=hinge"))
    with pytest.raises(ConfigError, match="model.arch=mlp"):
        validate(coupled_cfg("model=mlp"))


# --------------------------------------------------------------------------- latent-space statistics
def test_border_statistics_known_answer(tmp_path):
    from lsgan.metrics.latent import border_effect_figure, border_statistics

    # 20 points on a line, class 0 at x = 0..9 and class 1 at x = 10..19; with k = 2 only the
    # two points at the class boundary (x = 9, 10) have a neighbour of the other class.
    f = torch.stack([torch.arange(20.0), torch.linspace(0, 0.01, 20)], dim=1)
    y = (torch.arange(20) >= 10).long()
    correct = torch.ones(20, dtype=torch.bool)
    correct[9] = correct[10] = False
    stats = border_statistics(f, y, correct, k=2, bins=2)
    assert stats["border_fraction"] == pytest.approx(0.1)
    assert stats["accuracy_interior"] == 1.0 and stats["accuracy_border"] == 0.0
    assert stats["accuracy"] == pytest.approx(0.9)
    assert [b["n"] for b in stats["accuracy_by_purity"]] == [0, 20]  # purities 0.5 and 1.0 fall in the upper bin
    assert stats["purity_accuracy_corr"] == pytest.approx(1.0)
    path = border_effect_figure(f, y, correct, str(tmp_path / "border.png"))
    assert (tmp_path / "border.png").stat().st_size > 0 and path.endswith("border.png")


def test_mode_seeking_term_trains_and_is_logged(coupled_cfg, tmp_path):
    from lsgan.run import train

    res = train(coupled_cfg("method.mode_seeking_weight=1.0", "trainer.steps=2"), tmp_path / "run")
    rows = read_csv(res.metrics_csv)
    assert all(math.isfinite(float(r["mode_seeking"])) and float(r["mode_seeking"]) > 0 for r in rows)


def test_feature_term_is_one_minus_the_cosine_through_the_frozen_extractor(coupled_cfg):
    """G's loss gains weight * (1 - cos(E(sample), f)); its gradient reaches G, never E."""
    import torch.nn.functional as F

    from lsgan.config import validate
    from lsgan.data.batch import Batch
    from lsgan.run import build_datamodule, build_method

    cfg = validate(coupled_cfg("method.feature_weight=2.0", "extractor.cache_dir=null"))
    m = build_method(cfg, build_datamodule(cfg))
    m.eval()
    x = torch.rand(8, 1, 32, 32) * 2 - 1

    def g_loss(weight):
        m.mcfg.feature_weight = weight
        captured = {}
        m.step_opt = lambda name, loss: captured.__setitem__(name, loss)
        torch.manual_seed(0)
        logs = m.g_step(Batch(x=x, index=torch.arange(8)))
        return captured["g"], logs

    with_term, logs = g_loss(2.0)
    without, _ = g_loss(0.0)
    torch.manual_seed(0)
    fake = m.G(m.g_input(m.draw_z(8), m.condition_of(x)))
    cos = F.cosine_similarity(m.extractor(fake).reshape(8, -1), m.condition_of(x), dim=1).mean()
    assert logs["feature_cos"].item() == pytest.approx(cos.item(), abs=1e-5)
    assert (with_term - without).item() == pytest.approx(2.0 * (1 - cos.item()), abs=1e-4)
    term = with_term - without
    assert all(not p.requires_grad for p in m.extractor.parameters())
    grads = torch.autograd.grad(term, list(m.G.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_realism_term_is_an_ordinary_d_game_on_single_images(coupled_cfg, tmp_path):
    """With realism_weight w, D's loss gains w * BCE(D.judge(x) real, D.judge(fake) false) and G's
    w * (-log sigmoid(D.judge(fake))); with w = 0 no single-image D exists (the paper's nets, old checkpoints)."""
    from lsgan.config import validate
    from lsgan.data.batch import Batch
    from lsgan.losses import d_bce
    from lsgan.run import build_datamodule, build_method, train

    cfg = validate(coupled_cfg("method.realism_weight=0.5", "extractor.cache_dir=null"))
    m = build_method(cfg, build_datamodule(cfg))
    assert m.D.single is not None
    plain = validate(coupled_cfg("extractor.cache_dir=null"))
    assert build_method(plain, build_datamodule(plain)).D.single is None
    m.eval()
    x = torch.rand(8, 1, 32, 32) * 2 - 1
    batch = Batch(x=x, index=torch.arange(8))

    def losses(weight):
        m.mcfg.realism_weight = weight
        captured = {}
        m.step_opt = lambda name, loss: captured.__setitem__(name, loss)
        torch.manual_seed(0)
        m.d_step(batch)
        torch.manual_seed(1)
        m.g_step(batch)
        return captured

    on, off = losses(0.5), losses(0.0)
    torch.manual_seed(0)
    fake = m.G(m.g_input(m.draw_z(8), m.condition_of(x)))
    expected_d = 0.5 * d_bce(m.D.judge(x), m.D.judge(fake))
    assert (on["d"] - off["d"]).item() == pytest.approx(expected_d.item(), abs=1e-5)
    torch.manual_seed(1)
    fake = m.G(m.g_input(m.draw_z(8), m.condition_of(x)))
    expected_g = 0.5 * torch.nn.functional.softplus(-m.D.judge(fake)).mean()
    assert (on["g"] - off["g"]).item() == pytest.approx(expected_g.item(), abs=1e-5)

    res = train(coupled_cfg("method.realism_weight=1.0", "trainer.steps=2"), tmp_path / "run")
    rows = read_csv(res.metrics_csv)
    assert all(math.isfinite(float(r["g_realism"])) for r in rows)
    assert math.isfinite(float(rows[0]["d_realism"]))
