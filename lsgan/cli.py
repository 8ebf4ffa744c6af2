"""The command lines of ``lsgan.sample``, ``lsgan.evaluate`` and ``lsgan.train_evaluator``.

They are not Hydra apps (sample and evaluate read a checkpoint's saved config; none of them writes
a Hydra output directory), but they read their arguments with Hydra's own override grammar
(``hydra.core.override_parser``), so an argument means what it means to ``python -m lsgan.run``:

- ``key=value`` with Hydra's values: ints, floats, ``true``/``false``, ``null``, ``[a,b]`` lists,
  ``{a: 1}`` dicts, ``'...'`` / ``"..."`` quoted strings (literal: commas, brackets, ``=``), ``\\``
  escapes and ``${...}`` interpolations;
- the command's own keys (``ckpt=``, ``n=``, ``out=`` ...; ``--help`` lists them with their defaults)
  set its arguments. ``key=`` (empty) leaves a key unset. Own values may interpolate each other or
  the environment (``out=eval/n${n}``, ``out=${oc.env:HOME}/eval``);
- any other argument overrides the run's config: ``key=value`` sets, ``+key=value`` adds,
  ``++key=value`` adds or sets, ``~key`` deletes (sample / evaluate: the checkpoint's saved config,
  see ``lsgan.loading.apply_overrides``; train_evaluator: the config composed from ``conf/`` as
  ``lsgan.run`` composes it, groups such as ``dataset=`` included);
- a path key (``ckpt``, ``out``, ``data.root``, ``metrics.cache_dir`` ...) whose value is not valid in
  the grammar is taken literally, as ``lsgan.run`` does for its path keys: run directories such as
  ``runs/cgan-mnist/seed=1,trainer.steps=500/...`` and ``~/...`` work as typed. Inside a ``-m``
  comma list, quote each such path: ``ckpt='runs/a/seed=1,x=2/c.ckpt','runs/b/seed=2,x=2/c.ckpt'``;
- ``-m`` / ``--multirun``: comma lists and ``range()`` / ``choice()`` / ``sort()`` / ``shuffle()``
  sweeps, of own keys and config overrides alike, are expanded by Hydra's basic sweeper into one
  job per combination (first argument slowest), run one after another in this process; the first
  failing job stops the sweep. Without ``-m`` a sweep is an error that says to add it.

Not supported: Hydra's other flags (``--cfg``, ``-cn``, ``--info`` ...), ``hydra.*`` keys,
launchers (jobs run in sequence, here), ``interval()`` / ``glob()`` sweeps, and an output folder
per job: each job writes where its own keys say, so a sweep gives distinct ``out=`` values
(``out=eval/n${n}``) or leaves the default.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from lsgan.errors import CLIError, ConfigError, NoSpaceError

HELP_FLAGS = ("-h", "--help")
MULTIRUN_FLAGS = ("-m", "--multirun")
# Config keys holding paths (besides a command's own path keys): a value that is not valid override
# syntax is taken literally. lsgan.run.PATH_KEYS plus the metric and feature caches' paths.
CONFIG_PATH_KEYS = ("resume", "run_dir", "data.root", "data.path", "metrics.cache_dir", "metrics.evaluator",
                    "metrics.inception_weights", "extractor.weights", "extractor.cache_dir")


@dataclass(frozen=True)
class Key:
    """One of a command's own keys: its default, what it means, and whether it holds a path."""

    default: Any
    help: str
    path: bool = False
    shown: Optional[str] = None  # what --help shows instead of the default (ckpt=PATH)


@dataclass(frozen=True)
class Command:
    """A command line: its own keys and what every other ``key=value`` overrides."""

    prog: str                       # "lsgan.evaluate"
    summary: str                    # one paragraph for --help
    keys: Mapping[str, Key]
    overrides: str                  # the config other key=value override, e.g. "the checkpoint's saved config"
    override_examples: str          # e.g. "data.root=DIR metrics.cache_dir=DIR"
    examples: Sequence[str] = ()
    dotted_overrides: bool = True   # other keys must be dotted config paths (data.root=...), not bare names

    def defaults(self) -> Dict[str, Any]:
        return {k: v.default for k, v in self.keys.items()}

    def literal_keys(self) -> Tuple[str, ...]:
        return tuple(k for k, v in self.keys.items() if v.path) + CONFIG_PATH_KEYS

    def accepted(self) -> str:
        return f"accepted keys: {', '.join(self.keys)}" + (
            " or dotted config keys (data.root=..., metrics.n_samples=...)" if self.dotted_overrides
            else " or config keys (dataset=..., data.root=...)")

    def usage(self) -> str:
        import textwrap

        required = [f"{k}={v.shown} " for k, v in self.keys.items() if v.help.startswith("required")]
        head = f"usage: python -m {self.prog} [-h] [-m] " + "".join(required) + "[key=value ...]"
        rows = [(f"{k}={v.shown or format_value(v.default)}", v.help) for k, v in self.keys.items()]
        width = max(len(r[0]) for r in rows) + 4
        lines = [head, "", *textwrap.wrap(self.summary, 100), "", "keys (shown with their defaults):"]
        for left, right in rows:
            lines += textwrap.wrap(right, 100, initial_indent=f"  {left:<{width - 2}}", subsequent_indent=" " * width)
        lines += ["", *textwrap.wrap(f"Any other key=value overrides the run's config ({self.overrides}), e.g. "
                                     f"{self.override_examples}; +key=value adds a key, ++key=value adds or sets "
                                     "one, ~key deletes one.", 100),
                  *textwrap.wrap("Arguments use Hydra's override grammar, as in python -m lsgan.run: [a,b] is a "
                                 "list, null is None, 'quoted' values are literal strings, ${...} interpolates "
                                 "(own keys: out=eval/n${n}, ${oc.env:HOME}).", 100),
                  "",
                  "options:",
                  "  -h, --help      show this text and exit",
                  "  -m, --multirun  one job per combination of comma lists / range() / choice() values,",
                  "                  run in turn (e.g. ckpt=A,B n=100,1000: four jobs); without -m a comma",
                  "                  list is an error"]
        if self.examples:
            lines += ["", "examples:"] + [f"  {e}" for e in self.examples]
        return "\n".join(lines)


def format_value(value) -> str:
    """A default as it would be typed on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


# --------------------------------------------------------------------------- parsing
def _parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def quote(arg: str) -> str:
    """``key=value`` with the value in quotes, so Hydra's grammar reads it literally."""
    key, _, value = arg.partition("=")
    return f"{key}='{value}'" if "'" not in value else f'{key}="{value}"'


def parse_override(arg: str, literal_keys: Sequence[str] = CONFIG_PATH_KEYS, accepted: str = ""):
    """Hydra's ``Override`` for one argument; a path key's value that is not valid syntax is taken
    literally. A malformed argument is a one-line CLIError naming its key."""
    from hydra.errors import HydraException

    parser = _parser()
    try:
        return parser.parse_override(arg)
    except HydraException as exc:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") in literal_keys and value[:1] not in ("'", '"'):
            try:
                return parser.parse_override(quote(arg))
            except HydraException:
                pass  # a value holding both quote characters: report the original error
        reason = " ".join(str(exc).split())
        if not sep and not arg.startswith("~"):
            raise CLIError(f"{arg!r}: arguments are key=value" + (f"; {accepted}" if accepted else "")) from None
        raise CLIError(f"{key.lstrip('+~') or arg}: cannot parse {arg!r} with Hydra's override grammar ({reason}); "
                       f"quote a value holding special characters: {key}='...'") from None


def sweep_error(override) -> CLIError:
    line = override.input_line
    key = override.get_key_element()
    return CLIError(f"{line}: a comma list (or range/choice) is a sweep; add -m to run one job per value; "
                    f"for a list value write {key}=[a,b], for a literal string quote it: {key}='a,b'")


@dataclass
class Job:
    """One job of a command line: its own keys (defaults filled in), its config overrides (Hydra
    override strings) and its arguments as Hydra's sweeper wrote them."""

    own: Dict[str, Any]
    overrides: List[str]
    args: List[str]


def expand(argv: Sequence[str], command: Command, multirun: bool = False) -> List[Job]:
    """The jobs of ``argv`` (flags removed). Without ``multirun`` a sweep is an error; with it
    Hydra's basic sweeper expands the sweeps into one job per combination."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.errors import HydraException

    parsed = []
    for arg in argv:
        if arg.startswith("-"):  # no override starts with "-"
            raise CLIError(f"{arg}: unknown option; options: -h/--help, -m/--multirun "
                           f"(Hydra's other flags do not apply to python -m {command.prog})")
        o = parse_override(arg, command.literal_keys(), command.accepted())
        key = o.key_or_group
        if key in command.keys:
            if o.type.name != "CHANGE" or o.package is not None:
                raise CLIError(f"{arg}: {key} is an argument of {command.prog}, not a config key: write {key}=VALUE")
        elif key.startswith("hydra.") or key == "hydra":
            raise CLIError(f"{arg}: hydra.* keys do not apply to python -m {command.prog} (it is not a Hydra app)")
        elif command.dotted_overrides and "." not in key:
            raise CLIError(f"{key}: unknown argument; {command.accepted()}")
        if o.is_sweep_override() and not o.is_discrete_sweep():
            raise CLIError(f"{arg}: only comma lists, range(), choice(), sort() and shuffle() sweep here")
        if o.is_sweep_override() and not multirun:
            raise sweep_error(o)
        parsed.append(o)
    try:
        jobs = BasicSweeper.split_arguments(parsed, None)[0]
    except HydraException as exc:
        raise CLIError(f"-m: {' '.join(str(exc).split())}; sweeps accepted: a,b,c range() choice() sort() shuffle()") from None
    return [_job(list(job), command) for job in jobs]


def _job(job: Sequence[str], command: Command) -> Job:
    own, overrides = command.defaults(), []
    given = set()
    for arg in job:  # Hydra's canonical strings: they parse as before
        o = parse_override(arg, command.literal_keys())
        if o.key_or_group in command.keys:
            value = o.value()
            own[o.key_or_group] = None if value == "" else value
            given.add(o.key_or_group)
        else:
            overrides.append(arg)
    return Job(resolve_own(own, given), overrides, list(job))


def resolve_own(own: Dict[str, Any], given) -> Dict[str, Any]:
    """Own values with their ``${...}`` interpolations resolved (against the own keys and OmegaConf's
    resolvers, e.g. ``${oc.env:HOME}``)."""
    if not any("${" in str(own[k]) for k in given):
        return own
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    node = OmegaConf.create(own)
    out = dict(own)
    for k in (k for k in given if "${" in str(own[k])):
        try:
            value = node[k]
            out[k] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        except OmegaConfBaseException as exc:
            msg = " ".join(str(exc).split("\n")[0].split())
            raise CLIError(f"{k}={own[k]}: cannot resolve the interpolation ({msg}); own keys: "
                           f"{', '.join(own)}, or ${{oc.env:VAR}}") from None
    return out


def parse_args(argv: Sequence[str], command: Command) -> Tuple[Dict[str, Any], List[str]]:
    """One job's (own keys, config overrides) from ``argv`` (no flags; a sweep is an error)."""
    job = expand(argv, command, multirun=False)[0]
    return job.own, job.overrides


# --------------------------------------------------------------------------- running
def run(command: Command, job: Callable[[Dict[str, Any], List[str]], Any], argv: Optional[Sequence[str]] = None):
    """Parse ``argv`` (default ``sys.argv[1:]``) and run ``job(own, overrides)``.

    ``--help`` prints the usage and returns None; ``-m`` runs every job of the sweep in turn and
    returns their results as a list; otherwise the single job's result.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in HELP_FLAGS for a in argv):
        print(command.usage(), flush=True)
        return None
    multirun = any(a in MULTIRUN_FLAGS for a in argv)
    jobs = expand([a for a in argv if a not in MULTIRUN_FLAGS], command, multirun)
    if not multirun:
        return job(jobs[0].own, jobs[0].overrides)
    results = []
    for i, j in enumerate(jobs):
        print(f"[lsgan] job {i + 1}/{len(jobs)}: {' '.join(j.args)}", flush=True)
        results.append(job(j.own, j.overrides))
    return results


def check_bool(own: Dict[str, Any], *keys: str) -> None:
    for k in keys:
        if not isinstance(own[k], bool):
            raise CLIError(f"{k}={format_value(own[k])}: accepted values: true, false")


def check_int(own: Dict[str, Any], key: str, minimum: Optional[int] = None, optional: bool = False) -> None:
    v = own[key]
    if optional and v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int) or minimum is not None and v < minimum:
        raise CLIError(f"{key}={format_value(v)}: must be an integer" + (f" >= {minimum}" if minimum is not None else "")
                       + (" (or null)" if optional else ""))


def run_cli(main) -> None:
    """Run a CLI's ``main()``; a user mistake prints one ``error: ...`` line and exits 2, a full disk
    one line (the file, the space needed and free) and exits 1."""
    from hydra.errors import HydraException

    try:
        main()
    except (CLIError, ConfigError, FileNotFoundError, HydraException) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        from lsgan.io import is_no_space, no_space_error

        if not is_no_space(exc):
            raise
        if not isinstance(exc, NoSpaceError):  # a writer other than lsgan.io's: its file, if it says
            exc = no_space_error(exc, exc.filename)
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(1)


__all__ = ["CLIError", "Command", "Job", "Key", "check_bool", "check_int", "expand", "format_value", "parse_args",
           "parse_override", "run", "run_cli"]
