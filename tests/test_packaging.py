"""A built wheel is a working install: every package, every config, the CLI entry points, from any directory."""
from __future__ import annotations

import importlib.util
import os
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SCRIPTS = ("lsgan-run", "lsgan-sample", "lsgan-evaluate", "lsgan-train-evaluator", "lsgan-extract")


def test_pyproject_lists_every_package():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "lsgan").rglob("__init__.py")}
    assert listed == found | {"lsgan.conf"}


def test_requires_python_is_what_the_pinned_packages_need():
    """requires-python's floor is the highest floor among the installed pins of constraints.txt."""
    import importlib.metadata as md

    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    def floor(spec: str):
        lows = [Version(s.version) for s in SpecifierSet(spec) if s.operator in (">=", ">")]
        return max(lows) if lows else None

    floors = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name, sep, pinned = line.split("#")[0].strip().partition("==")
        if not sep:
            continue
        try:
            meta = md.metadata(name)
        except md.PackageNotFoundError:
            continue
        if meta["Version"] == pinned and meta.get("Requires-Python") and floor(meta["Requires-Python"]):
            floors[name] = floor(meta["Requires-Python"])
    assert {"numpy", "scipy", "scikit-learn", "matplotlib", "pillow"} <= set(floors), floors
    ours = floor(PYPROJECT["project"]["requires-python"])
    assert ours == max(floors.values()), (ours, floors)
    assert sys.version_info[:2] >= tuple(ours.release[:2])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip wheel` builds from a copy of the checkout (setuptools builds in the source tree)."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools (the build backend) is not installed here and cannot be fetched offline")
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("lsgan", "conf"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path_factory.mktemp("dist")
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                          "--no-index", "-w", str(dist), str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return next(dist.glob("lsgan-*.whl"))


def test_the_wheel_carries_the_configs_and_entry_points(wheel, tmp_path):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
        z.extractall(tmp_path / "site")
    yamls = {str(p.relative_to(REPO / "conf")) for p in (REPO / "conf").rglob("*.yaml")}
    assert {f"lsgan/conf/{y}" for y in yamls} <= names
    for script in SCRIPTS:
        assert f"{script} = " in entry
    # installed (not editable), run from elsewhere: the configs are found inside the package
    code = ("import lsgan.run as r; cfg = r.compose_config(['experiment=clustergan_mnist']); "
            "print(r.CONF_DIR, cfg.method.name, cfg.data.name)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(tmp_path / "site" / "lsgan" / "conf"), "clustergan", "mnist"]


@pytest.mark.slow
def test_pip_install_then_every_command_works_from_another_directory(wheel, tmp_path):
    """`pip install` of the wheel (not editable) into a fresh venv whose dependencies are this environment's;
    from a folder outside the checkout: lsgan-run trains 2 iterations on the bundled digits into
    runs/cgan-digits (and a run with an override beside it, not inside), lsgan-train-evaluator and
    lsgan-extract fill a cache, lsgan-sample and lsgan-evaluate read the checkpoint, lsgan.runs finds
    both runs."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    paths = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib')); "
                            "print(sysconfig.get_path('scripts'))"], capture_output=True, text=True, check=True)
    purelib, scripts = map(Path, paths.stdout.split("\n")[:2])
    # the dependencies: this environment's site-packages as plain paths (so its .pth files, among them an
    # editable lsgan's finder, are not run)
    (purelib / "deps.pth").write_text("\n".join([*site.getsitepackages(), site.getusersitepackages()]) + "\n")
    out = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index",
                          str(wheel)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for script in SCRIPTS:
        assert (scripts / script).is_file(), script

    work, cache = tmp_path / "elsewhere", tmp_path / "cache"
    (work / "home").mkdir(parents=True)
    env = {"PATH": os.pathsep.join([str(scripts), "/usr/bin", "/bin"]), "HOME": str(work / "home"),
           "LSGAN_CACHE": str(cache), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.update({k: os.environ[k] for k in ("TMPDIR", "SYSTEMROOT") if k in os.environ})

    def start(*cmd):
        return subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait(procs: dict) -> dict:
        """{name: stdout} once every process ended well; none is left running."""
        try:
            outs = {k: p.communicate(timeout=300) for k, p in procs.items()}
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
                    p.wait()
        for k, p in procs.items():
            assert p.returncode == 0, f"{' '.join(p.args)}: {outs[k][1][-3000:]}"
        return {k: out for k, (out, _) in outs.items()}

    def run(*cmd) -> str:
        return wait({"": start(*cmd)})[""]

    where = run("python", "-c", "import lsgan, lsgan.run as r; print(lsgan.__file__); print(r.CONF_DIR)").split()
    assert [Path(p) for p in where] == [purelib / "lsgan" / "__init__.py", purelib / "lsgan" / "conf"]
    assert "method: cgan, clustergan" in run("lsgan-run", "--help")  # Hydra's help lists the config groups

    # independent commands at once (each is mostly the start-up of torch and Lightning)
    train = ("lsgan-run", "method=cgan", "trainer.steps=2", "trainer.progress_bar=false")  # keys left out of the name
    procs = {"train": start(*train),
             "evaluator": start("lsgan-train-evaluator", "dataset=digits", f"metrics.cache_dir={cache}",
                                "metrics.evaluator_epochs=1", "device=cpu"),
             "extract": start("lsgan-extract", "dataset=digits")}
    outs = wait(procs)
    ckpt = work / "runs" / "cgan-digits" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    assert list((cache / "evaluators").glob("digits_*.pt")) and list((cache / "features").glob("digits-train-*.npy"))
    assert "built" in outs["extract"]

    procs = {"seed": start(*train, "seed=1"),
             "sample": start("lsgan-sample", f"ckpt={ckpt}", "n=10", "out=samples", "device=cpu"),
             "evaluate": start("lsgan-evaluate", f"ckpt={ckpt}", "metrics=[cond_acc]", "n=20",
                               f"metrics.cache_dir={cache}", "out=eval", "device=cpu")}
    wait(procs)
    assert (work / "runs" / "cgan-digits,seed=1" / "checkpoints" / "last.ckpt").is_file()  # beside, not inside
    assert (work / "samples" / "samples.npz").is_file() and (work / "samples" / "samples.png").is_file()
    assert (work / "eval" / "metrics.json").is_file() and (work / "eval" / "report.md").is_file()

    from lsgan.runs import table  # in this process: one more start-up of torch would test nothing new

    rows = [(r["run"], r["method"], r["dataset"], r["iteration"]) for r in table([work / "runs"])]
    assert rows == [("cgan-digits", "cgan", "digits", "2"), ("cgan-digits,seed=1", "cgan", "digits", "2")]
    assert sorted(p.name for p in (work / "runs").iterdir()) == ["cgan-digits", "cgan-digits,seed=1"]
