"""A user who installs the package (not the checkout) has the recipes and can run one.

The wheel is built from the checkout and installed into a fresh virtualenv in a temporary
folder; every command below runs from outside the checkout, with that venv's interpreter.
The venv borrows its *dependencies* from the test environment (a path line in a .pth file:
the same pinned set, without downloading 2 GB again) but not reasonlab itself: the test
proves that the installed ``reasonlab`` is the wheel's copy, never the checkout's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]


@pytest.mark.slow
def test_pip_install_outside_the_checkout_lists_copies_and_runs_the_recipes(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                            str(REPO)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("reasonlab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.split("/")[-1] for n in names if n.startswith("reasonlab_recipes/") and n.endswith(".toml"))
    assert shipped == sorted(p.name for p in (REPO / "recipes").glob("*.toml")) and len(shipped) == 8

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                                str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(WANDB_MODE="offline", PYTHONUNBUFFERED="1")

    def reasonlab(*args, timeout=600):
        return subprocess.run([python, "-m", "reasonlab", *map(str, args)], cwd=work, env=env,
                              capture_output=True, text=True, timeout=timeout)

    where = subprocess.run([python, "-c", "import reasonlab, reasonlab_plugins, reasonlab_recipes as r; "
                            "print(reasonlab.__file__); print(reasonlab_plugins.__file__); print(*r.__path__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where  # the wheel's copy, not the checkout's

    listed = reasonlab("recipes")
    assert listed.returncode == 0, listed.stderr
    for recipe in shipped:
        assert recipe.removesuffix(".toml") in listed.stdout
    copied = reasonlab("recipes", "cp", "quickstart")
    assert copied.returncode == 0, copied.stderr
    assert (work / "quickstart.toml").read_text() == (REPO / "recipes" / "quickstart.toml").read_text()
    ran = reasonlab("run", "quickstart.toml", "--profile", "tiny", "--no-progress", "--runs-dir", work / "runs")
    assert ran.returncode == 0, ran.stderr[-3000:]
    [run_dir] = (work / "runs" / "quickstart").iterdir()
    assert '"status": "done"' in (run_dir / "state.json").read_text()
