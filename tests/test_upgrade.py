"""Configs saved before options were renamed or removed load in today's spelling (lsgan.upgrade)."""
from __future__ import annotations

import copy
import warnings

import pytest
import torch
from omegaconf import OmegaConf

from lsgan.compose import compose_config
from lsgan.config import ConfigError, validate
from lsgan.run import train
from lsgan.upgrade import REMOVED_OPTIONS, RENAMED_OPTIONS, upgrade_saved_config

RENAMES = [(method, old, new) for method, table in RENAMED_OPTIONS.items() for old, new in table.items()]


def saved(method: str, **keys) -> dict:
    return {"loss": {"name": "full"}, "method": {"name": method, **keys}}


@pytest.mark.parametrize("method,old,new", RENAMES, ids=[f"{m}.{o}" for m, o, _ in RENAMES])
def test_each_renamed_key_moves_to_its_new_name(method, old, new):
    value = {"kind": "affine", "flip": 0.0} if old == "augment" else 0.25
    got = upgrade_saved_config(saved(method, **{old: value}))["method"]
    assert old not in got
    node, *rest = new.split(".")
    assert (got[node][rest[0]] if rest else got[node]) == value
    assert upgrade_saved_config({"loss": {"name": "full"}, "method": got})["method"] == got  # idempotent


def test_an_old_config_validates_with_todays_schema_and_keeps_its_values():
    cfg = compose_config(["experiment=nemgan", "dataset=digits"])
    old = upgrade_saved_config(cfg)
    m = old["method"]
    clustering = m.pop("clustering")
    m.update(consistency_weight=1.0, balance_weight=3.0, balance_kl="reverse", assign="soft",
             sinkhorn_heads=1, augment={**clustering["augment"], "kind": "affine"},
             mode_seeking=m.pop("mode_seeking_weight"), mode_warmup=0, mode_net_out="k", z_dim=50,
             sinkhorn_eps=0.05, sinkhorn_pool=4096, sinkhorn_every=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neutral values of removed options upgrade silently
        new = validate(OmegaConf.create(upgrade_saved_config(old)))
    c = new.method.clustering
    assert (c.weight, c.balance_weight, c.balance_kl, c.augment.kind, new.method.mode_seeking_weight) == \
        (1.0, 3.0, "reverse", "affine", 0.3)


def test_removed_options_drop_and_warn_only_when_they_changed_behaviour():
    for method, table in REMOVED_OPTIONS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = upgrade_saved_config(saved(method, **{k: v for k, v in table.items() if v is not None}))
        assert not set(table) & set(got["method"])
    with pytest.warns(UserWarning, match=r"method\.mi_warmup=500: this run was trained with an option"):
        upgrade_saved_config(saved("slcgan", mi_warmup=500))


@pytest.mark.parametrize("key,loss", [("mi_weight", "no_mi"), ("aug_weight", "no_aug")])
def test_slcgan_zero_weights_become_the_ablation_they_equal(key, loss):
    got = upgrade_saved_config(saved("slcgan", **{key: 0.0}))
    assert got["loss"]["name"] == loss and key not in got["method"]


@pytest.mark.parametrize("override,needle", [
    ("method.beta_n=2", "calls this option method.zn_weight now"),
    ("method.consistency_weight=1", "calls this option method.clustering.weight now"),
    ("method.augment.kind=affine", "method.clustering.augment.kind now"),
    ("method.mi_warmup=3", "no longer has this option"),
    ("method.z_dim=8", "write prior.dim=8"),
])
def test_old_spellings_on_the_command_line_say_what_to_write(override, needle):
    method = {"beta_n": "clustergan", "consistency_weight": "nemgan", "augment": "slcgan", "mi_warmup": "slcgan",
              "z_dim": "nemgan"}[override.split(".")[1].split("=")[0]]
    with pytest.raises(ConfigError, match=needle) as err:
        compose_config([f"method={method}", override])
    assert "\n" not in str(err.value)


def test_a_checkpoint_saved_with_old_names_loads_and_resumes(tiny_cfg, tmp_path):
    """A run whose checkpoint and config.yaml hold the old spellings resumes with the same settings."""
    import yaml

    from lsgan.loading import load_method

    args = ("method=clustergan", "prior.dim=16", "prior.k=4", "method.n_dis=1", "method.clustering.weight=1",
            "method.clustering.augment.kind=affine", "method.zn_weight=2")
    run = tmp_path / "run"
    res = train(tiny_cfg(*args, "trainer.steps=2"), str(run))
    blob = torch.load(res.checkpoint, map_location="cpu", weights_only=False)
    old = copy.deepcopy(blob["hyper_parameters"]["cfg"])
    m = old["method"]
    c = m.pop("clustering")
    m.update(consistency_weight=c["weight"], balance_weight=c["balance_weight"], balance_kl=c["balance_kl"],
             assign=c["assign"], augment=c["augment"], beta_n=m.pop("zn_weight"), beta_c=m.pop("zc_weight"),
             kmeans_seed=0)
    blob["hyper_parameters"]["cfg"] = old
    torch.save(blob, res.checkpoint)
    (run / "config.yaml").write_text(yaml.safe_dump(old))
    loaded, _ = load_method(res.checkpoint)
    assert (loaded.mcfg.clustering.weight, loaded.mcfg.zn_weight) == (1.0, 2.0)
    again = train(tiny_cfg(*args, "trainer.steps=3"), str(run))  # the settings check compares in today's spelling
    assert again.iteration == 3


def test_a_fresh_process_checks_a_method_key_without_an_import_cycle():
    """The command line's renamed-key check imports lsgan.upgrade before anything loaded lsgan.methods."""
    import subprocess
    import sys
    from pathlib import Path

    proc = subprocess.run([sys.executable, "-c", "import lsgan.upgrade, lsgan.compose as c; "
                           "c.check_renamed_overrides(['method=nemgan', 'method.semi_fraction=0.05'])"],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
