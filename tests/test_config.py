"""Every key a user can set is documented by its default in conf/, and configs compose."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from lsgan import config as C
from lsgan.features import ExtractorConfig
from lsgan.methods import METHODS
from lsgan.priors import PriorConfig
from lsgan.run import CONF_DIR, compose_config, group_choices

ROOT = yaml.safe_load((CONF_DIR / "config.yaml").read_text())


def keys_of(path: Path) -> set:
    return set(yaml.safe_load(path.read_text()) or {}) - {"defaults"}


def names(schema) -> set:
    return {f.name for f in fields(schema)}


@pytest.mark.parametrize("node,schema", [("data", C.DataConfig), ("loss", C.LossConfig)])
def test_base_nodes_in_config_yaml_document_every_field(node, schema):
    assert set(ROOT[node]) == names(schema)


@pytest.mark.parametrize("group,schema", [
    ("model", C.ModelConfig), ("logger", C.LoggerConfig), ("metrics", C.MetricsConfig),
    ("prior", PriorConfig), ("extractor", ExtractorConfig),
])
def test_group_files_document_every_field(group, schema):
    for path in (CONF_DIR / group).glob("*.yaml"):
        if group == "prior" and path.stem == "none":
            continue
        assert keys_of(path) == names(schema), path.name


def test_trainer_default_documents_every_field():
    assert keys_of(CONF_DIR / "trainer" / "default.yaml") == names(C.TrainerConfig)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_method_files_document_every_field_and_compose(method):
    assert keys_of(CONF_DIR / "method" / f"{method}.yaml") == names(METHODS[method].Config)
    cfg = C.validate(compose_config([f"method={method}"]))
    assert cfg.method.name == method and cfg.loss.name == "full" == METHODS[method].LOSSES[0]
    assert cfg.method.adv_loss in METHODS[method].ADV_LOSSES


def test_every_dataset_file_composes_and_names_itself():
    for name in group_choices("dataset"):
        cfg = compose_config([f"dataset={name}"])
        assert cfg.data.name == name
        assert set(cfg.data) == names(C.DataConfig)


@pytest.mark.parametrize("given,expected", [("16", "16-mixed"), ("bf16", "bf16-mixed"), ("32", "32-true"),
                                            ("bf16-mixed", "bf16-mixed"), ("16-true", "16-true")])
def test_lightning_precision_spellings_are_accepted(given, expected):
    cfg = C.validate(compose_config([f"trainer.precision={given}"]))
    assert cfg.trainer.precision == expected


@pytest.mark.parametrize("override,needle", [
    ("trainer.precision=8", "trainer.precision='8' is not accepted; accepted values: 32-true"),
    ("trainer.strategy=ddp_spawn", "trainer.strategy=ddp_spawn is not supported"),
    ("trainer.strategy=fsdp", "trainer.strategy='fsdp' is not accepted; accepted values: auto, ddp"),
])
def test_trainer_choices_fail_in_one_line(override, needle):
    with pytest.raises(C.ConfigError, match=needle.replace("(", r"\(")) as err:
        C.validate(compose_config([override]))
    assert "\n" not in str(err.value)


def test_tensorboard_logger_without_tensorboard_is_one_line():
    import importlib.util

    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        assert C.validate(compose_config(["logger=tensorboard"])).logger.name == "tensorboard"
        return
    with pytest.raises(C.ConfigError, match=r"pip install '\.\[tensorboard\]'"):
        C.validate(compose_config(["logger=tensorboard"]))


@pytest.mark.parametrize("override,needle", [
    ("data.batch_size=-3", "data.batch_size=-3: must be >= 1"),
    ("trainer.steps=-5", "trainer.steps=-5: must be >= 1"),
    ("method.lr_g=-1", "method.lr_g=-1.0: a learning rate must be > 0"),
    ("method=slcgan", None),  # lr_c is checked too, and a valid config passes
])
def test_value_checks_fail_before_training_in_one_line(override, needle):
    if needle is None:
        C.validate(compose_config([override]))
        with pytest.raises(C.ConfigError, match="method.lr_c=0.0"):
            C.validate(compose_config([override, "method.lr_c=0"]))
        return
    with pytest.raises(C.ConfigError, match=needle):
        C.validate(compose_config([override]))


def hydra_dirs(*overrides) -> tuple:
    """(hydra.run.dir, hydra.sweep.subdir) as the CLI resolves them for ``overrides`` (job number 0)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.job.num = 0
    return OmegaConf.select(cfg, "hydra.run.dir"), OmegaConf.select(cfg, "hydra.sweep.subdir")


def test_a_run_with_overrides_is_a_sibling_of_the_plain_run_never_inside_it():
    plain = Path(hydra_dirs("method=clustergan", "dataset=mnist")[0])
    budget = Path(hydra_dirs("method=clustergan", "dataset=mnist", "trainer.max_minutes=0.25", "seed=1")[0])
    assert plain == Path("runs/clustergan-mnist")
    assert budget == Path("runs/clustergan-mnist,seed=1,trainer.max_minutes=0.25")
    assert budget.parent == plain.parent and not budget.is_relative_to(plain)
    # the same command in any order names the same dir (it resumes); keys that do not change what is
    # trained (budget in steps, cadence, logging, data.root) stay out of the name
    assert hydra_dirs("seed=1", "trainer.max_minutes=0.25", "dataset=mnist", "method=clustergan",
                      "trainer.steps=9", "data.root=elsewhere")[0] == str(budget)
    # a path value never makes a subfolder (one run inside another's dir)
    weights = Path(hydra_dirs("extractor.weights=runs/coupled/weights/a.pt")[0])
    assert weights.parent == Path("runs")
    assert weights.name == "coupled-digits,extractor.weights=runs%2Fcoupled%2Fweights%2Fa.pt"
    # multirun job dirs name the job, the method, the dataset and the swept keys
    assert hydra_dirs("method=sngan", "seed=2")[1] == "0_sngan-digits_seed=2"


def test_run_dir_names_stay_under_the_filesystems_name_limit():
    from lsgan.run import run_dir_name

    assert run_dir_name("sngan-digits") == "sngan-digits" and run_dir_name("sngan-digits", "") == "sngan-digits"
    long_a = run_dir_name("m-d", "data.classes=[" + "1," * 150 + "2]")
    long_b = run_dir_name("m-d", "data.classes=[" + "1," * 150 + "3]")
    assert len(long_a.encode()) <= 200 and long_a.startswith("m-d,data.classes=[1,1") and long_a != long_b
