"""The ``conf/`` tree and what reads it before a run exists: where it is, composing it, checking a command
line's choices and keys in one line before Hydra, and naming runs.

``lsgan.run`` (the training CLI) and the other command lines (``lsgan.extract``, ``lsgan.train_extractor``,
``lsgan.train_evaluator``, ``lsgan.loading``'s override check) compose configs through here; tests, benchmarks
and notebooks call ``compose_config``. Importing it registers the ``lsgan.run_dir``, ``lsgan.sweep_dir`` and
``lsgan.dir_name`` resolvers that ``conf/config.yaml``'s ``hydra.run.dir`` and ``hydra.sweep`` use. It imports only
omegaconf at module level, so ``python -m lsgan.run --help`` starts without torch; the config schema
(``lsgan.config``) and the method registry are imported where a check needs them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import List

from omegaconf import DictConfig, OmegaConf

from lsgan.errors import ConfigError

# An installed wheel carries the configs as lsgan/conf; a source checkout has them at the top (conf/).
CONF_DIR = next((d for d in (Path(__file__).resolve().parent / "conf", Path(__file__).resolve().parent.parent / "conf")
                 if (d / "config.yaml").is_file()), Path(__file__).resolve().parent.parent / "conf")


def run_dir_name(name: str, overrides: str = "") -> str:
    """A run dir's name (the ``lsgan.dir_name`` resolver of conf/config.yaml's ``hydra.run.dir``):
    ``name`` (``<method>-<dataset>``) alone, or ``name,<overrides>`` when the command line set other keys
    (Hydra's ``override_dirname``: sorted ``key=value`` pairs joined by commas, without the keys of
    ``hydra.job.config.override_dirname.exclude_keys``: method, dataset, budget in steps, cadence, logging ...).
    A run with overrides is a sibling of the plain run's dir, never inside it, and the same command
    always names the same dir (so it resumes). ``%``, ``/`` and ``\\`` in values (paths) are written
    ``%25``, ``%2F``, ``%5C``: a value never makes a subfolder. A name over 200 bytes keeps its start
    and ends with a hash of the whole (filesystems cap a name at 255 bytes)."""
    name = str(name)
    if overrides:
        escaped = str(overrides).replace("%", "%25").replace("/", "%2F").replace("\\", "%5C")
        name = f"{name},{escaped}"
    if len(name.encode()) > 200:
        digest = hashlib.sha1(name.encode()).hexdigest()[:12]
        name = name.encode()[:180].decode(errors="ignore") + "," + digest
    return name


def output_dir(run_dir, name: str, overrides: str = "") -> str:
    """Hydra's output dir for a run (the ``lsgan.run_dir`` resolver of conf/config.yaml's ``hydra.run.dir``):
    ``run_dir`` when the command line set it, so nothing is written outside it, else ``runs/<run_dir_name>``."""
    return str(run_dir) if run_dir not in (None, "") else f"runs/{run_dir_name(name, overrides)}"


def sweep_dir(run_dir, default: str) -> str:
    """Hydra's sweep dir (the ``lsgan.sweep_dir`` resolver of ``hydra.sweep.dir``): ``run_dir`` when the command line
    set it, so each job of ``-m ... run_dir=DIR`` trains in its own ``DIR/<hydra.sweep.subdir>``, else ``default``."""
    return str(run_dir) if run_dir not in (None, "") else str(default)


OmegaConf.register_new_resolver("lsgan.dir_name", run_dir_name, replace=True)
OmegaConf.register_new_resolver("lsgan.run_dir", output_dir, replace=True)
OmegaConf.register_new_resolver("lsgan.sweep_dir", sweep_dir, replace=True)

GROUPS = ("method", "dataset", "loss", "prior", "extractor", "model", "trainer", "logger", "metrics", "callbacks",
          "experiment", "hparams_search")
# Keys other frameworks use for what lsgan calls otherwise: named in the unknown-key message.
KEY_HINTS = {"trainer.max_steps": "trainer.steps", "trainer.max_epochs": "trainer.steps",
             "trainer.max_time": "trainer.max_minutes", "data.path_root": "data.root"}


def compose_config(overrides=()) -> DictConfig:
    """The composed config for ``overrides``, as the CLI would build it (tests, benchmarks, notebooks).
    A setting renamed when loss= and method.adv_loss were split (``loss=wgan_gp``, ``loss.gp_weight=``, ``method.g_loss=``) is a one-line
    ConfigError saying what to write instead."""
    check_renamed_overrides(list(overrides))
    return _compose(overrides)


def _compose(overrides=()) -> DictConfig:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def check_renamed_overrides(argv: List[str]) -> None:
    """``loss=<adversarial form>`` (hinge | ns | minimax | wgan_gp: now ``method.adv_loss``), ``loss.gp_weight=``
    (now ``method.gp_weight``) and coupled's ``method.g_loss=`` (now ``method.adv_loss``) fail in one line
    that says what to write instead (``lsgan.config.moved_loss_error`` / ``moved_key_error``).
    ``lsgan.config`` (it imports torch and Lightning: seconds) is imported only for an argument that may be
    one of these, so a mistyped choice or key is answered at once."""
    for arg in argv:
        if "=" not in arg or arg.startswith(("-", "~")):
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+")
        if key in ("loss.gp_weight", "method.g_loss"):
            from lsgan.config import moved_key_error

            error = moved_key_error(key, value)
            if error is not None:
                raise error
        if key.startswith("method."):
            _check_renamed_method_key(key, value, argv)
        if key != "loss":
            continue
        unknown = [v for v in value.split(",") if v not in group_choices("loss")]
        if not unknown:
            continue
        from lsgan.config import ADV_FORMS, moved_loss_error

        old = [v for v in unknown if v in ADV_FORMS]
        if old:
            from lsgan.methods import METHODS

            method = _method_of(argv)
            cls = METHODS.get(method)
            accepted = cls.LOSSES if cls is not None else group_choices("loss")
            raise moved_loss_error(old[0], method, accepted, cls.ADV_LOSSES if cls is not None else None)


def _check_renamed_method_key(key: str, value: str, argv: List[str]) -> None:
    """``method.<old name>=`` of an option that was renamed or removed (``lsgan.upgrade``): one line saying what to write."""
    from lsgan.upgrade import REMOVED_OPTIONS, renamed_option

    method = _method_of(argv)
    name, _, rest = key[len("method."):].partition(".")
    new = renamed_option(method, name)
    if new != name:
        raise ConfigError(f"{key}={value}: method={method} calls this option method.{new}{'.' + rest if rest else ''} now")
    if name == "z_dim" and name in REMOVED_OPTIONS.get(method, {}):
        raise ConfigError(f"{key}={value}: method={method}'s latent size is the prior's; write prior.dim={value}")
    if name in REMOVED_OPTIONS.get(method, {}):
        raise ConfigError(f"{key}={value}: method={method} no longer has this option (no paper defines it and no "
                          f"recipe used it; docs/{method}.md says what it did)")


def _method_of(argv: List[str]) -> str:
    """The method a command line trains (its first, in a sweep): method=, else its experiment's, else the default."""
    picked = [a.lstrip("+") for a in argv if a.lstrip("+").startswith(("method=", "experiment="))]
    picked = [a.split(",")[0] for a in picked]
    try:
        return str(_compose(picked).method.name)
    except Exception:  # an unknown choice is reported by the group check
        return next((a.split("=", 1)[1] for a in picked if a.startswith("method=")), "?")


def group_choices(group: str) -> List[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


_MISSING = object()
PATH_KEYS = ("resume", "run_dir", "data.root", "data.path")


def quote_path_override(arg: str) -> str:
    """``key=value`` with the value quoted for Hydra when key is a path key and value holds
    characters of Hydra's grammar (=, comma, brackets, spaces); other arguments unchanged."""
    key, sep, value = arg.partition("=")
    if not sep or key not in PATH_KEYS or value[:1] in ("'", '"') or not any(c in value for c in "=,[]{}() "):
        return arg
    return f"{key}='{value}'" if "'" not in value else f'{key}="{value}"'


def precheck_overrides(argv: List[str], check_keys: bool = False) -> None:
    """Unknown config-group choices (and, with ``check_keys``, unknown keys) fail in one line before Hydra
    prints its multi-line error."""
    check_renamed_overrides(argv)
    groups, keys = [], []
    for arg in argv:
        if "=" not in arg or arg.startswith(("-", "~", "hydra", "+hydra", "++hydra")):
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+")
        if key in GROUPS:
            accepted = group_choices(key)
            for v in value.split(","):
                if v not in accepted:
                    raise ConfigError(f"{key}={v} is not a known choice; accepted values: {', '.join(accepted)}")
            if key == "hparams_search":
                check_search_plugin(value)
            groups.append(f"{key}={value.split(',')[0]}")
        elif "/" not in key and not key.startswith("callbacks."):  # callbacks.<name>.*: free-form, from _target_
            keys.append(key)
    if check_keys and keys:  # unknown keys, with or without "+", fail in one line naming the node's keys
        # (lsgan.run's own CLI; the extract / train_evaluator CLIs add keys of their own)
        base = compose_config(groups)
        for key in keys:
            if OmegaConf.select(base, key, default=_MISSING) is _MISSING:
                parent = key.rpartition(".")[0]
                while parent and not isinstance(OmegaConf.select(base, parent, default=None), DictConfig):
                    parent = parent.rpartition(".")[0]  # the deepest node that exists
                node = OmegaConf.select(base, parent) if parent else base
                where = f"keys of {parent}" if parent else "top-level keys"
                known = ", ".join(str(k) for k in node)
                hint = f"; did you mean {KEY_HINTS[key]}?" if key in KEY_HINTS else ""
                raise ConfigError(f"{key} is not a config key{hint} ({where}: {known})")


def check_search_plugin(choice: str) -> None:
    """``hparams_search=`` needs Hydra's Optuna sweeper plugin (an optional extra): one line saying how to get it,
    before Hydra fails to find ``hydra/sweeper/optuna``."""
    import importlib.util

    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None:
        raise ConfigError(f"hparams_search={choice} needs Hydra's Optuna sweeper: pip install '.[search]' "
                          f"(or pip install hydra-optuna-sweeper)")


def run_name(cfg: DictConfig) -> str:
    return f"{cfg.method.name}-{cfg.data.name}-{cfg.loss.name}-{cfg.method.adv_loss}-s{cfg.seed}"
