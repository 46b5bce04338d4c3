from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from reasonlab import xla_defaults

# Property tests draw the same examples on every run and machine (CI must not find a new
# example by chance); widen the search by hand with HYPOTHESIS_PROFILE=explore.
settings.register_profile("reasonlab", derandomize=True, database=None)
settings.register_profile("explore", max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reasonlab"))

xla_defaults.apply()  # in-process tests compile as the CLI does (before any test imports JAX)

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "recipes" / "quickstart.toml"


@pytest.fixture(autouse=True)
def _fresh_plugins(monkeypatch):
    """Each test sees a freshly loaded plugin system (no leftovers from --plugins-dir)."""
    from reasonlab.plugins import reset_plugins

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("REASONLAB_LOAD_PLUGINS", raising=False)
    reset_plugins()
    yield
    reset_plugins()


def tiny_recipe(name: str, stages: str, seed: int = 1) -> str:
    """A recipe on the tiny random model (full fine-tuning) with these ``[[stages]]`` tables."""
    return f'[recipe]\nname = "{name}"\nseed = {seed}\n\n[model]\npreset = "tiny"\nlora = false\n\n{stages.strip()}\n'


TINY_SFT = """
[[stages]]
name = "sft"
kind = "sft"
data = { source = "arithmetic", options = { n = 16 } }
steps = 2
batch_size = 4
max_prompt_tokens = 96
max_completion_tokens = 64
"""


def run_tiny_grpo(directory: Path, log=lambda metrics, step: None, **config):
    """A GRPO stage in this process on the tiny model with LoRA rank 4 (3 steps of 2 prompts,
    format_strict; ``config`` overrides GRPOConfig's fields): (the bundle it started from, its result)."""
    from reasonlab.mesh import stage_meshes
    from reasonlab.modeling import apply_lora
    from reasonlab.plugins import get_plugins
    from reasonlab.progress import RunProgress
    from reasonlab.schema import LoraSpec, MeshSpec, ModelSpec
    from reasonlab.stage import StageContext
    from reasonlab_plugins.models_tiny import load
    from reasonlab_plugins.stage_grpo import GRPOConfig, GRPOStage

    bundle = apply_lora(load(ModelSpec(preset="tiny")), LoraSpec(rank=4, alpha=8.0), seed=0)
    config = GRPOConfig(**{"data": {"source": "arithmetic", "options": {"n": 16}}, "steps": 3, "batch_size": 2,
                           "rewards": [{"name": "format_strict"}], "max_prompt_tokens": 64,
                           "max_completion_tokens": 16, **config})
    ctx = StageContext(name="grpo", kind="grpo", config=config, recipe=None, model=bundle, dir=directory, seed=0,
                       plugins=get_plugins(), log=log, progress=RunProgress(False),
                       meshes=stage_meshes(MeshSpec(), None, "stages.grpo"))
    with ctx.meshes.main:
        return bundle, GRPOStage().run(ctx)


def reasonlab(*args, cwd=None, env=None, timeout=600) -> subprocess.CompletedProcess:
    """Run the installed CLI in a subprocess (as a user would)."""
    full_env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "reasonlab", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def run_dir_of(runs: Path, recipe: str) -> Path:
    dirs = sorted((runs / recipe).iterdir())
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory):
    """One tiny-profile quickstart run shared by the end-to-end assertions."""
    runs = tmp_path_factory.mktemp("runs")
    result = reasonlab("run", QUICKSTART, "--profile", "tiny", "--no-progress", "--runs-dir", runs)
    assert result.returncode == 0, result.stderr[-4000:]
    return run_dir_of(runs, "quickstart"), result
