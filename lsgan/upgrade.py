"""Configs saved by earlier versions of lsgan, read in today's spelling.

A checkpoint's ``hyper_parameters["cfg"]`` and a run's ``config.yaml`` keep the keys of the version
that wrote them. ``upgrade_saved_config`` is the one place they are translated (``lsgan.loading``,
resume's settings check, ``GANMethod``, ``lsgan.runs``), so a run trained before a rename or a removal
still loads, samples, evaluates and resumes.
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, Dict

from omegaconf import DictConfig, OmegaConf

from lsgan.io import DEFAULT_CACHE
from lsgan.losses.gan import ADV_FORMS

COUPLED_G_LOSS = {"ns": "ns", "saturating": "minimax"}  # old method.g_loss -> method.adv_loss
GP_METHODS = ("sngan", "clustergan", "nemgan")  # the methods whose config has method.gp_weight (adv_loss=wgan_gp)

# Options that went because no paper defines them and no recipe used them, with the value that gave
# today's behaviour. A saved config holding that value upgrades silently; any other value is dropped with
# a warning (the run trained with a setting that no longer exists; its weights still load).
REMOVED_OPTIONS: Dict[str, Dict[str, Any]] = {
    "slcgan": {"mi_warmup": 0, "mi_margin": 0.0, "c_fake_entropy_weight": 0.0,
               "mi_weight": 1.0, "aug_weight": 1.0},  # the paper's weights; loss=no_mi / no_aug drop a term
    "nemgan": {"mode_warmup": 0, "z_dim": None, "mode_net_out": "k",
               "sinkhorn_eps": 0.05, "sinkhorn_pool": 4096, "sinkhorn_every": 100},
    "clustergan": {"kmeans_seed": 0, "z_dim": None, "sinkhorn_eps": 0.05, "sinkhorn_pool": 4096, "sinkhorn_every": 100},
    "coupled": {"randomize_pair_order": True, "feat_norm": "rms"},
}


# Renamed options, old -> new (dotted, under method.): the clustering term's options in one nested node, and
# one spelling for loss weights (*_weight).
_CLUSTERING = {"consistency_weight": "clustering.weight", "balance_weight": "clustering.balance_weight",
               "balance_kl": "clustering.balance_kl", "assign": "clustering.assign", "augment": "clustering.augment"}
RENAMED_OPTIONS: Dict[str, Dict[str, str]] = {
    "clustergan": {**_CLUSTERING, "beta_n": "zn_weight", "beta_c": "zc_weight", "beta_p": "perceptual_weight",
                   "perceptual_weights": "perceptual_checkpoint", "mode_seeking": "mode_seeking_weight"},
    "nemgan": {**_CLUSTERING, "sinkhorn_heads": "clustering.heads", "mode_seeking": "mode_seeking_weight"},
    "slcgan": {"marginal_weight": "clustering.balance_weight", "balance_kl": "clustering.balance_kl",
               "augment": "clustering.augment"},
    "coupled": {"lambda_adv": "adv_weight", "lambda_same": "same_weight", "lambda_diff": "diff_weight",
                "mode_seeking": "mode_seeking_weight"},
}


def renamed_option(method: str, key: str) -> str:
    """Today's name of ``method.<key>`` for ``method=<method>`` (``key`` itself when it was not renamed)."""
    return RENAMED_OPTIONS.get(method, {}).get(key, key)


def upgrade_saved_config(cfg) -> dict:
    """``cfg`` (a DictConfig or dict) in today's spelling, as a plain dict; a config already in it comes back
    unchanged (a copy).

    * ``loss.name`` hinge | ns | minimax | wgan_gp (sngan, cgan, clustergan) -> ``method.adv_loss`` of that
      name and ``loss.name: full`` (those methods had no ablations);
    * ``loss.gp_weight`` -> ``method.gp_weight`` for methods that have it (sngan, clustergan, nemgan),
      dropped for the others (it was unused there);
    * coupled's ``method.g_loss`` ns | saturating -> ``method.adv_loss`` ns | minimax (the same BCE game:
      the pair D's loss is the BCE either way, only G's loss differs, exactly as ns / minimax);
    * ``metrics.cache_dir: ~/.cache/lsgan`` (the old default, spelled out in every saved config) -> null, today's
      default (``lsgan.io.cache_root()``: the same folder unless ``$LSGAN_CACHE`` moves every cache);
    * the keys of ``RENAMED_OPTIONS`` move to their new names (``method.consistency_weight`` ->
      ``method.clustering.weight``, ``method.beta_n`` -> ``method.zn_weight``, ...);
    * the keys of ``REMOVED_OPTIONS`` are dropped; slcgan's ``mi_weight: 0`` / ``aug_weight: 0`` become
      ``loss=no_mi`` / ``loss=no_aug``, the ablations they were the same as.
    """
    out = (OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else copy.deepcopy(dict(cfg)))
    loss, method = out.get("loss"), out.get("method")
    if not isinstance(loss, dict) or not isinstance(method, dict):
        return out
    if loss.get("name") in ADV_FORMS:
        method.setdefault("adv_loss", loss["name"])
        loss["name"] = "full"
    if "gp_weight" in loss:
        gp = loss.pop("gp_weight")
        if method.get("name") in GP_METHODS:
            method.setdefault("gp_weight", gp)
    if "g_loss" in method:
        g = method.pop("g_loss")
        method.setdefault("adv_loss", COUPLED_G_LOSS.get(g, g))
    _drop_removed(method, loss)
    _rename(method)
    metrics = out.get("metrics")
    if isinstance(metrics, dict) and metrics.get("cache_dir") == DEFAULT_CACHE:
        metrics["cache_dir"] = None
    return out


def _drop_removed(method: dict, loss: dict) -> None:
    name = method.get("name")
    for key, neutral in REMOVED_OPTIONS.get(name, {}).items():
        if key not in method:
            continue
        value = method.pop(key)
        if name == "slcgan" and key in ("mi_weight", "aug_weight") and value == 0 and loss.get("name") == "full":
            loss["name"] = "no_mi" if key == "mi_weight" else "no_aug"
        elif neutral is not None and value != neutral:
            warnings.warn(f"method.{key}={value}: this run was trained with an option lsgan no longer has "
                          f"(today: {neutral}); its weights load, and a resume continues with today's behaviour",
                          stacklevel=3)


def _rename(method: dict) -> None:
    for old, new in RENAMED_OPTIONS.get(method.get("name"), {}).items():
        if old not in method:
            continue
        value = method.pop(old)
        node, *rest = new.split(".")
        if rest:  # clustering.<key>: into the nested node, unless the config already has it there
            method.setdefault(node, {})
            method[node].setdefault(rest[0], value)
        else:
            method.setdefault(node, value)
