"""A built wheel is a working install: every package, every config, the CLI entry points."""
from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile

from tests.conftest import REPO


def test_pyproject_lists_every_package():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "lsgan").rglob("__init__.py")}
    assert listed == found | {"lsgan.conf"}


def test_the_wheel_carries_the_configs_and_entry_points(tmp_path):
    import shutil

    had_build = (REPO / "build").exists()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(REPO)], check=True, capture_output=True, timeout=300)
    if not had_build:
        shutil.rmtree(REPO / "build", ignore_errors=True)  # setuptools' in-tree build folder
    wheel = next((tmp_path / "dist").glob("lsgan-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
        z.extractall(tmp_path / "site")
    yamls = {str(p.relative_to(REPO / "conf")) for p in (REPO / "conf").rglob("*.yaml")}
    assert {f"lsgan/conf/{y}" for y in yamls} <= names
    for script in ("lsgan-run", "lsgan-sample", "lsgan-evaluate", "lsgan-train-evaluator", "lsgan-extract"):
        assert f"{script} = " in entry
    # installed (not editable), run from elsewhere: the configs are found inside the package
    code = ("import lsgan.run as r; cfg = r.compose_config(['experiment=clustergan_mnist']); "
            "print(r.CONF_DIR, cfg.method.name, cfg.data.size)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(tmp_path / "site" / "lsgan" / "conf"), "clustergan", "28"]
