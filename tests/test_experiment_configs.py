"""Every recipe and paper sweep in conf/experiment/ composes, validates and trains for two iterations
on tiny data (the lightning-hydra-template's experiment tests): a recipe that stops composing after a
schema change fails here, not in a user's 30-minute run. Every job of a sweep (hydra.sweeper.params)
composes, and the command in each file's header runs that file."""
from __future__ import annotations

import itertools
import math
import re
import shlex
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from lsgan.config import validate
from lsgan.run import compose_config, train
from tests.conftest import REPO, SHARED, TINY, needs_shared

EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))
GROUP_KEYS = ("loss", "model", "prior", "extractor", "method", "dataset")
# Tiny nets and a few real images; each recipe keeps its own method, loss, prior and options.
SMALL = [o for o in TINY if not o.startswith("method.z_dim")] + [
    "trainer.steps=2", "model.g_width=8", "model.d_width=8", "data.batch_size=16", "data.max_train=128",
    "extractor.pca_dim=8", "metrics.every=0"]


def test_experiment_group_is_not_empty():
    assert {"clustergan_mnist", "nemgan_mnist", "nemgan_mnist04", "slcgan_mnist", "coupled_mnist",
            "coupled_mnist_paper"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_names_its_method(name):
    cfg = validate(compose_config([f"experiment={name}", "data.root=../shared/data"]))
    if name == cfg.method.name:  # a generic recipe (experiment=slcgan): any dataset, digits by default
        return
    assert name.startswith(f"{cfg.method.name}_{cfg.data.name}")  # <method>_<dataset>[_what]: nemgan_mnist04, slcgan_cifar100_k


def experiment_doc(name: str) -> dict:
    return yaml.safe_load((REPO / "conf" / "experiment" / f"{name}.yaml").read_text()) or {}


def sweep_jobs(name: str):
    """The jobs of an experiment's own sweep (hydra.sweeper.params, parsed as Hydra's basic sweeper does):
    a list of (override strings, {key: parsed value}); one job without overrides when it sweeps nothing."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = experiment_doc(name).get("hydra", {}).get("sweeper", {}).get("params") or {}
    parser = OverridesParser.create()
    axes = []
    for key, values in params.items():
        ov = parser.parse_override(f"{key}={values}")
        vals = list(ov.sweep_iterator()) if ov.is_sweep_override() else [ov.value()]
        strs = list(ov.sweep_string_iterator()) if ov.is_sweep_override() else [ov.get_value_element_as_str()]
        axes.append([(f"{key}={s}", key, v) for s, v in zip(strs, vals)])
    return [([o for o, _, _ in job], {k: v for _, k, v in job}) for job in itertools.product(*axes)]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """The shared data folder, or a copy of it by links plus a tiny random cifar100.npz (with superclasses)
    when it has none: the CIFAR-100 sweeps then train their two iterations too."""
    if SHARED is None or (SHARED / "cifar100.npz").is_file():
        return SHARED
    import numpy as np

    root = tmp_path_factory.mktemp("data")
    for entry in SHARED.iterdir():
        (root / entry.name).symlink_to(entry)
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 400), ("test", 100)):
        arrays[f"x_{split}"] = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        arrays[f"y_{split}"] = np.arange(n) % 100
        arrays[f"y_{split}_coarse"] = np.arange(n) % 20
    np.savez(root / "cifar100.npz", **arrays)
    return root


@needs_shared
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_trains_two_iterations(name, tmp_path, data_root):
    overrides = [f"experiment={name}", f"data.root={data_root}", f"extractor.cache_dir={tmp_path / 'features'}"] + SMALL
    if name.startswith("coupled"):
        # extractor=auto trains a RotNet for photographs on first use: one step is enough to test the recipe
        overrides += ["method.pair_pool=16", "extractor.train_steps=1"]
    if name == "nemgan_mnist04":  # two classes at 02:98: enough images that the 2 % class is not empty
        overrides.append("data.max_train=600")
    cfg = compose_config(overrides)
    if cfg.method.name == "coupled" and cfg.extractor.name in ("rotnet", "supervised"):
        # the sweep's trained extractor, as its header trains it (lsgan.train_extractor), one step
        from lsgan.train_extractor import train_extractor

        overrides.append(f"extractor.weights={tmp_path / 'extractor.pt'}")
        train_extractor(compose_config(overrides + ["extractor.train_steps=1", "extractor.device=cpu"]))
        cfg = compose_config(overrides)
    res = train(cfg, tmp_path / "run")
    assert res.iteration == 2
    rows = res.metrics_csv.read_text().strip().splitlines()
    assert len(rows) == 3  # header + one row per iteration (log_every=1)
    assert res.checkpoint.is_file() and res.samples.is_file()
    assert all(math.isfinite(float(v)) for v in rows[-1].split(",") if v)


def test_coupled_recipe_runs_on_any_gray_npz_without_edits(tmp_path):
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(200, 28, 28), dtype=np.uint8)  # 10 "classes" of random 28-px gray images
    y = np.arange(200) % 10
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x[:160], y_train=y[:160], x_test=x[160:], y_test=y[160:])
    overrides = ["experiment=coupled_mnist", "dataset=npz", f"data.path={path}",
                 f"extractor.cache_dir={tmp_path / 'features'}", "method.pair_pool=16",
                 "extractor.train_steps=2"] + SMALL  # random pixels read as photographs: a RotNet, trained briefly
    res = train(compose_config(overrides), tmp_path / "run")
    assert res.iteration == 2 and res.samples.is_file()
    from lsgan.loading import load_method

    method, _ = load_method(res.checkpoint)
    exemplars = torch.as_tensor(x[160:164]).float().div(127.5).sub(1).unsqueeze(1)
    exemplars = torch.nn.functional.interpolate(exemplars, size=tuple(method.data_info.shape[1:]))
    out = method.sample(8, condition=exemplars)
    assert out.shape == (8,) + tuple(method.data_info.shape) and out.abs().max() <= 1


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_a_sweep_carried_by_an_experiment_names_valid_choices(name):
    """Every job of an experiment's own hydra.sweeper.params (e.g. coupled_mnist_ablation's losses, the
    nemgan sweeps' lists of class ratios) composes and validates, and carries its swept values."""
    for job, values in sweep_jobs(name):
        cfg = validate(compose_config([f"experiment={name}", "data.root=../shared/data"] + job))
        for key, value in values.items():
            got = cfg[key].name if key in GROUP_KEYS else OmegaConf.select(cfg, key)
            got = OmegaConf.to_container(got) if OmegaConf.is_config(got) else got
            assert got == value, (job, key)


def header_commands(name: str):
    """The commands of an experiment file's leading comment: comment lines that are a ``python -m lsgan.<module>
    ...`` command (after optional VAR=value prefixes, e.g. OMP_NUM_THREADS=1), as argv lists from ``python``."""
    commands = []
    for line in (REPO / "conf" / "experiment" / f"{name}.yaml").read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if re.match(r"([A-Z_][A-Z0-9_]*=\S*\s+)*python -m lsgan\.", text):
            commands.append(shlex.split(text[text.index("python -m lsgan."):]))
    return commands


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_header_gives_the_command_that_runs_it(name):
    """The header names a `python -m lsgan.run [-m] experiment=<name> ...` command (with -m when the file
    is a sweep); its overrides compose and validate, and so do those of the steps before it
    (lsgan.train_extractor experiment=<name>, lsgan.train_evaluator)."""
    from lsgan.features.cli import validate_feature_nodes
    from lsgan.features.extractors import check_extractor_config

    commands = header_commands(name)
    runs = [c for c in commands if c[:3] == ["python", "-m", "lsgan.run"]]
    assert runs, f"{name}.yaml: no `python -m lsgan.run experiment={name} ...` line in its header comment"
    doc = experiment_doc(name)
    is_sweep = bool(doc.get("hydra", {}).get("sweeper", {}).get("params") or doc.get("hydra", {}).get("sweep"))
    for cmd in commands:
        module, args = cmd[2], [a for a in cmd[3:] if a != "-m"]
        assert all("=" in a for a in args), cmd
        if module in ("lsgan.run", "lsgan.train_extractor"):
            assert f"experiment={name}" in args, cmd
        if module == "lsgan.run":
            assert ("-m" in cmd) or not is_sweep, f"{name} is a sweep: its command needs -m"
            validate(compose_config(args))
        elif module == "lsgan.train_extractor":
            check_extractor_config(validate_feature_nodes(compose_config(args)).extractor, need_weights=False)
        else:  # a step before the runs that does not read the experiment (lsgan.train_evaluator dataset=...)
            compose_config(args)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_a_sweeps_runs_land_where_its_collector_reads(name):
    """A sweep folder set by an experiment is runs/<family>/<sweep>, with experiments/<family>/collect.py."""
    folder = experiment_doc(name).get("hydra", {}).get("sweep", {}).get("dir")
    if folder is None:
        return
    parts = Path(folder).parts
    assert len(parts) == 3 and parts[0] == "runs", folder
    assert (REPO / "experiments" / parts[1] / "collect.py").is_file(), folder


def test_the_ablation_experiment_sweeps_the_papers_losses():
    import yaml

    doc = yaml.safe_load((REPO / "conf" / "experiment" / "coupled_mnist_ablation.yaml").read_text())
    assert doc["hydra"]["sweeper"]["params"]["loss"].split(",") == ["full", "proto_a", "proto_b", "proto_c",
                                                                   "feature_cgan"]
