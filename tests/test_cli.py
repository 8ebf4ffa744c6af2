"""lsgan.cli: the command lines of lsgan.sample / lsgan.evaluate / lsgan.train_evaluator read
Hydra's override grammar (values, lists, quoting, +/~, interpolation, -m sweeps) and --help.
End-to-end runs on checkpoints are in tests/test_eval_cli.py."""
from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from lsgan.cli import CLIError, expand, parse_args
from lsgan.evaluate import COMMAND as EVALUATE
from lsgan.loading import apply_overrides
from lsgan.run import compose_config
from lsgan.sample import COMMAND as SAMPLE
from lsgan.train_evaluator import COMMAND as TRAIN_EVALUATOR
from tests.conftest import REPO


@pytest.mark.parametrize("module,command", [("lsgan.sample", SAMPLE), ("lsgan.evaluate", EVALUATE),
                                            ("lsgan.train_evaluator", TRAIN_EVALUATOR)])
def test_help_lists_the_keys_and_exits_0(module, command):
    proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-2000:]
    out = proc.stdout
    assert out.startswith(f"usage: python -m {module} ")
    for key in command.keys:
        assert f"\n  {key}=" in out, key
    assert "Any other key=value overrides the run's config" in out
    assert "-m, --multirun" in out and "Hydra's override grammar" in out


def test_values_follow_hydras_grammar():
    own, overrides = parse_args(["ckpt=runs/cgan-mnist/checkpoints/last.ckpt", "metrics=[cond_acc,cluster]",
                                 "n=1000", "html=true", "out='eval, a=b'", "+data.note=hello", "~data.attr",
                                 "metrics.ref_n=150"], EVALUATE)
    assert own == {"ckpt": "runs/cgan-mnist/checkpoints/last.ckpt", "metrics": ["cond_acc", "cluster"], "n": 1000,
                   "html": True, "out": "eval, a=b", "device": "auto", "report": True, "log_run": True}
    assert overrides == ["+data.note=hello", "~data.attr=null", "metrics.ref_n=150"]
    # a quoted list is a string, as in Hydra; null is None; key= leaves a key unset
    own, _ = parse_args(["ckpt=x", "metrics='[a,b]'", "n=null", "out="], EVALUATE)
    assert own["metrics"] == "[a,b]" and own["n"] is None and own["out"] is None
    # own values interpolate each other and the environment
    own, _ = parse_args(["ckpt=x", "n=5", "out=eval/n${n}"], EVALUATE)
    assert own["out"] == "eval/n5"


def test_path_keys_take_run_dirs_literally():
    """lsgan.run's run dirs hold '=' and ',' (runs/<m>-<d>/seed=1,...): not override syntax, so a path
    key's value that does not parse is taken as typed, as lsgan.run does for its path keys."""
    ckpt = "runs/cgan-mnist/seed=1,trainer.steps=500/checkpoints/last.ckpt"
    own, overrides = parse_args([f"ckpt={ckpt}", "data.root=~/data", "metrics.cache_dir=/c/a=1,b=2"], SAMPLE)
    assert own["ckpt"] == ckpt
    assert overrides == ["data.root='~/data'", "metrics.cache_dir='/c/a=1,b=2'"]
    jobs = expand([f"ckpt='{ckpt}','{ckpt.replace('seed=1', 'seed=2')}'"], SAMPLE, multirun=True)
    assert [j.own["ckpt"] for j in jobs] == [ckpt, ckpt.replace("seed=1", "seed=2")]


@pytest.mark.parametrize("argv,message", [
    (["ckpt=x", "n=[1,2"], "n: cannot parse 'n=[1,2' with Hydra's override grammar"),
    (["ckpt=x", "bogus=1"], "bogus: unknown argument; accepted keys: ckpt, metrics, out, n, device, html, report, log_run"),
    (["ckpt=x", "metric"], "'metric': arguments are key=value; accepted keys: ckpt"),
    (["ckpt=x", "+n=3"], "+n=3: n is an argument of lsgan.evaluate, not a config key: write n=VALUE"),
    (["ckpt=x", "--cfg"], "--cfg: unknown option; options: -h/--help, -m/--multirun"),
    (["ckpt=x", "hydra.run.dir=y"], "hydra.run.dir=y: hydra.* keys do not apply"),
    (["ckpt=a.ckpt,b.ckpt"], "ckpt=a.ckpt,b.ckpt: a comma list (or range/choice) is a sweep; add -m"),
    (["ckpt=x", "out=${nope}"], "out=${nope}: cannot resolve the interpolation"),
])
def test_mistakes_are_one_line_errors(argv, message):
    with pytest.raises(CLIError) as info:
        parse_args(argv, EVALUATE)
    assert str(info.value).startswith(message) and "\n" not in str(info.value), str(info.value)


def test_multirun_expands_sweeps_in_order():
    jobs = expand(["ckpt=a.ckpt,b.ckpt", "n=range(10,30,10)", "metrics=[cond_acc]", "data.root=d1,d2"], EVALUATE,
                  multirun=True)
    assert [(j.own["ckpt"], j.own["n"], j.overrides) for j in jobs] == [
        (c, n, [f"data.root={d}"]) for c in ("a.ckpt", "b.ckpt") for n in (10, 20) for d in ("d1", "d2")]
    assert all(j.own["metrics"] == ["cond_acc"] for j in jobs)
    assert jobs[0].args == ["ckpt=a.ckpt", "n=10", "metrics=[cond_acc]", "data.root=d1"]
    # train_evaluator sweeps config groups too (composed per job as lsgan.run composes them)
    jobs = expand(["dataset=mnist,digits", "force=true"], TRAIN_EVALUATOR, multirun=True)
    assert [j.overrides for j in jobs] == [["dataset=mnist"], ["dataset=digits"]]
    with pytest.raises(CLIError, match="only comma lists, range"):
        expand(["ckpt=x", "n=interval(2,3)"], EVALUATE, multirun=True)


def test_checkpoint_config_overrides_apply_as_hydra_does():
    cfg = compose_config(["method=cgan"])
    out = apply_overrides(cfg, ["+data.note=hello", "++data.size=28", "~data.attr", "data.classes=[3,5]",
                                "data.root=/runs/a=1,b=2", "metrics.cache_dir='x,y'"])
    assert out.data.note == "hello" and out.data.size == 28 and "attr" not in out.data
    assert list(out.data.classes) == [3, 5] and out.data.root == "/runs/a=1,b=2" and out.metrics.cache_dir == "x,y"
    assert cfg.data.get("note") is None and "attr" in cfg.data  # the input is not modified
    # a key a checkpoint predates (the current defaults know it) is set without +
    old = OmegaConf.create(OmegaConf.to_container(cfg))
    del old.metrics["ref_n"]
    assert apply_overrides(old, ["metrics.ref_n=7"]).metrics.ref_n == 7
    for bad, message in [("data.rooot=x", "data.rooot is not a key of the checkpoint's config (keys of data: name, "),
                         ("+data.root=x", "+data.root=x: data.root is already in the checkpoint's config"),
                         ("~data.nothing", "~data.nothing: data.nothing is not in the checkpoint's config"),
                         ("dataset=mnist", "dataset=mnist: config groups cannot be changed"),
                         ("data.size=28,32", "data.size=28,32: a comma list (or range/choice) is a sweep; add -m")]:
        with pytest.raises(CLIError) as info:
            apply_overrides(cfg, [bad])
        assert str(info.value).startswith(message) and "\n" not in str(info.value), str(info.value)
    assert "+data.rooot=x adds it" in str(pytest.raises(CLIError, apply_overrides, cfg, ["data.rooot=x"]).value)


def test_malformed_override_exits_2_in_one_line():
    proc = subprocess.run([sys.executable, "-m", "lsgan.evaluate", "ckpt=x.ckpt", "metrics=[cond_acc"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: metrics: cannot parse 'metrics=[cond_acc'"), proc.stderr


def documented_commands():
    """(file, module, argv) of every ``python -m lsgan.sample|evaluate|train_evaluator ...`` in the README,
    docs/, experiments/*/README.md and conf/experiment/ headers (``\\``-continued lines joined; the
    arguments end at the first word that is not key=value or -m: prose after a command)."""
    import re
    import shlex

    files = [REPO / "README.md", *sorted(REPO.glob("docs/*.md")), *sorted(REPO.glob("experiments/*/README.md")),
             *sorted(REPO.glob("conf/experiment/*.yaml"))]
    for path in files:
        text = re.sub(r"\\\n\s*#?\s*", " ", path.read_text())
        for m in re.finditer(r"python -m (lsgan\.(?:sample|evaluate|train_evaluator))\b([^`\n|#]*)", text):
            argv = []
            for arg in shlex.split(m.group(2)):
                if "=" not in arg and arg != "-m":
                    break
                argv.append(arg.rstrip("),;"))
            if argv:  # not a mention in prose ("`python -m lsgan.evaluate` rebuilds ...")
                yield path.name, m.group(1), argv


def test_every_documented_command_still_parses():
    """The commands the docs give keep working under Hydra's grammar: own keys parse and the config
    overrides apply (sample / evaluate: to a saved-config stand-in; train_evaluator: composed)."""
    from lsgan.run import precheck_overrides

    commands = {"lsgan.sample": SAMPLE, "lsgan.evaluate": EVALUATE, "lsgan.train_evaluator": TRAIN_EVALUATOR}
    saved = compose_config(["method=cgan"])
    seen = 0
    for where, module, argv in documented_commands():
        jobs = expand([a for a in argv if a != "-m"], commands[module], multirun="-m" in argv)
        for job in jobs:
            if module == "lsgan.train_evaluator":
                precheck_overrides(job.overrides)
                compose_config(job.overrides)
            else:
                assert job.own["ckpt"], (where, argv)
                apply_overrides(saved, job.overrides)
        seen += 1
    assert seen >= 30  # README, docs/evaluation.md, the method docs, experiment READMEs


def test_run_help_describes_the_app_its_groups_and_examples():
    proc = subprocess.run([sys.executable, "-m", "lsgan.run", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-2000:]
    out = proc.stdout
    assert out.startswith("usage: python -m lsgan.run ") and "powered by Hydra" not in out
    assert "experiment: " in out and "method: cgan, clustergan, coupled, nemgan, slcgan, sngan" in out
    examples = [line.strip() for line in out.splitlines() if "python -m lsgan.run " in line and "usage" not in line]
    assert len(examples) >= 5
    for line in examples:  # every example composes
        args = [a for a in line.split("#")[0].split()[3:] if a != "-m" and "=" in a and not a.startswith("OMP_")]
        compose_config([a.split(",")[0] if a.startswith("seed=") else a for a in args])
    assert len(out.splitlines()) < 80  # a page, not the whole config
