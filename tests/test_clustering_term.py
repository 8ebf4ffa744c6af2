"""The clustering term on real images (lsgan.losses.clustering) and the affine views it uses:
known answers, one-line config errors, real training steps of the methods that carry it
(clustergan's E, nemgan's h), and that it clusters a small two-shape dataset on its own."""
from __future__ import annotations

import math
import re

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from lsgan import losses as L
from lsgan.augment import AugmentConfig, MultiViewAugment, random_affine
from lsgan.config import ConfigError, validate
from lsgan.methods import clustering_term
from lsgan.metrics.clustering import cluster_acc
from lsgan.nets import build_encoder
from lsgan.run import build_datamodule, build_method, train


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


AFFINE = ["method.clustering.weight=1.0", "method.clustering.augment.kind=affine"]
CG = ["method=clustergan", "prior.dim=16", "prior.k=4", "method.n_dis=1", "trainer.steps=3",
      "model.g_width=8", "model.d_width=8", "data.batch_size=8"]
NEM = ["method=nemgan", "prior.dim=20", "model.g_width=8", "model.d_width=8", "data.batch_size=8", "trainer.steps=3"]


# --------------------------------------------------------------------------- the loss
def test_consistency_and_balance_known_answers():
    sure = torch.tensor([[20.0, 0.0], [0.0, 20.0]])  # two images, each confidently in its own cluster
    loss, parts = L.invariant_clustering_loss(sure, sure, balance_weight=2.0)
    assert parts["consistency"].item() == pytest.approx(0.0, abs=1e-6)
    assert parts["marginal_kl"].item() == pytest.approx(0.0, abs=1e-6)  # both clusters used evenly
    one = torch.tensor([[20.0, 0.0], [20.0, 0.0]])  # everything in cluster 0: consistent, not balanced
    loss, parts = L.invariant_clustering_loss(one, one, balance_weight=2.0)
    assert loss.item() == pytest.approx(2.0 * math.log(2.0), abs=1e-5)
    swapped = L.view_consistency_loss(sure, sure.flip(1))  # the views disagree: ~20 nats
    assert swapped.item() == pytest.approx(20.0, abs=1e-3)
    # a prior with masses 1/4, 3/4 and an even batch: KL = ½ log(½/¼) + ½ log(½/¾)
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = 0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0)
    assert L.marginal_kl(p, torch.tensor([0.25, 0.75])).item() == pytest.approx(expected, rel=1e-5)
    assert L.marginal_kl(p).item() == pytest.approx(0.0, abs=1e-6)


def test_reverse_balance_keeps_a_small_cluster_of_a_skewed_prior_alive():
    """At 02:98, every image saturated in the large cluster costs the forward KL only -log 0.98 and
    its gradient vanishes; the reverse KL(prior || marginal) still pulls the small cluster back."""
    prior = torch.tensor([0.02, 0.98])
    p = torch.tensor([[0.5, 0.5], [0.0, 1.0]])  # marginal (1/4, 3/4)
    expected = 0.02 * math.log(0.02 / 0.25) + 0.98 * math.log(0.98 / 0.75)
    assert L.marginal_kl(p, prior, reverse=True).item() == pytest.approx(expected, rel=1e-5)
    assert L.marginal_kl(p, None, reverse=True).item() == pytest.approx(
        L.marginal_kl(p, torch.tensor([0.5, 0.5]), reverse=True).item(), rel=1e-6)
    grads = {}
    for reverse in (False, True):
        logits = torch.tensor([[-14.0, 0.0]] * 64, requires_grad=True)  # all in cluster 1, softmax saturated
        L.marginal_kl(logits.softmax(dim=1), prior, reverse=reverse).backward()
        grads[reverse] = logits.grad[:, 0].sum().item()  # < 0: the loss falls as cluster 0's logits rise
    assert L.marginal_kl(torch.tensor([[0.0, 1.0]]), prior).item() == pytest.approx(-math.log(0.98), abs=1e-6)
    assert grads[True] < -0.01 and abs(grads[False]) < 1e-4


def test_sinkhorn_assignments_meet_the_prior_masses_and_keep_each_row_whole():
    torch.manual_seed(0)
    prior = torch.tensor([0.02, 0.98])
    logits = torch.randn(512, 2) - torch.tensor([6.0, 0.0])  # every softmax says cluster 1, at ~99.7 %
    t = L.sinkhorn_assignments(logits, prior, eps=0.05, iters=100)
    assert torch.allclose(t.sum(dim=1), torch.ones(512), atol=1e-5)
    assert torch.allclose(t.sum(dim=0) / 512, prior, atol=2e-3)
    # the 2 % go to the images whose cluster-0 logit is relatively highest, confidently
    margin = logits[:, 0] - logits[:, 1]
    top = margin.argsort(descending=True)[:8]  # of the 10.24 images' mass; the boundary ones share
    assert t[top, 0].min() > 0.9 and t[:, 0].sum() == pytest.approx(512 * 0.02, rel=0.02)
    flat = L.sinkhorn_assignments(torch.zeros(8, 4), None, eps=0.05, iters=10)  # no preference: the prior
    assert torch.allclose(flat, torch.full((8, 4), 0.25), atol=1e-6)
    with pytest.raises(ValueError, match="prior: need 2 probabilities"):
        L.sinkhorn_assignments(logits, torch.tensor([1.0]))


def test_assignment_loss_trains_both_views_towards_the_labels():
    a = torch.zeros(4, 2, requires_grad=True)
    b = torch.zeros(4, 2, requires_grad=True)
    labels = torch.tensor([0, 1, 1, 1])
    loss, parts = L.assignment_loss(a, b, labels)
    assert loss.item() == pytest.approx(math.log(2), rel=1e-6)  # uniform predictions
    loss.backward()
    assert a.grad[0, 0] < 0 and a.grad[1, 1] < 0 and b.grad[0, 0] < 0  # the labelled class's logit rises
    assert set(parts) == {"assign_ce", "view_agreement"}
    with pytest.raises(ValueError, match="need B×K, B×K and B"):
        L.assignment_loss(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))


def test_sinkhorn_term_labels_its_pool_to_the_prior_masses_and_keeps_labels_between_labellings():
    """SeLa's schedule: off until the ring of recent images is full, then the ring is labelled every `every`
    steps; the labels follow the prior's masses however the net leans (here: every image in cluster 1)."""
    from lsgan.methods.clustering_term import RealClusteringTerm
    term = RealClusteringTerm(1.0, 0.0, AugmentConfig(kind="affine"), (1, 8, 8), torch.tensor([0.25, 0.75]),
                              assign="sinkhorn", sinkhorn_pool=16, sinkhorn_every=3)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    with torch.no_grad():
        net[1].bias.copy_(torch.tensor([-5.0, 5.0]))
    calls = []
    logits_of = lambda x: (calls.append(len(x)), net(x))[1]  # noqa: E731
    torch.manual_seed(0)
    for step in range(6):
        calls.clear()
        loss, parts = term(torch.randn(8, 1, 8, 8), logits_of)
        if step == 0:  # the ring holds 8 of 16: the term is off, the net not called
            assert calls == [] and loss.item() == 0 and int(term.pool_n) == 0
            continue
        if step == 1:  # full: labelled at once, then two views of 8 labelled images
            assert calls == [16, 8, 8] and int(term.pool_n) == 16
            assert (term.pool_y == 0).sum() == 4  # 25 % of 16, though every logit favours cluster 1
            before = term.pool_x.clone()
        if step in (2, 3):  # no labelling: the labelled set stays fixed while the ring moves on
            assert calls == [8, 8] and torch.equal(term.pool_x, before)
        if step == 4:  # 3 steps after the first labelling
            assert calls[0] == 16 and not torch.equal(term.pool_x, before)
        loss.backward()
    assert int(term.pool_n) == 16 and parts["min_label_share"].item() == pytest.approx(0.25)


def test_head_consensus_is_each_heads_mean_adjusted_rand_index_with_the_others():
    from lsgan.methods.clustering_term import head_consensus
    split = torch.tensor([0, 0, 1, 1, 1, 1, 1, 1])
    other = torch.tensor([1, 0, 1, 1, 0, 1, 1, 1])  # a different 2 of 8
    labels = torch.stack([split, 1 - split, other], 1)  # heads 0 and 1: one partition, cluster ids swapped
    score = head_consensus(labels)
    # heads 0 and 1 agree exactly (ARI 1) and each disagrees with head 2 by the same amount
    assert score[0] == score[1] and score[0] > score[2]
    ari_02 = 2 * score[0].item() - 1.0
    assert score[2].item() == pytest.approx(ari_02)


def test_sinkhorn_heads_select_the_head_the_others_agree_with():
    """Head 0 splits by a random projection of the pixels; heads 1 and 2 by brightness (two scales): every head
    is labelled to the prior's masses, the two that find the same split outvote the odd one, and the loss
    trains all of them."""
    from lsgan.methods.clustering_term import RealClusteringTerm
    term = RealClusteringTerm(1.0, 0.0, AugmentConfig(kind="affine"), (1, 8, 8), torch.tensor([0.25, 0.75]),
                              assign="sinkhorn", sinkhorn_pool=64, sinkhorn_every=100, heads=3)
    torch.manual_seed(0)
    projection = torch.nn.Linear(64, 2)
    scale = torch.nn.Parameter(torch.tensor(4.0))

    def logits_of(x):
        bright = x.flatten(1).mean(1, keepdim=True)
        by_brightness = torch.cat([-bright, bright], 1)
        return torch.cat([projection(x.flatten(1)), scale * by_brightness, 2 * scale * by_brightness], 1)

    def batch():  # a quarter dark, the rest bright, with pixel noise
        level = torch.where(torch.randperm(16) < 4, -0.6, 0.6)
        return (level[:, None, None, None] + 0.3 * torch.randn(16, 1, 8, 8)).clamp(-1, 1)

    for _ in range(4):  # the ring (64) fills at the 4th batch: labelled there
        loss, parts = term(batch(), logits_of)
    assert int(term.pool_n) == 64 and term.pool_y.shape == (64, 3)
    # each head labelled to the masses: the brightness heads put exactly the 16 dark images in cluster 0; head
    # 0's hard labels are the argmax of a soft transport, so its count is near 16
    assert ((term.pool_y[:, 1:] == 0).sum(0) == 16).all() and abs(int((term.pool_y[:, 0] == 0).sum()) - 16) <= 4
    assert int(term.head) in (1, 2) and term.head_scores[1] == pytest.approx(term.head_scores[2])
    assert term.head_scores[0] < 0.5 < term.head_scores[1]
    assert parts["head"].item() == int(term.head) and parts["head_score"].item() == pytest.approx(term.head_scores[1].item())
    x = batch()
    at = 2 * int(term.head)
    assert torch.equal(term.select(logits_of(x)), logits_of(x)[:, at:at + 2])
    loss.backward()
    assert projection.weight.grad.abs().sum() > 0 and scale.grad.abs() > 0


def test_sinkhorn_state_from_before_heads_still_loads():
    from lsgan.methods.clustering_term import RealClusteringTerm
    kw = dict(assign="sinkhorn", sinkhorn_pool=8)
    old = RealClusteringTerm(1.0, 0.0, AugmentConfig(kind="affine"), (1, 4, 4), **kw).state_dict()
    old["pool_y"] = torch.arange(8)  # as saved before the SeLa heads: 1-D, no head / head_scores
    del old["head"], old["head_scores"]
    term = RealClusteringTerm(1.0, 0.0, AugmentConfig(kind="affine"), (1, 4, 4), **kw)
    term.load_state_dict(old)
    assert torch.equal(term.pool_y[:, 0], torch.arange(8)) and int(term.head) == 0


def small_pool(monkeypatch, pool: int, every: int) -> None:
    """A pool tiny runs fill: the term reads the module's constants when it is built."""
    monkeypatch.setattr(clustering_term, "SINKHORN_POOL", pool)
    monkeypatch.setattr(clustering_term, "SINKHORN_EVERY", every)


def test_nemgan_sinkhorn_heads_widen_the_mode_net_and_read_one_head(tiny_cfg, tmp_path, monkeypatch):
    keep = Keep()
    small_pool(monkeypatch, 12, 1)
    train(tiny_cfg(*NEM, *AFFINE, "method.encoder=hybrid", "prior.k=3", "method.clustering.assign=sinkhorn",
                   "method.clustering.heads=4"), str(tmp_path), callbacks=[keep])
    m = keep.module
    x = torch.rand(5, 1, 32, 32) * 2 - 1
    assert m.scaled_head_logits(x).shape == (5, 12) and m.cluster_logits(x).shape == (5, 3)
    assert m.condition_of(x).max() < 3
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"head", "head_score"} <= set(header)


@pytest.mark.parametrize("args", [CG, NEM], ids=["clustergan", "nemgan"])
def test_sinkhorn_assign_trains_and_keeps_its_pool_in_the_checkpoint(tiny_cfg, tmp_path, monkeypatch, args):
    keep = Keep()
    small_pool(monkeypatch, 12, 2)
    train(tiny_cfg(*args, *AFFINE, "method.clustering.assign=sinkhorn", "method.clustering.balance_weight=1", "method.encoder=separate"), str(tmp_path), callbacks=[keep])
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"assign_ce", "view_agreement", "min_label_share", "marginal_kl"} <= set(header)
    term = keep.module.cluster_term
    # 3 steps of 8 images: the ring (12) is full from step 2, labelled then; the oldest 4 dropped
    assert int(term.steps) == 2 and int(term.ring_n) == 12 and int(term.pool_n) == 12
    state = keep.module.state_dict()
    assert {"cluster_term." + k for k in ("ring_x", "ring_at", "ring_n", "pool_x", "pool_y", "pool_n", "steps")} <= set(state)


@pytest.mark.parametrize("override,needle", [("method.clustering.assign=hard", "accepted values: soft, sinkhorn"),
                                             ("method.clustering.heads=0", "method.clustering.heads=0: must be >= 1"),
                                             ("method.clustering.heads=3", "it needs method.clustering.assign=sinkhorn")])
def test_assign_options_are_checked(tiny_cfg, override, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)) as err:
        validate(tiny_cfg(*NEM, override))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("cfg_of,override,needle", [
    ("CG", "method.clustering.neighbours=-1", "method.clustering.neighbours=-1: must be >= 0"),
    ("CG", "method.clustering.neighbours=5 method.clustering.assign=sinkhorn", "it needs method.clustering.assign=soft"),
    ("NEM", "method.clustering.neighbours=5", "it needs method.encoder=extractor (got encoder=separate), or neighbours=0"),
])
def test_neighbours_are_checked(tiny_cfg, cfg_of, override, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)) as err:
        validate(tiny_cfg(*{"CG": CG, "NEM": NEM}[cfg_of], *override.split()))
    assert "\n" not in str(err.value)


def test_mined_neighbours_are_the_nearest_by_cosine_and_never_the_image_itself():
    # two tight groups of directions, at different lengths: cosine (not length) makes the neighbours
    torch.manual_seed(0)
    a = torch.tensor([1.0, 0.0, 0.0]) + 0.05 * torch.randn(6, 3)
    b = torch.tensor([0.0, 1.0, 0.0]) + 0.05 * torch.randn(6, 3)
    scale = torch.linspace(0.5, 20, 12)[:, None]
    nb = clustering_term.mine_neighbours(torch.cat([a, b]) * scale, 5)
    assert nb.shape == (12, 5)
    assert (nb[:6] < 6).all() and (nb[6:] >= 6).all()
    assert not (nb == torch.arange(12)[:, None]).any()


def test_the_second_views_come_from_the_partner_images():
    """With partners, the term pairs T(x) with T(partner): a logits map that reads only the image's mean
    gives confident, agreeing clusters for x paired with itself, and a worse loss with opposite partners."""
    torch.manual_seed(0)
    term = clustering_term.RealClusteringTerm(1.0, 0.0, AugmentConfig(kind="affine", rotation=0.0, scale=0.0,
                                                                      shear=0.0, translate=0.0), (1, 8, 8))
    x = torch.cat([torch.full((4, 1, 8, 8), -0.9), torch.full((4, 1, 8, 8), 0.9)])

    def logits_of(images):
        m = images.mean(dim=(1, 2, 3))
        return torch.stack([-10 * m, 10 * m], dim=1)

    alone, _ = term(x, logits_of)
    same, _ = term(x, logits_of, x.clone())
    crossed, _ = term(x, logits_of, x.flip(0))
    assert torch.allclose(alone, same, atol=1e-4) and crossed > alone + 1.0


def test_balance_kl_is_checked(tiny_cfg):
    with pytest.raises(ConfigError, match="method.clustering.balance_kl='backward' is not accepted; accepted values: forward, rev"):
        validate(tiny_cfg(*NEM, "method.clustering.balance_kl=backward"))


def test_gradient_reaches_both_views():
    a = torch.randn(6, 3, requires_grad=True)
    b = torch.randn(6, 3, requires_grad=True)
    L.invariant_clustering_loss(a, b, 2.0)[0].backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


# --------------------------------------------------------------------------- the views
def test_affine_views_differ_per_image_and_keep_range_and_background():
    x = torch.full((5, 1, 16, 16), -1.0)
    x[:, :, 4:12, 7:9] = 1.0  # a vertical bar on background
    torch.manual_seed(0)
    views = MultiViewAugment(AugmentConfig(kind="affine"), (1, 16, 16))(x)
    assert views.shape == x.shape and views.min() >= -1 - 1e-6 and views.max() <= 1 + 1e-6
    assert not torch.allclose(views[0], views[1])
    assert views[:, :, 0, 0].allclose(torch.tensor(-1.0))  # corners stay background
    same = random_affine(x, rotation=0.0, scale=0.0, shear=0.0, translate=0.0)
    assert torch.allclose(same, x, atol=1e-5)  # no deformation: the identity


@pytest.mark.parametrize("override,needle", [
    ("method.clustering.augment.kind=mirror", "method.clustering.augment.kind"),
    ("method.clustering.augment.rotation=-3", "method.clustering.augment.rotation"),
    ("method.clustering.weight=-1", "method.clustering.weight"),
    ("method.lr_e=0", "method.lr_e"),
])
def test_bad_values_are_one_line(tiny_cfg, override, needle):
    with pytest.raises(ConfigError) as err:
        validate(tiny_cfg(*CG, override))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_nemgan_drops_the_term_with_h2(tiny_cfg):
    """loss=no_h2 removes h2, which the term trains: a recipe's ablation composes, without the term
    (tests/test_nemgan.py checks that the mode net then stays untrained)."""
    cfg = validate(tiny_cfg(*NEM, "loss=no_h2", "method.clustering.weight=1"))
    assert build_method(cfg, build_datamodule(cfg)).cluster_term is None
    cfg = validate(tiny_cfg(*NEM, "loss=no_h1", "method.clustering.weight=1"))
    assert build_method(cfg, build_datamodule(cfg)).cluster_term is not None


# --------------------------------------------------------------------------- in the methods
class Keep(pl.Callback):
    def on_train_start(self, trainer, m):
        self.before = {k: v.detach().clone() for k, v in m.state_dict().items()}

    def on_train_end(self, trainer, m):
        self.module = m


@pytest.mark.parametrize("method,net,args", [("clustergan", "E.", CG), ("nemgan", "h1.", NEM)])
def test_the_term_trains_the_encoder_on_real_images(tiny_cfg, tmp_path, method, net, args):
    keep = Keep()
    train(tiny_cfg(*args, *AFFINE, "method.encoder=separate"), str(tmp_path), callbacks=[keep])
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"consistency", "marginal_kl"} <= set(header)
    after = keep.module.state_dict()
    assert any(not torch.equal(v, after[k]) for k, v in keep.before.items() if k.startswith(net) and v.is_floating_point())


def test_off_by_default_as_the_papers(tiny_cfg):
    from lsgan.run import build_datamodule, build_method

    for args in (CG, NEM):
        cfg = validate(tiny_cfg(*args))
        assert cfg.method.clustering.weight == 0.0
        assert build_method(cfg, build_datamodule(cfg)).cluster_term is None  # weight 0: no term built


# --------------------------------------------------------------------------- it clusters
def _bars(n: int, gen: torch.Generator) -> tuple:
    """n 28-px images of a horizontal (class 0) or vertical (class 1) bar at a random place."""
    x = torch.full((n, 1, 28, 28), -1.0)
    y = torch.randint(0, 2, (n,), generator=gen)
    pos = torch.randint(11, 15, (n,), generator=gen)
    for i in range(n):
        p = int(pos[i])
        if y[i] == 0:
            x[i, 0, p:p + 3, 6:22] = 1.0
        else:
            x[i, 0, 6:22, p:p + 3] = 1.0
    return x, y


def test_the_term_alone_clusters_two_shapes():
    """An untrained encoder splits the shapes at 0.61-0.78; 60 steps of the term on affine views
    separate horizontal from vertical bars (measured, seeds 0-2: accuracy 1.0 from step 30)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x, y = _bars(256, gen)
    enc = build_encoder(OmegaConf.create({"arch": "dcgan", "d_width": 8, "mlp_width": 32, "mlp_depth": 1}),
                        (1, 28, 28), 2)
    aug = MultiViewAugment(AugmentConfig(kind="affine", rotation=10.0), (1, 28, 28))
    opt = torch.optim.Adam(enc.parameters(), lr=1e-3)
    for step in range(60):
        batch = x[torch.randint(0, len(x), (32,), generator=gen)]
        loss, _ = L.invariant_clustering_loss(enc(aug(batch)), enc(aug(batch)), balance_weight=2.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = enc(x).argmax(1)
    assert cluster_acc(y, pred) > 0.95


@pytest.mark.parametrize("reads", [True, False])
def test_e_reads_fakes_false_leaves_e_out_of_the_cluster_term(tiny_cfg, reads):
    """With e_reads_fakes=false the cluster term on G's samples reaches G and not E (β_n = 0 here,
    so the recovery term, which always trains E, is out of the picture)."""
    from lsgan.data.batch import Batch
    from lsgan.run import build_datamodule, build_method

    cfg = validate(tiny_cfg(*CG, "method.zn_weight=0", "method.encoder=separate", f"method.e_reads_fakes={reads}"))
    m = build_method(cfg, build_datamodule(cfg))
    captured = {}
    m.step_opt = lambda name, loss: captured.__setitem__(name, loss)
    m.g_step(Batch(x=torch.rand(8, 1, 32, 32) * 2 - 1, index=torch.arange(8)))
    e_grads = torch.autograd.grad(captured["g"], list(m.E.parameters()), retain_graph=True, allow_unused=True)
    g_grads = torch.autograd.grad(captured["g"], list(m.G.parameters()), allow_unused=True)
    e_moved = any(g is not None and g.abs().sum() > 0 for g in e_grads)
    assert e_moved == reads
    assert any(g is not None and g.abs().sum() > 0 for g in g_grads)


def test_lr_e_gives_e_its_own_rate_and_null_keeps_one_group(tiny_cfg):
    from lsgan.run import build_datamodule, build_method

    def groups(*extra):
        cfg = validate(tiny_cfg(*CG, "method.encoder=separate", *extra))
        g = build_method(cfg, build_datamodule(cfg)).optimizer_groups()["g"]
        return g["params"], g["lr"]

    params, lr = groups("method.lr_e=1e-3")
    assert [group.get("lr", lr) for group in params] == [lr, 1e-3]
    params, _ = groups()  # null: one group over G and E, as checkpoints written before lr_e existed hold
    assert all(isinstance(p, torch.nn.Parameter) for p in params)


@pytest.mark.parametrize("reads", [True, False])
def test_h_reads_fakes_false_leaves_h_out_of_the_mode_term(tiny_cfg, reads):
    """nemgan's h_reads_fakes=false: the mode term on g's samples reaches g and not h (norm weight 0,
    so the norm term, which always trains h1, is out of the picture)."""
    from lsgan.data.batch import Batch
    from lsgan.run import build_datamodule, build_method

    cfg = validate(tiny_cfg(*NEM, "method.norm_weight=0", f"method.h_reads_fakes={reads}"))
    m = build_method(cfg, build_datamodule(cfg))
    captured = {}
    m.step_opt = lambda name, loss: captured.__setitem__(name, loss)
    logs = m.g_step(Batch(x=torch.rand(8, 1, 32, 32) * 2 - 1, index=torch.arange(8)))
    assert "mode" in logs
    h_params = list(m.h1.parameters()) + list(m.h2.parameters())
    h_grads = torch.autograd.grad(captured["g"], h_params, retain_graph=True, allow_unused=True)
    g_grads = torch.autograd.grad(captured["g"], list(m.G.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in h_grads) == reads
    assert any(g is not None and g.abs().sum() > 0 for g in g_grads)


def test_soft_assign_keeps_the_state_of_checkpoints_from_before_the_sinkhorn_option(tiny_cfg):
    cfg = validate(tiny_cfg(*NEM, *AFFINE))
    assert not any("pool" in key for key in build_method(cfg, build_datamodule(cfg)).state_dict())


# each method with its clusterer a head on a random AlexNet and 3 mined neighbours (features computed at fit start)
_ON_EXTRACTOR = ("method.clustering.neighbours=3", "method.clustering.augment.kind=affine", "extractor=alexnet_random",
                 "extractor.pool=2", "extractor.cache=false", "model.g_width=8", "model.d_width=8", "data.batch_size=8")
_HEADS = {
    "clustergan": (("method=clustergan", "prior.dim=16", "prior.k=4", "method.adv_loss=hinge", "method.n_dis=1",
                    "method.encoder=extractor", "method.e_reads_fakes=false", "method.clustering.weight=1.0"),
                   lambda m: m.E.parts[1]),
    "nemgan": (("method=nemgan", "prior.dim=20", "method.encoder=extractor", "method.h_reads_fakes=false",
                "method.clustering.weight=1.0"), lambda m: m.mode_net),
    "slcgan": (("method=slcgan", "method.num_clusters=3", "method.c_net=extractor"), lambda m: m.C.net),
}


@pytest.mark.parametrize("name", sorted(_HEADS))
def test_with_mined_neighbours_a_head_on_the_extractor_reads_real_images_from_the_mined_features(tiny_cfg, name):
    """The features the neighbours were mined in are the ones the head's own extractor pass gives, so real
    images (and their neighbours) are read from there: in a training step the extractor sees G's samples only,
    and the clustering term still trains the head."""
    from lsgan.data.batch import Batch

    overrides, head_of = _HEADS[name]
    cfg = validate(tiny_cfg(*overrides, *_ON_EXTRACTOR))
    pl.seed_everything(0, workers=True, verbose=False)
    dm = build_datamodule(cfg)
    m = build_method(cfg, dm)
    dm.setup("fit")
    m.neighbours.fit(cfg, dm)
    head, nb = head_of(m), m.neighbours
    real = nb.train_set.images(torch.arange(len(nb.train_set)))
    index = torch.arange(8)
    head.eval()
    assert torch.allclose(head.from_features(nb.features[index]), head(real[index]), atol=1e-4)
    head.train()
    seen, grads = [], {}
    hook = head.extractor.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    m.step_opt = lambda opt, loss: grads.update(
        {opt: torch.autograd.grad(loss, list(head.head.parameters()), allow_unused=True)} if loss.requires_grad else {})
    batch = Batch(x=real[index], index=index)
    m.d_step(batch)
    m.g_step(batch)
    hook.remove()
    assert seen, "the extractor never ran: G's samples must still pass through it"
    flat = real.flatten(1)
    for x in seen:  # no input of the extractor is a training image (real batch or neighbour)
        assert torch.cdist(x.flatten(1), flat).min() > 1e-4
    trained = grads["c" if name == "slcgan" else "g"]
    assert any(g is not None and g.abs().sum() > 0 for g in trained)
