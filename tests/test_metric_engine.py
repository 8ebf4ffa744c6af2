"""The torchmetrics Metrics of lsgan.metrics.engine: the pure functions' numbers, batch by batch and
across two processes (gloo on the CPU)."""
from __future__ import annotations

import socket
from datetime import timedelta

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torchmetrics.clustering import AdjustedRandScore, NormalizedMutualInfoScore

from lsgan.metrics import (PRDC, ClassMasses, ClasswiseKL, ClusteringAccuracy, ConditionalAccuracy, FeatureFID,
                           FeatureKID, IntraFID, LikeScore, StackedMNISTModes, ToyModes, WithinConditionVariety,
                           ZVariety, ari, balanced_cluster_acc, class_masses, classwise_knn_kl_matrix, cluster_acc,
                           cluster_conditional_accuracy, exemplar_conditional_accuracy, fid_from_features, intra_fid,
                           kid_from_features, like_score, nmi, prdc, purity, ring_centers, stacked_mnist_modes,
                           toy_mode_stats, within_condition_variety, z_variety)

TOL = 1e-6


def _data(seed=0, n=600, d=6, K=5, C=5):
    """Generated features with conditions (condition k drawn near class perm[k], 25 % of predictions wrong),
    real features with classes."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(C, d)) * 4
    perm = rng.permutation(C) if K == C else rng.integers(0, C, K)
    cond = rng.integers(0, K, n)
    pred = perm[cond].copy()
    wrong = rng.random(n) < 0.25
    pred[wrong] = rng.integers(0, C, wrong.sum())
    gen = centers[perm[cond]] + rng.normal(size=(n, d)) * rng.uniform(0.2, 1.0, (K, 1))[cond]
    labels = rng.integers(0, C, n + 100)
    real = centers[labels] + rng.normal(size=(n + 100, d))
    # exemplars: X real-like feature rows, each with r draws near it (draw spread varying by exemplar)
    X, r = 30, 7
    ex_cls = rng.integers(0, C, X)
    ex = centers[ex_cls] + rng.normal(size=(X, d))
    draws = ex[:, None, :] + rng.normal(size=(X, r, d)) * rng.uniform(0.1, 1.0, (X, 1, 1))
    return {"cond": cond, "pred": pred, "gen": gen.astype(np.float32), "labels": labels,
            "real": real.astype(np.float32), "perm": perm, "ex": ex.astype(np.float32), "ex_cls": ex_cls,
            "draws": draws.astype(np.float32)}


def _batched(metric, *arrays, parts=3, **kw):
    """Update ``metric`` with ``arrays`` in ``parts`` row chunks (as training steps would)."""
    for idx in np.array_split(np.arange(len(arrays[0])), parts):
        metric.update(*[torch.as_tensor(a[idx]) for a in arrays], **kw)
    return metric


@pytest.mark.parametrize("K,C", [(5, 5), (8, 5), (4, 6)])
def test_count_matrix_metrics_equal_the_pure_functions(K, C):
    x = _data(K=K, C=C)
    cond, pred = x["cond"], x["pred"]
    acc = _batched(ClusteringAccuracy(K, C), cond, pred)
    rep = acc.report()
    assert float(acc.compute()) == pytest.approx(cluster_acc(pred, cond), abs=TOL)
    assert rep["acc"] == pytest.approx(cluster_acc(pred, cond), abs=TOL)
    assert rep["balanced_acc"] == pytest.approx(balanced_cluster_acc(pred, cond, K, C), abs=TOL)
    assert rep["purity"] == pytest.approx(purity(pred, cond), abs=TOL) and rep["n"] == len(cond)
    # torchmetrics' NMI / ARI, what the suite reports, against scikit-learn's
    assert float(_batched(NormalizedMutualInfoScore(), cond, pred).compute()) == pytest.approx(nmi(pred, cond), abs=TOL)
    assert float(_batched(AdjustedRandScore(), cond, pred).compute()) == pytest.approx(ari(pred, cond), abs=TOL)

    ca = _batched(ConditionalAccuracy(K, C), cond, pred)
    want = cluster_conditional_accuracy(cond, pred, K, C)
    got = ca.report()
    assert float(ca.compute()) == pytest.approx(want["accuracy"], abs=TOL) and got["rule"] == want["rule"]
    assert got["mapping"].tolist() == want["mapping"].tolist()
    assert np.array_equal(got["confusion"], want["confusion"])
    if K == C:
        assert got["rule"] == "hungarian" and got["mapping"].tolist() == x["perm"].tolist()
        ident = _batched(ConditionalAccuracy(K, C, rule="identity"), cond, pred).report()
        ex = exemplar_conditional_accuracy(cond, pred, C)
        assert ident["accuracy"] == pytest.approx(ex["accuracy"], abs=TOL)
        assert np.array_equal(ident["confusion"], ex["confusion"])


def test_feature_metrics_equal_the_pure_functions():
    x = _data()
    gen, real, cond, labels = x["gen"], x["real"], x["cond"], x["labels"]
    fid = _batched(FeatureFID(gen.shape[1]), gen, real=False)
    _batched(fid, real, real=True, parts=2)
    assert float(fid.compute()) == pytest.approx(fid_from_features(gen, real), abs=TOL)

    kid = _batched(FeatureKID(subsets=20, subset_size=100, seed=3), gen, real=False)
    kid.update(torch.as_tensor(real), real=True)
    want = kid_from_features(gen, real, subsets=20, subset_size=100, seed=3)
    mean, std = kid.compute()
    assert float(mean) == pytest.approx(want["kid_mean"], abs=TOL) and float(std) == pytest.approx(want["kid_std"], abs=TOL)

    pr = _batched(PRDC(k=4), gen, real=False)
    _batched(pr, real, real=True)
    want = prdc(real, gen, k=4)
    got = pr.compute()
    for key in ("precision", "recall", "density", "coverage"):
        assert float(got[key]) == pytest.approx(want[key], abs=TOL)

    mapping = x["perm"]
    var = _batched(WithinConditionVariety(5, mapping=mapping, max_samples=50, seed=1), gen, cond, real=False)
    _batched(var, real, labels, real=True)
    want = within_condition_variety(gen, cond, real, labels, mapping, max_samples=50, seed=1)
    got = var.report()
    assert float(var.compute()) == pytest.approx(want["mean"], abs=TOL) and got["min"] == pytest.approx(want["min"], abs=TOL)
    assert np.allclose(list(got["per_condition"].values()), list(want["per_condition"].values()), atol=TOL)

    mapping = np.array([*x["perm"][:4], -1])  # the last condition has no class: out of the mean
    ifid = _batched(IntraFID(5, mapping=mapping), gen, cond, real=False)
    _batched(ifid, real, labels, real=True)
    want = intra_fid(gen, cond, real, labels, mapping)
    got = ifid.report()
    assert float(ifid.compute()) == pytest.approx(want["mean"], abs=TOL) and got["max"] == pytest.approx(want["max"], abs=TOL)
    assert np.isnan(got["per_condition"][4]) and got["per_condition"][0] == pytest.approx(want["per_condition"][0], abs=TOL)


def test_exemplar_metrics_equal_the_pure_functions():
    x = _data()
    ex, draws, real, labels, ex_cls = x["ex"], x["draws"], x["real"], x["labels"], x["ex_cls"]
    X, r, d = draws.shape
    owner = np.repeat(np.arange(X), r)
    want = like_score(ex, draws.reshape(-1, d), owner, real, seed=2)
    like = _batched(LikeScore(seed=2), draws, real=False, exemplars=ex, parts=1)
    _batched(like, real, real=True)
    got = like.report()
    assert float(like.compute()) == pytest.approx(want["value"], abs=TOL)
    assert got["chance"] == pytest.approx(want["chance"], abs=TOL)
    assert want["value"] < 0.2 < want["chance"]  # the fixture's draws sit near their exemplar
    # flat samples in any order with their owner, the exemplars split over updates: the same numbers
    shuffled = LikeScore(seed=2)
    for part in np.array_split(np.arange(X), 3):
        rows = np.random.default_rng(len(part)).permutation(len(part) * r)
        flat, who = draws[part].reshape(-1, d)[rows], np.repeat(np.arange(len(part)), r)[rows]
        shuffled.update(torch.as_tensor(flat), real=False, exemplars=torch.as_tensor(ex[part]),
                        owner=torch.as_tensor(who))
    shuffled.update(torch.as_tensor(real), real=True)
    assert shuffled.report() == pytest.approx(got, abs=TOL)

    zv = _batched(ZVariety(5, max_samples=50, seed=1), draws, ex_cls, real=False)
    _batched(zv, real, labels, real=True)
    want = z_variety(draws.reshape(-1, d), owner, ex_cls, real, labels, max_samples=50, seed=1)
    got = zv.report()
    assert float(zv.compute()) == pytest.approx(want["mean"], abs=TOL) and 0 < want["mean"] < 1
    assert np.allclose(list(got["per_exemplar"].values()), list(want["per_exemplar"].values()), atol=TOL)


def test_count_metrics_equal_the_pure_functions():
    x = _data(K=4, C=6)
    masses = _batched(ClassMasses(6), x["pred"], real=False)
    _batched(masses, x["labels"], real=True)
    want, got = class_masses(x["pred"], x["labels"], 6), masses.report()
    assert float(masses.compute()) == pytest.approx(want["value"], abs=TOL) and got["n_generated"] == len(x["pred"])
    assert np.allclose(got["generated"], want["generated"], atol=TOL)
    assert np.allclose(got["data"], want["data"], atol=TOL)

    rng = np.random.default_rng(0)
    digits = np.stack([rng.integers(0, 10, 900), rng.integers(0, 4, 900), rng.integers(0, 10, 900)], axis=1)
    stacked = _batched(StackedMNISTModes(), digits)
    want, got = stacked_mnist_modes(digits), stacked.report()
    assert int(stacked.compute()) == want["modes"] < 1000 and got["n"] == want["n"]
    assert got["kl"] == pytest.approx(want["kl"], abs=TOL) and np.array_equal(got["counts"], want["counts"])

    centers, std = ring_centers(), 0.05
    points = centers[rng.integers(0, 6, 1000)] + rng.normal(size=(1000, 2)) * std * 1.5  # modes 6, 7 dropped
    toy = _batched(ToyModes(centers, std), points)
    want, got = toy_mode_stats(points, centers, std), toy.report()
    assert int(toy.compute()) == want["modes"] == 6 and got["n_modes"] == want["n_modes"]
    assert got["high_quality"] == pytest.approx(want["high_quality"], abs=TOL) and want["high_quality"] < 1
    assert got["reverse_kl"] == pytest.approx(want["reverse_kl"], abs=TOL)
    assert np.array_equal(got["counts"], want["counts"])

    gen, cond, real, labels = x["gen"], x["cond"], x["real"], x["labels"]
    kl = _batched(ClasswiseKL(4, 6, pca_dim=3, seed=1), gen, cond, real=False)
    _batched(kl, real, labels, real=True)
    matrix, got = classwise_knn_kl_matrix(gen, cond, real, labels, 4, 6, pca_dim=3, seed=1), kl.report()
    assert np.allclose(got["matrix"], matrix, atol=TOL, equal_nan=True)
    assert float(kl.compute()) == pytest.approx(np.nanmin(matrix, axis=1).mean(), abs=TOL)
    assert got["row_argmin"].tolist() == np.nanargmin(matrix, axis=1).tolist() == x["perm"].tolist()


def test_reset_keeps_the_reference_only_when_asked():
    x = _data()
    gen, real = torch.as_tensor(x["gen"]), torch.as_tensor(x["real"])
    kept = FeatureFID(gen.shape[1], reset_real_features=False)
    kept.update(real, real=True)
    kept.update(gen[:100], real=False)
    kept.reset()
    kept.update(gen[100:], real=False)  # a second evaluation against the same reference, fed once
    assert float(kept.compute()) == pytest.approx(fid_from_features(x["gen"][100:], x["real"]), abs=TOL)
    # a cached reference's (mean, covariance, n) stands for its features
    stats = FeatureFID(gen.shape[1])
    stats.update_stats(x["real"].astype(np.float64).mean(0), np.cov(x["real"], rowvar=False), len(real), real=True)
    stats.update(gen, real=False)
    assert float(stats.compute()) == pytest.approx(fid_from_features(x["gen"], x["real"]), abs=TOL)
    dropped = FeatureFID(gen.shape[1])
    dropped.update(real, real=True)
    dropped.reset()
    dropped.update(gen, real=False)
    with pytest.raises(ValueError, match="0 real samples"):
        dropped.compute()


@pytest.mark.parametrize("build,call,match", [
    (lambda: ConditionalAccuracy(3, 3), lambda m: m.update(torch.tensor([0, 3]), torch.tensor([0, 1])),
     r"conditions: ids must be in \[0, 2\], got 0..3"),
    (lambda: ConditionalAccuracy(3, 3), lambda m: m.update(torch.tensor([0.5]), torch.tensor([0])),
     "conditions: expected a 1-D tensor of integer ids"),
    (lambda: ConditionalAccuracy(3, 3, rule="hungarian"), None, "rule='hungarian' is not accepted; accepted values: auto, identity"),
    (lambda: ConditionalAccuracy(3, 4, rule="identity"), None, "needs num_conditions == num_classes"),
    (lambda: ClusteringAccuracy(0, 3), None, "num_clusters=0: must be a positive integer"),
    (lambda: ClusteringAccuracy(2, 2), lambda m: m.compute(), "ClusteringAccuracy: no samples"),
    (lambda: FeatureFID(4), lambda m: m.update(torch.zeros(3, 5), real=True), r"expected 4 columns \(num_features\)"),
    (lambda: IntraFID(3, mapping=[0, 1]), None, "mapping: expected one class id"),
    (lambda: LikeScore(), lambda m: m.update(torch.zeros(3, 2, 4), real=False), "exemplars: needed with real=False"),
    (lambda: LikeScore(), lambda m: m.update(torch.zeros(6, 4), real=False, exemplars=torch.zeros(3, 4)),
     r"samples: expected X×S×d draws, or N×d with owner"),
    (lambda: ZVariety(3), lambda m: m.update(torch.zeros(2, 5, 4), torch.tensor([0, 1, 2]), real=False),
     "samples: 2 groups of draws for 3 exemplars"),
    (lambda: ClassMasses(3), lambda m: m.update(torch.tensor([0, 1]), real=False) or m.compute(),
     "ClassMasses: no data classes"),
    (lambda: StackedMNISTModes(), lambda m: m.update(torch.tensor([[1, 2, 10]])),
     "digits: expected N×3 integer digits"),
    (lambda: ToyModes(ring_centers(), 0.05), lambda m: m.update(torch.zeros(4, 3)), r"samples: expected N×2 points"),
])
def test_bad_input_is_one_clear_line(build, call, match):
    with pytest.raises(ValueError, match=match):
        metric = build()
        if call is not None:
            call(metric)


# --------------------------------------------------------------------------- two processes
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics(x):
    return {"cond_acc": ConditionalAccuracy(8, 5), "cluster_acc": ClusteringAccuracy(8, 5),
            "fid": FeatureFID(x["gen"].shape[1]), "intra_fid": IntraFID(8, 5, mapping=x["perm"]),
            "like": LikeScore(seed=1), "z_variety": ZVariety(5)}


def _feed(metrics, x, rows_gen, rows_real, rows_ex):
    g, c, p = (torch.as_tensor(x[k][rows_gen]) for k in ("gen", "cond", "pred"))
    r, y = torch.as_tensor(x["real"][rows_real]), torch.as_tensor(x["labels"][rows_real])
    e, draws, e_cls = (torch.as_tensor(x[k][rows_ex]) for k in ("ex", "draws", "ex_cls"))
    # each rank's exemplars are the k-th block after the gather only if the draws' grouping survives it
    metrics["like"].update(draws, real=False, exemplars=e)
    metrics["like"].update(r, real=True)
    metrics["z_variety"].update(draws, e_cls, real=False)
    metrics["z_variety"].update(r, y, real=True)
    metrics["cond_acc"].update(c, p)
    metrics["cluster_acc"].update(c, p)
    metrics["fid"].update(g, real=False)
    metrics["fid"].update(r, real=True)
    metrics["intra_fid"].update(g, c, real=False)
    metrics["intra_fid"].update(r, y, real=True)


def _rank(rank, port, x, out):
    # a collective one rank never joins fails after the timeout instead of hanging the test
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=30))
    try:
        torch.set_num_threads(1)
        metrics = _metrics(x)
        half = lambda n: np.array_split(np.arange(n), 2)[rank]  # noqa: E731 - uneven halves on purpose
        _feed(metrics, x, half(len(x["gen"]) - 1), half(len(x["real"])), half(len(x["ex"]) - 1))
        values = {name: float(m.compute()) for name, m in metrics.items()}
        values["mapping"] = metrics["cond_acc"].report()["mapping"].tolist()
        if rank == 0:  # the suite's Metrics, as MetricsCallback runs them on rank 0 alone, wait for no other rank
            from lsgan.metrics.suite import _clustering_report, _conditional_accuracy

            values["suite_cond_acc"] = _conditional_accuracy(x["cond"], x["pred"], 8, 5)["accuracy"]
            values["suite_cluster_acc"] = _clustering_report(x["pred"], x["cond"])["acc"]
        dist.barrier()
        torch.save(values, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_compute_what_one_process_computes(tmp_path):
    x = _data(K=8, C=5, n=401)
    # fork: the children inherit the imported modules instead of importing torch and lsgan again
    mp.start_processes(_rank, args=(_free_port(), x, str(tmp_path)), nprocs=2, join=True, start_method="fork")
    one = _metrics(x)
    _feed(one, x, np.arange(len(x["gen"]) - 1), np.arange(len(x["real"])), np.arange(len(x["ex"]) - 1))
    want = {name: float(m.compute()) for name, m in one.items()}
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for name, value in want.items():
            assert got[name] == pytest.approx(value, abs=TOL), (rank, name)
        assert got["mapping"] == one["cond_acc"].report()["mapping"].tolist()
    suite = torch.load(tmp_path / "rank0.pt")
    assert suite["suite_cond_acc"] == pytest.approx(cluster_conditional_accuracy(x["cond"], x["pred"], 8, 5)["accuracy"])
    assert suite["suite_cluster_acc"] == pytest.approx(cluster_acc(x["cond"], x["pred"]))
    # a rank alone sees half the samples: its own numbers differ, so the equality above is the gathering's
    alone = _metrics(x)
    _feed(alone, x, np.arange(200), np.arange(350), np.arange(15))
    for name in ("fid", "like", "z_variety"):
        assert float(alone[name].compute()) != pytest.approx(want[name], abs=1e-3), name


def test_a_lightning_module_logs_conditional_accuracy(tmp_path):
    """The README's pattern: a LightningModule holds the Metric, updates it per validation step and logs the
    Metric itself; Lightning computes it over the epoch's steps."""
    import pytorch_lightning as pl

    perm = torch.tensor([3, 1, 4, 0, 2])
    seen = []

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.cond_acc = ConditionalAccuracy(num_conditions=5, num_classes=5)

        def validation_step(self, batch, batch_idx):
            c = batch[0]
            pred = torch.where(c % 3 == batch_idx, (perm[c] + 1) % 5, perm[c])  # a "classifier" wrong on some
            seen.append((c, pred))
            self.cond_acc.update(c, pred)
            self.log("cond_acc", self.cond_acc)

    conditions = torch.randint(0, 5, (120,), generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(conditions), batch_size=40)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, default_root_dir=tmp_path)
    logged = trainer.validate(Module(), loader, verbose=False)[0]["cond_acc"]
    c, p = (torch.cat(t) for t in zip(*seen))
    assert logged == pytest.approx(cluster_conditional_accuracy(c, p, 5, 5)["accuracy"], abs=TOL)
    assert logged < 1.0  # the mistakes count: every step's samples are in the epoch's value
