"""Shared plumbing of the feature CLIs (``lsgan.extract``, ``lsgan.train_extractor``).

Both are Hydra apps over the same ``conf/`` tree as ``lsgan.run`` (so ``dataset=``, ``extractor=``,
``data.root=`` and ``-m`` sweeps work alike), but they write no run directory or Hydra log
files: their only outputs are the cache entries / weights files they print.
"""
from __future__ import annotations

import os
import sys
import tempfile
from typing import Callable, List

from omegaconf import DictConfig, OmegaConf

from lsgan.compose import CONF_DIR, precheck_overrides
from lsgan.errors import ConfigError, check_choice, merge_node

# Added to argv unless the user sets the same key. A sweep still writes multirun.yaml into its sweep dir: keep that out of the working directory.
QUIET_HYDRA = ["hydra.output_subdir=null", "hydra/job_logging=none", "hydra/hydra_logging=none",
               "hydra.run.dir=.", f"hydra.sweep.dir={os.path.join(tempfile.gettempdir(), 'lsgan-feature-sweeps')}",
               "hydra.sweep.subdir=."]


def with_quiet_hydra(argv: List[str]) -> List[str]:
    """``argv`` plus the QUIET_HYDRA overrides the user did not set, placed just before the first
    override: argparse needs the overrides contiguous (flags such as -m or --cfg job stay outside)."""
    own = {a.split("=", 1)[0].lstrip("+~") for a in argv if "=" in a}
    quiet = [q for q in QUIET_HYDRA if q.split("=", 1)[0] not in own]
    first = next((i for i, a in enumerate(argv) if "=" in a and not a.startswith("-")), len(argv))
    return argv[:first] + quiet + argv[first:]


def run_hydra_cli(task: Callable[[DictConfig], None], extra_keys: List[str] = ()) -> None:
    """Run ``task(cfg)`` as a Hydra app; ``extra_keys`` (e.g. ``split``) are accepted as plain ``key=value``."""
    import hydra

    argv = sys.argv[1:]
    try:
        precheck_overrides(argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    # keys outside conf/config.yaml need Hydra's '+' to be added; accept them without it
    argv = [f"+{a}" if a.split("=", 1)[0] in extra_keys else a for a in argv]
    sys.argv = [sys.argv[0]] + with_quiet_hydra(argv)

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
    def _main(cfg: DictConfig) -> None:
        try:
            task(cfg)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            sys.exit(1)

    _main()


def validate_feature_nodes(cfg: DictConfig) -> DictConfig:
    """The nodes feature work reads (seed, data, extractor, trainer), type-checked with defaults filled.

    Unlike ``lsgan.config.validate`` it skips the method's checks: training a RotNet must not
    fail because the default method would want that RotNet's weights already.
    """
    from lsgan.config import DataConfig, TrainerConfig
    from lsgan.data.datasets import DATASETS
    from lsgan.features.extractors import extractor_config

    from lsgan.data.profile import resolve_auto

    cfg = resolve_auto(cfg)
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    OmegaConf.set_struct(out, False)
    out.data = merge_node(DataConfig, cfg.data, "data")
    out.trainer = merge_node(TrainerConfig, cfg.get("trainer", {}), "trainer")
    out.extractor = extractor_config(cfg.get("extractor", {}))
    check_choice("dataset", out.data.name, DATASETS)
    if not 0 <= out.data.label_noise <= 1:
        raise ConfigError(f"data.label_noise={out.data.label_noise}: must be in [0, 1]")
    return out
