"""Third-party plugins as real pip packages: the example package and the scaffold."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import QUICKSTART, REPO, read_metrics, reasonlab, run_dir_of

pytestmark = pytest.mark.slow
EXAMPLE = REPO / "examples" / "reasonlab-plugin-example"


def pip(*args):
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                             *map(str, args)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def uninstall(name):
    """Leave the environment as we found it: this pytest process cannot import a package
    installed after it started (the new .pth is never read), yet would see its entry point."""
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", name], capture_output=True)


def test_example_package_installs_and_its_reward_and_loss_run(tmp_path):
    pip("-e", EXAMPLE)
    try:
        check_example(tmp_path)
    finally:
        uninstall("reasonlab-plugin-example")


def check_example(tmp_path):
    listed = {r["name"]: r for r in json.loads(reasonlab("plugins", "--json").stdout)}
    assert listed["example"]["distribution"] == "reasonlab-plugin-example 0.1.0"
    assert listed["example"]["registers"] == {"rewards": ["brevity"], "losses": ["label_smoothed_ce"]}

    own_tests = subprocess.run([sys.executable, "-m", "pytest", "-q", str(EXAMPLE / "tests")], capture_output=True, text=True)
    assert own_tests.returncode == 0, own_tests.stdout[-2000:]

    rewards = '[{ name = "format_strict" }, { name = "brevity", weight = 0.5 }]'
    result = reasonlab("run", QUICKSTART, "--profile", "tiny", "--no-progress", "--runs-dir", tmp_path,
                       "stages.sft.loss=label_smoothed_ce", "stages.sft.steps=20", "stages.grpo.steps=2",
                       f"stages.grpo.rewards={rewards}", env={"WANDB_MODE": "disabled"})
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(run_dir_of(tmp_path, "quickstart"))
    assert any("reward/brevity/mean" in r for r in metrics)
    sft_losses = [r["train/loss"] for r in metrics if r["stage"] == "sft" and "train/loss" in r]
    assert len(sft_losses) == 20 and sft_losses[-1] < sft_losses[0]

    # REASONLAB_LOAD_PLUGINS leaves it out; the recipe then names an unknown reward
    hidden = reasonlab("plugins", "--json", env={"REASONLAB_LOAD_PLUGINS": ""})
    assert "example" not in {r["name"] for r in json.loads(hidden.stdout)}


def test_scaffold_installs_and_passes_its_own_tests(tmp_path):
    created = reasonlab("plugins", "new", "tone-check", "--dir", tmp_path)
    assert created.returncode == 0, created.stderr
    package = tmp_path / "reasonlab-tone-check"
    pip("-e", package)
    try:
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", str(package / "tests")], capture_output=True, text=True)
        assert tests.returncode == 0, tests.stdout[-2000:]
        listed = {r["name"]: r for r in json.loads(reasonlab("plugins", "--json").stdout)}
        assert listed["reasonlab_tone_check"]["registers"] == {"rewards": ["tone_check"]}
    finally:
        uninstall("reasonlab-tone-check")
    again = reasonlab("plugins", "new", "tone-check", "--dir", tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
