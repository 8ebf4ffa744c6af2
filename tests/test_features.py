"""Feature extractors, the on-disk feature cache, extractor training and the feature CLIs."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from lsgan.config import ConfigError
from lsgan.data.datamodule import GANDataModule
from lsgan.data.datasets import load_dataset
from lsgan.features import (ExtractorConfig, FeatureCache, build_extractor, extractor_for_method, feature_key,
                            features_for_datamodule, load_extractor_checkpoint, save_extractor_checkpoint,
                            train_rotnet, weights_digest)
from lsgan.features.cache import key_hash
from lsgan.features.cli import validate_feature_nodes
from lsgan.run import compose_config

# digits at 16 px, 64 training images: every extraction here is a fraction of a second
SMALL = ["dataset=digits", "data.size=16", "data.max_train=64", "extractor.batch_size=32", "extractor.device=cpu",
         "trainer.accelerator=cpu"]


def small_cfg(tmp_path, *overrides):
    return validate_feature_nodes(compose_config(SMALL + [f"extractor.cache_dir={tmp_path / 'cache'}",
                                                          *overrides]))


@pytest.fixture(scope="module")
def digits16():
    cfg = validate_feature_nodes(compose_config(SMALL))
    return load_dataset(cfg.data, "train", 0, train=True)


@pytest.fixture(scope="module")
def rotnet_weights(tmp_path_factory, digits16):
    """A real (tiny) RotNet: 25 Adam steps on 16-px digits; history records its probe loss."""
    net, hist = train_rotnet(digits16.data, width=4, steps=25, batch_size=16, lr=1e-2, seed=0, device="cpu",
                             log_every=0)
    path = tmp_path_factory.mktemp("weights") / "rotnet.pt"
    save_extractor_checkpoint(str(path), "rotnet", net, 1, 4, 16, 4, hist)
    return path, hist


# --------------------------------------------------------------------------- extractors
def test_alexnet_layers_give_known_flattened_map_shapes():
    # torchvision AlexNet at 64 px: conv1 64@15², conv2 192@7², conv3 384@3², conv4/5 256@3²
    expected = {"conv1": 64 * 15 * 15, "conv2": 192 * 7 * 7, "conv3": 384 * 9, "conv4": 256 * 9, "conv5": 256 * 9}
    gray, rgb = torch.rand(2, 1, 28, 28) * 2 - 1, torch.rand(2, 3, 28, 28) * 2 - 1
    for layer, dim in expected.items():
        e = build_extractor(ExtractorConfig(layer=layer), (1, 28, 28))
        assert e.out_dim == dim and e.input_size == 64
        f = e(gray)
        assert f.shape == (2, dim) and f.dtype == torch.float32 and torch.isfinite(f).all()
        assert (f >= 0).all()  # post-ReLU maps, not logits
    pooled = build_extractor(ExtractorConfig(layer="conv3", pool=2), (3, 28, 28))
    assert pooled.out_dim == 384 * 4 and pooled(rgb).shape == (2, 384 * 4)


def test_extractor_is_frozen_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    e = build_extractor(ExtractorConfig(layer="conv2", input_size=32), (1, 16, 16))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(not p.requires_grad for p in e.parameters())
    parent = torch.nn.Sequential(e)
    parent.train()
    assert not e.training and not any(m.training for m in e.modules())
    x = torch.rand(3, 1, 16, 16, requires_grad=True)
    e(x).sum().backward()
    assert x.grad is not None and all(p.grad is None for p in e.parameters())
    same = build_extractor(ExtractorConfig(layer="conv2", input_size=32), (1, 16, 16))
    other = build_extractor(ExtractorConfig(layer="conv2", input_size=32, seed=1), (1, 16, 16))
    assert weights_digest(same.trunk) == weights_digest(e.trunk) != weights_digest(other.trunk)
    assert torch.equal(same(x.detach()), e(x.detach()))


def test_bad_extractor_config_is_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match=r"extractor.layer .* accepted values: conv1, conv2, conv3, conv4, conv5"):
        build_extractor(ExtractorConfig(layer="fc6"), (1, 16, 16))
    with pytest.raises(ConfigError, match=r"python -m lsgan.train_extractor extractor=rotnet") as err:
        build_extractor(ExtractorConfig(name="rotnet", layer="conv2"), (1, 16, 16))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="no such file"):
        build_extractor(ExtractorConfig(name="rotnet", layer="conv2", weights=str(tmp_path / "nope.pt")), (1, 16, 16))
    with pytest.raises(ConfigError, match="too small"):
        build_extractor(ExtractorConfig(layer="conv5", input_size=16), (1, 16, 16))


def test_rotnet_training_lowers_loss_and_its_weights_build_every_layer(rotnet_weights):
    path, hist = rotnet_weights
    # chance level of 4-way rotation prediction is ln 4 = 1.386; real steps must beat the start clearly
    assert hist["probe_loss_before"] > 1.3 and hist["probe_loss_after"] < 0.6 * hist["probe_loss_before"]
    ckpt = load_extractor_checkpoint(path)
    assert ckpt["kind"] == "rotnet" and ckpt["input_size"] == 16
    maps = {"conv1": 4 * 8 * 8, "conv2": 8 * 4 * 4, "conv3": 16 * 2 * 2, "conv4": 16 * 2 * 2}  # width 4 at 16 px
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    for layer, dim in maps.items():
        e = build_extractor(ExtractorConfig(name="rotnet", layer=layer, weights=str(path)), (1, 16, 16))
        assert e(x).shape == (2, dim) and all(not p.requires_grad for p in e.parameters())
    with pytest.raises(ConfigError, match="is a rotnet checkpoint, but extractor=supervised"):
        build_extractor(ExtractorConfig(name="supervised", layer="conv2", weights=str(path)), (1, 16, 16))


# --------------------------------------------------------------------------- cache
def counting(extractor):
    calls = []
    extractor.trunk.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    return calls


def test_cache_hit_skips_recompute_and_corruption_is_detected_and_rebuilt(tmp_path, digits16):
    cfg = small_cfg(tmp_path, "extractor.layer=conv3", "extractor.input_size=32")
    e = build_extractor(cfg.extractor, digits16.data.shape[1:])
    calls = counting(e)
    cache = FeatureCache(tmp_path / "c", verbose=False)
    first, info = cache.features(cfg.data, "train", digits16, e, batch_size=32, device="cpu")
    assert not info.hit and info.reason == "missing" and sum(calls) == 64 and first.shape == (64, 384)
    reference = first.clone()
    with torch.no_grad():  # the cache holds exactly what the extractor computes
        assert torch.allclose(reference, e(digits16.images()), atol=1e-5)
    calls.clear()

    again, info = cache.features(cfg.data, "train", digits16, e, batch_size=32, device="cpu")
    assert info.hit and calls == [] and torch.equal(again, reference)
    assert isinstance(again.numpy(), np.memmap) or again.numpy().base is not None  # memory-mapped, not loaded

    npy, side = info.path, info.path.with_suffix(".json")
    raw = bytearray(npy.read_bytes())
    raw[-100] ^= 0xFF  # one flipped byte in the data
    npy.write_bytes(bytes(raw))
    assert cache.load(feature_key(cfg.data, "train", e, digits16), npy.name.rsplit("-", 1)[0],
                      (64, 384))[1] == "corrupt: checksum mismatch"
    rebuilt, info = cache.features(cfg.data, "train", digits16, e, batch_size=32, device="cpu")
    assert not info.hit and info.reason == "corrupt: checksum mismatch" and sum(calls) == 64
    assert torch.equal(rebuilt, reference)

    npy.write_bytes(npy.read_bytes()[:-400])  # truncated file
    _, info = cache.features(cfg.data, "train", digits16, e, batch_size=32, device="cpu")
    assert not info.hit and info.reason.startswith("corrupt: file is")
    side.write_text("{not json")
    _, info = cache.features(cfg.data, "train", digits16, e, batch_size=32, device="cpu")
    assert not info.hit and info.reason.startswith("corrupt: sidecar unreadable")
    meta = json.loads(side.read_text())
    meta["shape"] = [64, 383]
    side.write_text(json.dumps(meta))
    _, info = cache.features(cfg.data, "train", digits16, e, batch_size=32, device="cpu")
    assert not info.hit and info.reason.startswith("stale")
    final, info = cache.features(cfg.data, "train", digits16, e, batch_size=32, device="cpu")
    assert info.hit and torch.equal(final, reference)
    assert not list(npy.parent.glob("*.tmp"))  # no temporary files left behind


def test_cache_key_changes_with_layer_extractor_weights_and_data(tmp_path, digits16, rotnet_weights):
    cfg = small_cfg(tmp_path)

    def key(data_cfg=cfg.data, split="train", dataset=digits16, **ext):
        e = build_extractor(ExtractorConfig(**{"input_size": 32, **ext}), dataset.data.shape[1:])
        return key_hash(feature_key(data_cfg, split, e, dataset))

    base = key(layer="conv3")
    assert key(layer="conv3") == base  # stable
    assert key(layer="conv2") != base
    assert key(layer="conv3", seed=1) != base  # other random weights
    assert key(layer="conv3", pool=1) != base
    assert key(name="rotnet", layer="conv3", weights=str(rotnet_weights[0])) != base
    other = small_cfg(tmp_path, "data.max_train=32")
    assert key(data_cfg=other.data, dataset=load_dataset(other.data, "train", 0, train=True), layer="conv3") != base


def test_features_for_datamodule_cached_and_on_the_fly_agree_with_the_method_extractor(tmp_path):
    cfg = small_cfg(tmp_path, "extractor.layer=conv2", "extractor.input_size=32", "extractor.pca_dim=8")
    dm = GANDataModule(cfg.data, seed=0)
    feats = features_for_datamodule(cfg, dm)
    assert feats.shape == (64, 8)
    dm.attach_features(feats)
    assert torch.equal(dm.train_set.__getitems__([3, 5]).feat, feats[[3, 5]])
    cfg.extractor.cache = False
    assert torch.allclose(features_for_datamodule(cfg, dm), feats, atol=1e-4)
    cfg.extractor.cache = True
    e = extractor_for_method(cfg, dm.image_shape)  # PCA loaded from the cache: same space as the cached rows
    with torch.no_grad():
        assert torch.allclose(e(dm.train_set.images([3, 5])), feats[[3, 5]], atol=1e-4)
    assert e.out_dim == 8 and all(not p.requires_grad for p in e.parameters())


# --------------------------------------------------------------------------- CLIs
def run_cli(monkeypatch, module, args):
    monkeypatch.setattr(sys, "argv", [module.__name__] + args)
    module.main()


def test_extract_cli_builds_then_hits(tmp_path, monkeypatch, capsys):
    import lsgan.extract as extract

    args = SMALL + [f"extractor.cache_dir={tmp_path}", "extractor.layer=conv1", "extractor.input_size=32",
                    "split=all"]
    run_cli(monkeypatch, extract, args)
    out = capsys.readouterr().out
    assert out.count("built (missing") == 2 and "64x3136" in out and "359x3136" in out
    run_cli(monkeypatch, extract, args)
    out = capsys.readouterr().out
    assert out.count("cache hit") == 2 and "extracting" not in out
    assert len(list(tmp_path.glob("digits-t*-alexnet_random-conv1-*.npy"))) == 2
    assert not (tmp_path / ".hydra").exists()


def test_train_extractor_cli_writes_noisy_supervised_weights(tmp_path, monkeypatch, capsys):
    import lsgan.train_extractor as train_extractor

    out_file = tmp_path / "sup.pt"
    run_cli(monkeypatch, train_extractor, SMALL + ["extractor=supervised", "data.label_noise=0.3",
                                                   "extractor.width=4", "extractor.train_steps=3",
                                                   "extractor.train_batch_size=8", f"extractor.weights={out_file}"])
    out = capsys.readouterr().out
    assert f"weights: {out_file}" in out and f"extractor=supervised extractor.weights={out_file}" in out
    ckpt = load_extractor_checkpoint(out_file)
    assert ckpt["kind"] == "supervised" and ckpt["num_outputs"] == 10 and ckpt["meta"]["label_noise"] == 0.3
    assert json.loads((tmp_path / "sup.pt.json").read_text())["steps"] == 3
    e = build_extractor(ExtractorConfig(name="supervised", layer="conv3", weights=str(out_file)), (1, 16, 16))
    assert e(torch.zeros(1, 1, 16, 16)).shape == (1, 16 * 2 * 2)
    with pytest.raises(SystemExit):  # alexnet_random is not trainable: one-line error, exit status 1
        run_cli(monkeypatch, train_extractor, SMALL + [f"extractor.weights={out_file}"])
    assert "accepted values: rotnet, supervised" in capsys.readouterr().err


def test_quiet_hydra_overrides_keep_flags_outside_and_yield_to_the_user():
    from lsgan.features.cli import QUIET_HYDRA, with_quiet_hydra

    out = with_quiet_hydra(["--cfg", "job", "dataset=mnist", "hydra.run.dir=mine", "-m"])
    assert out[:2] == ["--cfg", "job"] and out[-3:] == ["dataset=mnist", "hydra.run.dir=mine", "-m"]
    assert out[2:-3] == [q for q in QUIET_HYDRA if not q.startswith("hydra.run.dir=")]
