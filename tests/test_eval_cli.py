"""The evaluation commands end to end on tiny checkpoints: lsgan.sample, lsgan.train_evaluator,
lsgan.evaluate, the metric suite's known answers and the training-time MetricsCallback."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lsgan.config import ConfigError
from lsgan.loading import CLIError, load_datamodule, load_method
from lsgan.run import compose_config, train
from tests.conftest import REPO, TINY


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """2-step sngan and cgan runs on digits (tiny nets)."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for m in ("sngan", "cgan"):
        res = train(compose_config(TINY + [f"method={m}", "trainer.steps=2"]), root / m)
        out[m] = res.checkpoint
    return out


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A metrics cache holding a digits evaluator trained for 2 epochs through the CLI entry."""
    from lsgan.train_evaluator import main

    cache = tmp_path_factory.mktemp("cache")
    out = main(["dataset=digits", f"metrics.cache_dir={cache}", "metrics.evaluator_epochs=2", "device=cpu"])
    assert not out["cached"]
    return cache, out


def npz(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


# --------------------------------------------------------------------------- lsgan.sample
def test_sample_cgan_covers_conditions_evenly(ckpts, tmp_path):
    from lsgan.sample import main

    paths = main([f"ckpt={ckpts['cgan']}", "n=25", f"out={tmp_path}", "device=cpu"])
    z = npz(paths["npz"])
    assert set(z) == {"images", "conditions"}
    assert z["images"].dtype == np.uint8 and z["images"].shape == (25, 32, 32, 1)
    assert z["conditions"].dtype == np.int64
    # 25 over 10 conditions: the first five get 3, the rest 2
    assert np.bincount(z["conditions"], minlength=10).tolist() == [3] * 5 + [2] * 5
    assert paths["png"].is_file()


def test_sample_given_condition_and_unconditional(ckpts, tmp_path):
    from lsgan.sample import main

    z = npz(main([f"ckpt={ckpts['cgan']}", "n=6", "condition=7", f"out={tmp_path / 'c'}"])["npz"])
    assert z["conditions"].tolist() == [7] * 6
    z = npz(main([f"ckpt={ckpts['sngan']}", "n=5", f"out={tmp_path / 'u'}"])["npz"])
    assert set(z) == {"images", "conditions"}
    assert z["conditions"].tolist() == [-1] * 5 and z["images"].shape == (5, 32, 32, 1)


def test_same_seed_same_samples(ckpts, tmp_path):
    from lsgan.sample import main

    a = npz(main([f"ckpt={ckpts['sngan']}", "n=4", "seed=3", f"out={tmp_path / 'a'}"])["npz"])
    b = npz(main([f"ckpt={ckpts['sngan']}", "n=4", "seed=3", f"out={tmp_path / 'b'}"])["npz"])
    assert np.array_equal(a["images"], b["images"])


def test_sample_errors_are_one_line(ckpts, tmp_path):
    from lsgan.sample import main

    cases = [([f"ckpt={ckpts['cgan']}", "condition=10"], "condition=10: method=cgan takes an integer condition id in 0..9"),
             ([f"ckpt={ckpts['cgan']}", "condition=abc"], "condition=abc: method=cgan takes an integer condition id in 0..9"),
             ([f"ckpt={ckpts['sngan']}", "condition=0"], "unconditional"),
             ([f"ckpt={tmp_path / 'missing.ckpt'}"], "no such checkpoint"),
             ([f"ckpt={ckpts['sngan']}", "exemplars=test"], "does not generate from exemplar"),
             ([f"ckpt={ckpts['sngan']}", "exemplars=val"], "accepted values: train, test"),
             ([f"ckpt={ckpts['sngan']}", "bogus=1"], "unknown argument")]
    for args, msg in cases:
        with pytest.raises(CLIError, match=msg) as info:
            main(args + [f"out={tmp_path}"])
        assert "\n" not in str(info.value)
    proc = subprocess.run([sys.executable, "-m", "lsgan.sample", f"ckpt={ckpts['cgan']}", "condition=12"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: condition=12: method=cgan takes an integer condition id in 0..9"]


class MirrorMethod(torch.nn.Module):
    """Stands in for an exemplar-conditioned method (coupled): "generates" its exemplar, flipped."""

    accepts_exemplars = True
    num_conditions = 0
    mcfg = SimpleNamespace(name="mirror")
    device = torch.device("cpu")

    def sample(self, n, condition=None, use_ema=True):
        assert condition.shape[0] == n
        return condition.flip(-1)


def test_exemplar_samples_carry_source_index_and_label(ckpts):
    from lsgan.sample import exemplar_indices, generate, samples_arrays, to_uint8_hwc

    _, cfg = load_method(ckpts["sngan"])
    ev = load_datamodule(cfg).eval_set
    idx = exemplar_indices(len(ev), 20, seed=1)
    z = samples_arrays(generate(MirrorMethod(), 20, exemplar_set=ev, exemplar_indices=idx, batch_size=8))
    assert set(z) == {"images", "conditions", "source_index", "source_label"}
    assert z["source_index"].dtype == np.int64 and z["source_index"].tolist() == idx.tolist()
    assert z["source_label"].tolist() == ev.clean_labels[idx].tolist()
    assert z["conditions"].tolist() == [-1] * 20
    assert np.array_equal(z["images"], to_uint8_hwc(ev.images(idx).flip(-1)))


def test_variety_names_a_condition_that_covers_none_of_its_class(ckpts, cache_dir):
    """One condition draws noise: cond_acc still maps it to some class, the distance-based variety may look
    fine, and recall_min_condition (its recall against the matched class) is what shows it."""
    from lsgan.metrics.suite import MetricSuite

    _, cfg = load_method(ckpts["cgan"], overrides=[f"metrics.cache_dir={cache_dir[0]}"])
    dm = load_datamodule(cfg)
    ev = dm.eval_set
    gen = torch.Generator().manual_seed(0)

    class Replay(torch.nn.Module):  # condition c "generates" real test images of class c; condition 9 noise
        accepts_exemplars = False
        num_conditions = 10
        mcfg = SimpleNamespace(name="replay")
        device = torch.device("cpu")

        def sample(self, n, condition=None, use_ema=True):
            if condition == 9:
                return torch.rand(n, *ev.images(torch.arange(1)).shape[1:], generator=gen) * 2 - 1
            pool = torch.nonzero(ev.clean_labels == condition).squeeze(1)
            return ev.images(pool[torch.randint(len(pool), (n,), generator=gen)])

    var = MetricSuite(Replay(), dm, cfg, log=None).compute(["variety"], n_samples=500)["variety"]
    recall = {int(c): r for c, r in var["recall_per_condition"].items()}
    assert var["recall_min_condition"] == min(recall.values()) == recall[9] < 0.05
    assert min(recall[c] for c in range(9)) > 0.5


# --------------------------------------------------------------------------- lsgan.train_evaluator
def test_train_evaluator_trains_then_hits_cache(cache_dir, capsys):
    from lsgan.train_evaluator import main

    cache, first = cache_dir
    assert Path(first["path"]) == cache / "evaluators" / "digits_32_1.pt" and Path(first["path"]).is_file()
    assert first["meta"]["epochs"] == pytest.approx(2.0, abs=0.1)
    assert first["test_acc"] >= 0.8  # 2 epochs (24 steps) of a small CNN on 8×8 digits
    again = main(["dataset=digits", f"metrics.cache_dir={cache}"])
    assert again["cached"] and again["path"] == first["path"] and again["test_acc"] == first["test_acc"]
    out = capsys.readouterr().out
    assert "cache hit" in out and "test accuracy" in out and "cache path" in out
    with pytest.raises(CLIError, match="2-D toy data"):
        main(["dataset=ring8", f"metrics.cache_dir={cache}"])


def test_train_evaluator_takes_the_net_from_config(tmp_path):
    from lsgan.train_evaluator import main

    out = main(["dataset=digits", f"metrics.cache_dir={tmp_path}", "metrics.evaluator_arch=resnet",
                "metrics.evaluator_width=4", "max_steps=2", "device=cpu"])
    assert out["meta"]["arch"] == "resnet" and out["meta"]["width"] == 4 and out["meta"]["steps"] == 2
    with pytest.raises(ConfigError, match="metrics.evaluator_arch='vgg' is not accepted; accepted values: lenet"):
        main(["dataset=digits", f"metrics.cache_dir={tmp_path}", "metrics.evaluator_arch=vgg"])


def test_train_evaluator_celeba_attribute_head(tmp_path, monkeypatch):
    # the shared CelebA subset has no attribute file: a synthetic folder in CelebA's layout stands in
    from tests.test_data import _celeba_folder
    from lsgan.train_evaluator import main

    monkeypatch.setenv("LSGAN_CACHE", str(tmp_path / "cache"))
    base = _celeba_folder(tmp_path, n=12)
    rows = [f"{i:06d}.png " + ("1" if i % 2 else "-1") for i in range(1, 13)]
    (base / "list_attr_celeba.txt").write_text("\n".join(["12", "Male"] + rows) + "\n")
    args = ["dataset=celeba32", f"data.root={tmp_path}", f"metrics.cache_dir={tmp_path}", "max_steps=2",
            "batch_size=4", "metrics.evaluator_width=4", "device=cpu"]
    with pytest.raises(CLIError, match="set data.attr"):
        main(args)
    out = main(args + ["data.attr=Male"])
    assert Path(out["path"]).name == "celeba32-Male_32_3.pt"  # the attribute is part of the cache key
    assert out["meta"]["n_classes"] == 2 and out["meta"]["flip"] is True and 0 <= out["test_acc"] <= 1


# --------------------------------------------------------------------------- suite
def test_metric_names_are_validated():
    from lsgan.metrics.suite import canonical_names

    assert canonical_names(["clustering", "cond_acc", "inception_score"]) == ["cluster", "cond_acc", "variety", "is"]
    with pytest.raises(ConfigError, match="'bogus' is not accepted; accepted values: fid, kid"):
        canonical_names(["fid", "bogus"])


def test_exemplar_accuracy_equals_evaluator_accuracy(ckpts, cache_dir):
    """A 'generator' returning its exemplar unchanged must score the evaluator's own accuracy."""
    from lsgan.metrics.suite import MetricSuite

    _, cfg = load_method(ckpts["sngan"], overrides=[f"metrics.cache_dir={cache_dir[0]}"])
    dm = load_datamodule(cfg)

    class Identity(MirrorMethod):
        def sample(self, n, condition=None, use_ema=True):
            return condition

    suite = MetricSuite(Identity(), dm, cfg, log=None)
    res = suite.compute(["cond_acc", "classifier_prdc", "z_variety"], n_samples=len(dm.eval_set))
    ev = dm.eval_set
    from lsgan.sample import exemplar_indices

    idx = exemplar_indices(len(ev), len(ev), 0)
    assert res["cond_acc"]["value"] == pytest.approx(suite.evaluator.accuracy(ev.images(idx), ev.clean_labels[idx]))
    assert res["cond_acc"]["rule"].startswith("exemplar")
    # copies of real images are exactly as varied as the real classes (the reference is the same split)
    assert res["variety"]["value"] == pytest.approx(1.0, abs=1e-9)
    # the whole split against itself: every sample lies in the other set's k-NN balls
    pr = res["classifier_prdc"]
    assert pr["precision"] == pr["recall"] == pr["coverage"] == 1.0
    assert pr["protocol"]["backbone"] == "evaluator penultimate" and pr["protocol"]["n_generated"] == len(dm.eval_set)
    # variety looks real (different exemplars), but with the exemplar held fixed nothing varies: G ignores z
    assert res["z_variety"]["value"] == 0.0 and res["z_variety"]["protocol"]["draws_per_exemplar"] == 10

    class Noisy(MirrorMethod):  # z moves the sample: the spread over z is no longer zero
        def sample(self, n, condition=None, use_ema=True):
            return (condition + 0.5 * torch.randn_like(condition)).clamp(-1, 1)

    assert MetricSuite(Noisy(), dm, cfg, log=None).compute(["z_variety"], n_samples=100)["z_variety"]["value"] > 0.1


def test_a_second_evaluation_reads_the_evaluator_features_of_the_reference(ckpts, cache_dir, tmp_path):
    from lsgan.metrics.suite import MetricSuite

    method, cfg = load_method(ckpts["sngan"], overrides=[f"metrics.cache_dir={tmp_path}",
                                                         f"metrics.evaluator={cache_dir[1]['path']}"])
    dm = load_datamodule(cfg)
    first = MetricSuite(method, dm, cfg, log=None)
    calls = []
    orig = first.evaluator.features
    first.evaluator.features = lambda x, *a, **k: (calls.append(len(x)), orig(x, *a, **k))[1]
    a = first.compute(["classifier_fid"], n_samples=64)["classifier_fid"]["value"]
    ref_n = len(first.reference().data)
    assert ref_n in calls  # computed once, from the reference images
    assert list((tmp_path / "reference_stats").glob("*evaluator-*.npz"))
    second = MetricSuite(method, dm, cfg, log=None)
    calls.clear()
    second.evaluator.features = lambda x, *a, **k: (calls.append(len(x)), orig(x, *a, **k))[1]
    b = second.compute(["classifier_fid"], n_samples=64)["classifier_fid"]["value"]
    assert ref_n not in calls and calls  # only the generated samples were featurised this time
    assert b == pytest.approx(a)  # same seeded samples, same reference


def test_cluster_and_knn_on_a_permuted_classifier(ckpts, cache_dir):
    """condition_of = evaluator class, permuted: Hungarian ACC recovers the evaluator's accuracy."""
    from lsgan.metrics.knn import knn_label_agreement
    from lsgan.metrics.suite import MetricSuite

    method, cfg = load_method(ckpts["cgan"], overrides=[f"metrics.cache_dir={cache_dir[0]}"])
    dm = load_datamodule(cfg)
    suite = MetricSuite(method, dm, cfg, log=None)
    ev = suite.evaluator
    method.condition_of = lambda x: (ev.predict(x) + 3) % 10
    method.features_of = lambda x: ev.features(x)
    res = suite.compute(["cluster", "knn", "modes", "is"])
    images, labels = dm.eval_set.images(), dm.eval_set.clean_labels
    assert res["cluster"]["acc"] == pytest.approx(ev.accuracy(images, labels))
    assert res["cluster"]["protocol"] == {"split": "test", "n": len(labels), "classes": 10}
    expected = knn_label_agreement(ev.features(images), labels, ks=(1, 2, 5))
    assert [res["knn"][f"k{k}"] for k in (1, 2, 5)] == pytest.approx([expected[k] for k in (1, 2, 5)])
    assert "stacked_mnist, ring8 or grid25" in res["modes"]["skipped"]
    assert "no class logits" in res["is"]["skipped"]
    assert "spread over z within a condition is `variety`" in suite.compute(["z_variety"])["z_variety"]["skipped"]


class PoolFeatures(torch.nn.Module):
    """A cheap stand-in for the FID network (same interface): 4×4 average-pooled pixels."""

    backbone = "avgpool4_test"

    def forward(self, images):
        x = torch.as_tensor(images)
        x = x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x.float()
        return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)


def test_fid_kid_prdc_plumbing_and_reference_cache(ckpts, tmp_path):
    from lsgan.metrics.fid import ReferenceStats
    from lsgan.metrics.suite import MetricSuite

    method, cfg = load_method(ckpts["sngan"], overrides=[f"metrics.cache_dir={tmp_path}", "metrics.ref_n=200",
                                                         "metrics.kid_subsets=5"])
    dm = load_datamodule(cfg)
    res = MetricSuite(method, dm, cfg, evaluator=None, inception=PoolFeatures(), log=None).compute(
        ["fid", "kid", "prdc", "classifier_fid"], n_samples=50)
    assert res["fid"]["value"] > 0
    proto = res["fid"]["protocol"]
    assert {k: proto[k] for k in ("n_generated", "reference_split", "reference_n", "backbone", "resolution")} == \
        {"n_generated": 50, "reference_split": "test", "reference_n": 200, "backbone": "avgpool4_test", "resolution": 32}
    assert res["kid"]["protocol"]["subset_size"] == 50 and res["kid"]["value"] is not None
    assert set(res["prdc"]) >= {"precision", "recall", "density", "coverage"}
    assert res["prdc"]["protocol"]["reference_n"] == 50  # equal set sizes
    assert res["classifier_fid"]["skipped"] == "no evaluator classifier given"
    cached = list((tmp_path / "reference_stats").glob("*.npz"))
    assert [p.name for p in cached] == ["digits_test_32px_avgpool4_test_n200.npz"]
    # the cache holds the statistics of exactly the reference subset
    ref = MetricSuite(method, dm, cfg, evaluator=None, log=None).reference()
    stats = ReferenceStats.load(str(cached[0]))
    assert np.allclose(stats.mu, PoolFeatures()(ref.data).double().mean(0).numpy(), atol=1e-6)


# --------------------------------------------------------------------------- lsgan.evaluate
def test_evaluate_writes_json_and_report_with_pictures(ckpts, cache_dir, tmp_path):
    from lsgan.evaluate import main

    doc = main([f"ckpt={ckpts['cgan']}", "metrics=[classifier_fid,cond_acc,cluster,is]", f"out={tmp_path}", "n=60",
                f"metrics.cache_dir={cache_dir[0]}", "metrics.ref_n=150", "html=true"])
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(doc))
    assert list(on_disk["metrics"]) == ["classifier_fid", "cond_acc", "variety", "cluster", "is"]
    m = on_disk["metrics"]
    assert m["classifier_fid"]["value"] > 0
    assert m["classifier_fid"]["protocol"]["reference_n"] == 150 and m["classifier_fid"]["protocol"]["n_generated"] == 60
    assert 0 <= m["cond_acc"]["value"] <= 1 and m["cond_acc"]["rule"].startswith("identity")
    assert np.asarray(m["cond_acc"]["confusion"]).sum(axis=1).tolist() == [6] * 10
    assert m["variety"]["protocol"]["grouped_by"] == "condition" and "value" in m["variety"]
    assert "conditioned on labels" in m["cluster"]["skipped"] and "skipped" in m["is"]
    assert on_disk["evaluator"]["dataset"] == "digits" and on_disk["iteration"] == 2
    report = (tmp_path / "report.md").read_text()
    for picture in ("samples_by_condition.png", "confusion.png", "curves.png"):
        assert f"]({picture})" in report and (tmp_path / picture).stat().st_size > 1000
    assert "| cluster | skipped |" in report
    assert "<img src='confusion.png'" in (tmp_path / "report.html").read_text()


def test_evaluate_without_evaluator_skips_with_the_command_to_run(ckpts, tmp_path):
    from lsgan.evaluate import evaluate

    # sngan's cond_acc is the unconditional baseline, which needs the evaluator too: nothing is measured
    with pytest.raises(ConfigError) as err:
        evaluate(ckpts["sngan"], ["classifier_fid", "cond_acc"], tmp_path, n=10, device="cpu",
                 overrides=[f"metrics.cache_dir={tmp_path / 'empty'}"], report=False, log=lambda s: None)
    msg = str(err.value)
    assert "classifier_fid (no evaluator classifier at" in msg and "cond_acc (no evaluator classifier at" in msg
    assert msg.count("python -m lsgan.train_evaluator dataset=digits") == 2 and "variety" not in msg
    assert not (tmp_path / "metrics.json").exists()
    with pytest.raises(ConfigError, match="metrics: 'fidd' is not accepted"):
        evaluate(ckpts["sngan"], ["fidd"], tmp_path)


def test_unconditional_cond_acc_is_the_exemplar_protocols_chance_level(ckpts, cache_dir, tmp_path):
    """sngan under the exemplar protocol: its samples against the classes of the exemplars an exemplar method
    would get. G never sees them, so the agreement is Σ_c p_gen(c)·p_exemplar(c) up to sampling noise."""
    from lsgan.evaluate import evaluate

    doc = evaluate(ckpts["sngan"], ["cond_acc"], tmp_path, n=600, device="cpu",
                   overrides=[f"metrics.cache_dir={cache_dir[0]}"], report=False, log=lambda s: None)
    m = doc["metrics"]["cond_acc"]
    assert m["rule"].startswith("unconditional baseline") and m["protocol"]["source_split"] == "test"
    assert 0 < m["chance"] < 1 and abs(m["value"] - m["chance"]) < 0.08  # ~5 standard errors at n = 600
    assert np.asarray(m["confusion"]).sum() == 600


def test_evaluate_logs_numbers_and_pictures_into_the_runs_own_wandb_run(cache_dir, tmp_path, monkeypatch, capsys):
    """A run trained with logger=wandb (offline): evaluate resumes its W&B run by the id in the run dir,
    logs eval/ numbers and the report's pictures, finishes it, and opens no W&B run of its own."""
    from lsgan.evaluate import main

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_dir = tmp_path / "run"
    res = train(compose_config(TINY + ["method=cgan", "trainer.steps=2", "logger=wandb", "logger.mode=offline"]),
                run_dir)
    run_id = (run_dir / "wandb_id").read_text().strip()
    args = [f"ckpt={res.checkpoint}", "metrics=[cond_acc]", "n=20", f"metrics.cache_dir={cache_dir[0]}", "device=cpu"]
    main(args)
    assert f"under eval/ at iteration 2 to W&B run {run_id} (offline: {run_dir / 'wandb'}" in capsys.readouterr().out
    assert (run_dir / "wandb_id").read_text().strip() == run_id
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert [r.name.rsplit("-", 1)[1] for r in runs] == [run_id, run_id]  # training's, then evaluate's
    pictures = {p.name.rsplit("_", 2)[0] for p in (runs[1] / "files" / "media" / "images" / "eval").glob("*.png")}
    assert pictures == {"samples_by_condition", "confusion", "curves"}
    # the offline run's records (protobuf), which W&B's service process may still be flushing
    keys, deadline = (b"eval/cond_acc", b"eval/variety", b"eval/*", b"trainer/global_step"), time.time() + 30
    while not all(k in (runs[1] / f"run-{run_id}.wandb").read_bytes() for k in keys) and time.time() < deadline:
        time.sleep(0.5)
    record = (runs[1] / f"run-{run_id}.wandb").read_bytes()
    assert all(k in record for k in keys), [k for k in keys if k not in record]
    main(args + ["log_run=false", "report=false"])  # files only: no W&B run opened
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 2
    assert "W&B" not in capsys.readouterr().out


def test_evaluate_figures_reach_tensorboard_when_it_is_installed(tmp_path, monkeypatch):
    """logger=tensorboard: the numbers and pictures go to <run_dir>/tb at the checkpoint's iteration (a stand-in
    writer here: TensorBoard is an optional extra); without TensorBoard nothing is logged and nothing fails."""
    from PIL import Image

    import lsgan.loggers as L

    cfg = compose_config(["logger=tensorboard"])
    Image.new("RGBA", (12, 10), (255, 0, 0, 255)).save(tmp_path / "confusion.png")
    calls = []

    class Writer:
        def __init__(self, log_dir):
            calls.append(("dir", log_dir))

        def add_scalar(self, tag, value, step):
            calls.append(("scalar", tag, value, step))

        def add_image(self, tag, image, step, dataformats):
            calls.append(("image", tag, image.shape, step, dataformats))

        def close(self):
            calls.append(("close",))

    monkeypatch.setattr(L, "_tensorboard_writer", lambda: Writer)
    where = L.log_evaluation(cfg, tmp_path, 7, {"cond_acc": 0.5}, [tmp_path / "confusion.png"])
    assert where == f"TensorBoard ({tmp_path / 'tb'})"
    assert calls == [("dir", str(tmp_path / "tb")), ("scalar", "eval/cond_acc", 0.5, 7),
                     ("image", "eval/confusion", (10, 12, 3), 7, "HWC"), ("close",)]
    monkeypatch.setattr(L, "_tensorboard_writer", lambda: None)
    assert L.log_evaluation(cfg, tmp_path, 7, {"cond_acc": 0.5}, [tmp_path / "confusion.png"]) is None
    assert L.log_evaluation(compose_config([]), tmp_path, 7, {}, []) is None  # logger=csv: nowhere else to log


# --------------------------------------------------------------------------- Hydra's grammar and -m (lsgan.cli)
def test_evaluate_multirun_runs_one_job_per_checkpoint(ckpts, cache_dir, capsys):
    from lsgan.evaluate import main

    both = f"ckpt={ckpts['sngan']},{ckpts['cgan']}"
    args = ["metrics=[cond_acc]", "n=10", "report=false", f"metrics.cache_dir={cache_dir[0]}"]
    with pytest.raises(CLIError, match="is a sweep; add -m to run one job per value"):
        main([both] + args)
    docs = main(["-m", both] + args)
    assert [d["method"] for d in docs] == ["sngan", "cgan"]
    for name, doc in zip(("sngan", "cgan"), docs):  # each job wrote its own <run_dir>/eval
        on_disk = json.loads((Path(ckpts[name]).parent.parent / "eval" / "metrics.json").read_text())
        assert on_disk["checkpoint"] == doc["checkpoint"] == str(Path(ckpts[name]).absolute())
    assert docs[0]["metrics"]["cond_acc"]["rule"].startswith("unconditional baseline")
    assert docs[1]["metrics"]["cond_acc"]["rule"].startswith("identity")
    out = capsys.readouterr().out
    assert f"[lsgan] job 1/2: ckpt={ckpts['sngan']} metrics=[cond_acc] n=10" in out
    assert f"[lsgan] job 2/2: ckpt={ckpts['cgan']} metrics=[cond_acc] n=10" in out


def test_sample_multirun_with_interpolated_out_and_added_config_key(ckpts, tmp_path):
    from lsgan.sample import main

    paths = main(["-m", f"ckpt={ckpts['cgan']}", "n=4", "condition=0,3", f"out={tmp_path}/c${{condition}}",
                  "+data.note=hello", "device=cpu"])
    assert [p["npz"].parent for p in paths] == [tmp_path / "c0", tmp_path / "c3"]
    assert [npz(p["npz"])["conditions"].tolist() for p in paths] == [[0] * 4, [3] * 4]
    assert load_method(ckpts["cgan"], overrides=["+data.note=hello"])[1].data.note == "hello"
    with pytest.raises(CLIError, match=r"^\+data.root=x: data.root is already in the checkpoint's config"):
        main([f"ckpt={ckpts['cgan']}", "+data.root=x", f"out={tmp_path}"])


# --------------------------------------------------------------------------- MetricsCallback
def test_callback_logs_rows_and_leaves_training_unchanged(cache_dir, tmp_path):
    metrics = ["metrics.every=1", "metrics.names=[cond_acc,classifier_fid]", "metrics.n_samples=30",
               "metrics.ref_n=60", f"metrics.cache_dir={cache_dir[0]}", "trainer.steps=2"]
    a = train(compose_config(TINY + ["method=cgan"] + metrics), tmp_path / "a")
    with open(a.metrics_csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("cond_acc")]
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert all(0 <= float(r["cond_acc"]) <= 1 and float(r["classifier_fid"]) > 0 and r["variety"] != ""
               for r in rows)
    # Metrics draw noise on a private RNG: the trained weights match a run without them. (sngan:
    # its CPU training is bitwise reproducible; cgan's embedding backward is not, even run to run.)
    b = train(compose_config(TINY + metrics), tmp_path / "b")
    c = train(compose_config(TINY + ["trainer.steps=2"]), tmp_path / "c")
    with open(b.metrics_csv, newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f) if r.get("classifier_fid")] == [1, 2]
    sb = torch.load(b.checkpoint, weights_only=False)["state_dict"]
    sc = torch.load(c.checkpoint, weights_only=False)["state_dict"]
    assert all(torch.equal(sb[k], sc[k]) for k in sc)


def test_callback_rejects_unknown_metric_names(tmp_path):
    with pytest.raises(ConfigError, match="metrics.names: 'fidd' is not accepted"):
        train(compose_config(TINY + ["metrics.every=2", "metrics.names=[fidd]"]), tmp_path)


def test_condition_id_on_an_exemplar_method_points_to_exemplars():
    from lsgan.generation import GenerationError, generate

    # the generation library raises its own error (the metric suite calls it); lsgan.sample reports it as a CLIError
    with pytest.raises(GenerationError, match="generates from exemplar images, not condition ids; use exemplars=test") as info:
        generate(MirrorMethod(), 4, condition=3)
    assert not isinstance(info.value, CLIError)


def test_prdc_reference_rows_span_a_class_sorted_split():
    """precision/recall compare m generated samples with m reference rows: on a split sorted by
    class (MNIST's test set) the first m rows held only the first classes, so precision read ~0.15
    for a model drawing every digit; the rows are a fixed spread draw instead."""
    from lsgan.metrics.suite import _spread_rows

    labels = np.repeat(np.arange(10), 1000)  # sorted, as MNIST's test split
    rows = _spread_rows(len(labels), 2000)
    assert len(np.unique(rows)) == 2000 and np.array_equal(rows, _spread_rows(len(labels), 2000))
    counts = np.bincount(labels[rows], minlength=10)
    assert counts.min() > 150 and counts.max() < 250


def test_class_masses_compares_the_generated_class_shares_with_the_data(ckpts, cache_dir):
    """A 'generator' drawing real images of the asked class carries the data's (near-even) class
    shares; one that draws only 0s does not, by ~0.9."""
    from lsgan.metrics.suite import MetricSuite

    method, cfg = load_method(ckpts["cgan"], overrides=[f"metrics.cache_dir={cache_dir[0]}"])
    dm = load_datamodule(cfg)
    images, labels = dm.eval_set.images(), dm.eval_set.clean_labels
    by_class = [images[labels == c] for c in range(10)]
    method.sample = lambda n, condition=None, use_ema=True: by_class[condition][torch.arange(n) % len(by_class[condition])]
    suite = MetricSuite(method, dm, cfg, log=None)
    res = suite.compute(["class_masses"], n_samples=200)["class_masses"]
    drawn = torch.cat([by_class[c][torch.arange(20) % len(by_class[c])] for c in range(10)])  # conditions evenly
    generated = np.bincount(suite.evaluator.predict(drawn).numpy(), minlength=10) / 200
    data = np.bincount(dm.train_set.clean_labels.numpy(), minlength=10) / len(dm.train_set)
    assert res["generated"] == pytest.approx(generated.tolist()) and res["data"] == pytest.approx(data.tolist())
    assert res["value"] == pytest.approx(np.abs(generated - data).max()) and res["value"] < 0.1
    method.sample = lambda n, condition=None, use_ema=True: by_class[0][torch.arange(n) % len(by_class[0])]
    biased = MetricSuite(method, dm, cfg, log=None).compute(["class_masses"], n_samples=200)["class_masses"]
    assert biased["generated"][0] > 0.9 and biased["value"] > 0.8


def test_spread_even_gives_every_condition_the_same_count_whatever_the_prior(ckpts, cache_dir):
    """compute(spread="even"): every condition scored alike (nemgan's per-mode accuracy at 02:98);
    the default follows the prior's weights, and class_masses needs that default."""
    from lsgan.generation import condition_counts
    from lsgan.metrics.suite import MetricSuite

    method, cfg = load_method(ckpts["cgan"], overrides=[f"metrics.cache_dir={cache_dir[0]}"])
    dm = load_datamodule(cfg)
    weights = [0.91] + [0.01] * 9
    method.prior = SimpleNamespace(weights=torch.tensor(weights))
    suite = MetricSuite(method, dm, cfg, log=None)
    by_prior = suite.compute(["cond_acc"], n_samples=200)["cond_acc"]
    even = suite.compute(["cond_acc"], n_samples=200, spread="even")["cond_acc"]
    assert np.asarray(by_prior["confusion"]).sum(1).tolist() == condition_counts(200, 10, weights)
    assert np.asarray(even["confusion"]).sum(1).tolist() == [20] * 10
    assert "spread" not in by_prior["protocol"] and even["protocol"]["spread"] == "even"
    assert "spread=prior" in suite.compute(["class_masses"], 200, spread="even")["class_masses"]["skipped"]
    with pytest.raises(ValueError, match="spread='bogus' is not accepted"):
        suite.compute(["cond_acc"], spread="bogus")


def test_lsgan_cache_moves_the_evaluators_and_reference_stats_too(monkeypatch, tmp_path):
    """One cache root ($LSGAN_CACHE, else ~/.cache/lsgan) under the image, feature and evaluator caches; with it
    unset the evaluators stay exactly where they always were, so the files cached there are found."""
    import os

    from omegaconf import OmegaConf

    from lsgan.features import default_cache_dir
    from lsgan.io import cache_root
    from lsgan.upgrade import upgrade_saved_config
    from lsgan.metrics.resolve import evaluator_path, metrics_cache_dir, train_evaluator_command

    monkeypatch.delenv("LSGAN_CACHE", raising=False)
    home = os.path.expanduser("~/.cache/lsgan")
    mnist28 = compose_config(["dataset=mnist", "data.size=28"])
    subset = compose_config(["dataset=mnist", "data.size=28", "data.classes=[0,4]"])
    assert mnist28.metrics.cache_dir is None and str(cache_root()) == home
    assert evaluator_path(mnist28, 28, 1) == os.path.join(home, "evaluators", "mnist_28_1.pt")
    assert evaluator_path(subset, 28, 1) == os.path.join(home, "evaluators", "mnist-c0_4_28_1.pt")
    assert evaluator_path(compose_config(["dataset=mnist"]), 32, 1) == os.path.join(home, "evaluators", "mnist_32_1.pt")
    assert "metrics.cache_dir" not in train_evaluator_command(mnist28, 28)
    monkeypatch.setenv("LSGAN_CACHE", str(tmp_path))
    assert cache_root() == tmp_path and default_cache_dir() == tmp_path.absolute() / "features"
    assert evaluator_path(mnist28, 28, 1) == str(tmp_path / "evaluators" / "mnist_28_1.pt")
    assert metrics_cache_dir(mnist28.metrics) == str(tmp_path)  # reference statistics go there too
    # an explicit metrics.cache_dir wins; a saved config's spelled-out old default follows the root
    own = compose_config(["dataset=mnist", f"metrics.cache_dir={tmp_path / 'own'}"])
    assert evaluator_path(own, 32, 1) == str(tmp_path / "own" / "evaluators" / "mnist_32_1.pt")
    assert f"metrics.cache_dir={tmp_path / 'own'}" in train_evaluator_command(own, 32)
    saved = OmegaConf.to_container(mnist28, resolve=True)
    saved["metrics"]["cache_dir"] = "~/.cache/lsgan"
    assert upgrade_saved_config(saved)["metrics"]["cache_dir"] is None


def test_an_earlier_checkpoint_is_evaluated_into_its_own_folder(tmp_path):
    from lsgan.loading import output_dir_of  # lsgan.evaluate's and lsgan.sample's default folder

    run = tmp_path / "run"
    assert output_dir_of(run / "checkpoints" / "last.ckpt", "eval") == (run / "eval").absolute()
    # evaluating iter_0006000.ckpt must not overwrite the final figures in eval/
    assert output_dir_of(run / "checkpoints" / "iter_0006000.ckpt", "eval") == (run / "eval" / "iter_0006000").absolute()
    assert output_dir_of(tmp_path / "model.ckpt", "eval") == (tmp_path / "eval" / "model").absolute()
    # lsgan.sample's default follows the same rule
    assert output_dir_of(run / "checkpoints" / "best.ckpt", "sample") == (run / "sample" / "best").absolute()
    assert output_dir_of(run / "checkpoints" / "last.ckpt", "sample") == (run / "sample").absolute()


def test_like_rank_is_zero_for_copies_and_about_half_for_unrelated_samples():
    from lsgan.metrics.like import like_rank, like_score

    g = torch.Generator().manual_seed(0)
    ref = torch.randn(500, 8, generator=g)
    ex = ref[:20]
    owner = torch.arange(20).repeat_interleave(3)
    assert like_rank(ex, ex[owner], owner, ref) == 0.0  # each sample's nearest real image is its exemplar
    unrelated = torch.randn(60, 8, generator=g)
    assert 0.35 < like_rank(ex, unrelated, owner, ref) < 0.65
    near = ex[owner] + 0.01 * torch.randn(60, 8, generator=g)
    res = like_score(ex, near, owner, ref)
    assert res["value"] < 0.01 and 0.3 < res["chance"] < 0.7  # another exemplar's samples are unrelated


def test_like_metric_scores_a_copying_generator_far_below_chance(ckpts, cache_dir):
    """Samples that copy their exemplar (flipped) rank near 0 on the evaluator's features; chance near 0.5."""
    from lsgan.metrics.suite import MetricSuite

    _, cfg = load_method(ckpts["sngan"], overrides=[f"metrics.cache_dir={cache_dir[0]}", "metrics.like_features=evaluator",
                                                     "metrics.like_exemplars=20"])

    class Copy(MirrorMethod):
        def sample_like(self, images, n, use_ema=True):
            return images.unsqueeze(1).expand(-1, n, *images.shape[1:])

    res = MetricSuite(Copy(), load_datamodule(cfg), cfg, log=None).compute(["like"], n_samples=60)["like"]
    assert res["value"] < 0.05 and res["chance"] > 0.2
    assert res["protocol"]["exemplars"] == 20 and res["protocol"]["samples_per_exemplar"] == 3
    cgan, cfg = load_method(ckpts["cgan"], overrides=[f"metrics.cache_dir={cache_dir[0]}",
                                                      "metrics.like_features=evaluator"])
    skipped = MetricSuite(cgan, load_datamodule(cfg), cfg, log=None).compute(["like"], n_samples=60)["like"]["skipped"]
    assert "conditioned on labels, not on images" in skipped


def test_like_on_inception_features_reuses_the_reference_pass_of_fid(ckpts, tmp_path):
    """fid and like together: the reference images go through the FID network once (and are cached on disk)."""
    from lsgan.metrics.suite import MetricSuite

    class Counting(PoolFeatures):
        seen = 0

        def forward(self, images):
            Counting.seen += len(images)
            return super().forward(images)

    class Copy(MirrorMethod):
        def sample_like(self, images, n, use_ema=True):
            return images.unsqueeze(1).expand(-1, n, *images.shape[1:])

    _, cfg = load_method(ckpts["sngan"], overrides=[f"metrics.cache_dir={tmp_path}", "metrics.ref_n=200",
                                                     "metrics.like_exemplars=20", "metrics.like_features=inception"])
    dm = load_datamodule(cfg)
    res = MetricSuite(Copy(), dm, cfg, evaluator=None, inception=Counting(), log=None).compute(["fid", "like"],
                                                                                                n_samples=60)
    assert Counting.seen == 200 + 60 + 20 + 60  # reference once; FID's samples; like's exemplars and samples
    assert res["like"]["value"] < 0.05 and res["like"]["protocol"]["reference_n"] == 200
    Counting.seen = 0  # a later evaluation reads the reference from the cache
    again = MetricSuite(Copy(), dm, cfg, evaluator=None, inception=Counting(), log=None).compute(["like"], n_samples=60)
    assert Counting.seen == 20 + 60 and again["like"]["value"] == res["like"]["value"]
