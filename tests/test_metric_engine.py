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

from lsgan.metrics import (PRDC, ClusteringAccuracy, ConditionalAccuracy, FeatureFID, FeatureKID, IntraFID,
                           WithinConditionVariety, ari, balanced_cluster_acc, cluster_acc,
                           cluster_conditional_accuracy, exemplar_conditional_accuracy, fid_from_features, intra_fid,
                           kid_from_features, nmi, prdc, purity, within_condition_variety)

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
    return {"cond": cond, "pred": pred, "gen": gen.astype(np.float32), "labels": labels,
            "real": real.astype(np.float32), "perm": perm}


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
            "fid": FeatureFID(x["gen"].shape[1]), "intra_fid": IntraFID(8, 5, mapping=x["perm"])}


def _feed(metrics, x, rows_gen, rows_real):
    g, c, p = (torch.as_tensor(x[k][rows_gen]) for k in ("gen", "cond", "pred"))
    r, y = torch.as_tensor(x["real"][rows_real]), torch.as_tensor(x["labels"][rows_real])
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
        _feed(metrics, x, half(len(x["gen"]) - 1), half(len(x["real"])))
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
    _feed(one, x, np.arange(len(x["gen"]) - 1), np.arange(len(x["real"])))
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
    _feed(alone, x, np.arange(200), np.arange(350))
    assert float(alone["fid"].compute()) != pytest.approx(want["fid"], abs=1e-3)


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
