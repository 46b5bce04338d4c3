"""Killed anywhere, a run resumes from its last checkpoint and ends bit-identical to an
uninterrupted one; a time budget stops cleanly and resume finishes the run."""

from __future__ import annotations

import json
import random
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import read_metrics, reasonlab

pytestmark = pytest.mark.slow

RECIPE = """
[recipe]
name = "relay"
seed = 3
[model]
preset = "tiny"
lora = false
[[stages]]
name = "sft"
kind = "sft"
data = { source = "arithmetic", options = { n = 64 } }
steps = 40
batch_size = 8
learning_rate = 3e-3
max_prompt_tokens = 96
max_completion_tokens = 64
checkpoint_every = 5
[[stages]]
name = "grpo"
kind = "grpo"
data = { source = "arithmetic", options = { n = 16 } }
steps = 4
learning_rate = 1e-3
max_prompt_tokens = 96
max_completion_tokens = 24
checkpoint_every = 1
rollout_log_every = 1
rewards = [{ name = "format_strict" }, { name = "answer_match" }]
[[stages]]
name = "eval"
kind = "eval"
data = { source = "arithmetic", split = "test", options = { n = 16 } }
max_prompt_tokens = 96
max_completion_tokens = 24
batch_size = 4
"""


def final_params(run_dir: Path) -> dict[str, np.ndarray]:
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as ckpt:
        tree = ckpt.restore((run_dir / "stages" / "grpo" / "final").absolute())
    import jax

    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def last_value(run_dir: Path, stage: str, key: str):
    values = [(r["step"], r[key]) for r in read_metrics(run_dir) if r["stage"] == stage and key in r]
    return max(values)[1]


def start(recipe: Path, runs: Path, *extra) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.Popen([sys.executable, "-m", "reasonlab", "run", str(recipe), "--no-progress", "--runs-dir",
                             str(runs), *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        assert proc.poll() is None, f"process ended early: {proc.stderr.read()[-2000:]}"
        time.sleep(0.2)
    raise AssertionError("timed out")


def metric_seen(runs: Path, stage: str, key: str, step: int):
    def check():
        dirs = list((runs / "relay").glob("*/metrics.jsonl")) if (runs / "relay").exists() else []
        if not dirs:
            return False
        for line in dirs[0].read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if r["stage"] == stage and key in r and r["step"] >= step:
                return True
        return False

    return check


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    path = tmp_path_factory.mktemp("recipe") / "relay.toml"
    path.write_text(RECIPE)
    return path


@pytest.fixture(scope="module")
def uninterrupted(recipe, tmp_path_factory):
    runs = tmp_path_factory.mktemp("a")
    result = reasonlab("run", recipe, "--no-progress", "--runs-dir", runs, env={"WANDB_MODE": "disabled"})
    assert result.returncode == 0, result.stderr[-3000:]
    return next((runs / "relay").iterdir())


def stage_status(run_dir: Path, stage: str) -> str | None:
    try:
        return json.loads((run_dir / "state.json").read_text())["stages"][stage]["status"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None


def resume_until(run_dir: Path, predicate) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "reasonlab", "resume", str(run_dir), "--no-progress"],
                            env={**os.environ, "WANDB_MODE": "disabled"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    wait_for(predicate, proc)
    proc.kill()
    proc.wait()


def test_sigkill_anywhere_then_resume_is_bit_identical(recipe, uninterrupted, tmp_path):
    # kill points drawn at random, reproducibly: KILL_SEED=N explores others
    draw = random.Random(int(os.environ.get("KILL_SEED", "0")))
    sft_step, grpo_step = draw.randint(2, 38), draw.randint(1, 3)
    runs = tmp_path / "runs"
    proc = start(recipe, runs)
    wait_for(metric_seen(runs, "sft", "train/loss", sft_step), proc)    # 1. mid-SFT
    proc.kill()
    proc.wait()
    run_dir = next((runs / "relay").iterdir())
    assert stage_status(run_dir, "sft") == "running"
    # 2. between stages: SFT done and checkpointed, GRPO not yet trained a step
    resume_until(run_dir, lambda: stage_status(run_dir, "sft") == "done")
    assert stage_status(run_dir, "grpo") in (None, "pending", "running")
    resume_until(run_dir, metric_seen(runs, "grpo", "train/actor/loss", grpo_step))  # 3. mid-GRPO
    resume_until(run_dir, lambda: stage_status(run_dir, "eval") == "running")  # 4. during eval

    final = reasonlab("resume", run_dir, "--no-progress", env={"WANDB_MODE": "disabled"})
    assert final.returncode == 0, final.stderr[-3000:]
    assert json.loads((run_dir / "state.json").read_text())["status"] == "done"
    expected, got = final_params(uninterrupted), final_params(run_dir)
    assert expected.keys() == got.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    assert last_value(run_dir, "sft", "train/loss") == last_value(uninterrupted, "sft", "train/loss")
    assert last_value(run_dir, "grpo", "train/actor/loss") == last_value(uninterrupted, "grpo", "train/actor/loss")
    summaries = [json.loads((d / "summary.json").read_text()) for d in (run_dir, uninterrupted)]
    assert summaries[0]["eval"] == summaries[1]["eval"]  # the same model evaluates the same
    assert summaries[0]["sft"] == summaries[1]["sft"]    # first_loss is step 1's, not the restored step's
    assert_same_records(run_dir, uninterrupted)
    # the rollout samples of redone steps are not appended twice: the same rows as the uninterrupted run
    rollouts = [[json.loads(line) for line in (d / "stages/grpo/rollouts.jsonl").read_text().splitlines()]
                for d in (run_dir, uninterrupted)]
    assert [(r["step"], r["completion"], r["total"]) for r in rollouts[0]] == \
        [(r["step"], r["completion"], r["total"]) for r in rollouts[1]]


def records_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same_records(run_dir: Path, uninterrupted: Path) -> None:
    """Every (stage, step, key) once, and the same set of them as the uninterrupted run, with the
    same training values."""
    def keyed(records):
        seen = {}
        for r in records:
            for key, value in r.items():
                if key not in ("stage", "step", "time"):
                    assert (r["stage"], r["step"], key) not in seen, f"duplicate record {(r['stage'], r['step'], key)}"
                    seen[(r["stage"], r["step"], key)] = value
        return seen

    got, expected = keyed(records_of(run_dir)), keyed(records_of(uninterrupted))
    timings = ("perf/", "seconds", "time", "tokens_per_second", "memory")
    assert {k for k in got if not any(t in k[2] for t in timings)} == \
        {k for k in expected if not any(t in k[2] for t in timings)}
    for k in expected:
        if k[2] in ("train/loss", "train/actor/loss", "reward/total/mean"):
            assert got[k] == expected[k], k


def test_time_budget_stops_cleanly_and_resume_finishes(recipe, uninterrupted, tmp_path):
    runs = tmp_path / "runs"
    # no compilation cache: a warm one lets the whole run finish inside the 14 s budget
    stopped = reasonlab("run", recipe, "--no-progress", "--runs-dir", runs, "--time-budget", "14s",
                        "recipe.compilation_cache=false", env={"WANDB_MODE": "disabled"})
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert "reasonlab resume" in stopped.stderr
    run_dir = next((runs / "relay").iterdir())
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "interrupted" and state["resumable"] is True and state["reason"] == "time budget"
    interrupted = [name for name, s in state["stages"].items() if s["status"] == "interrupted"]
    assert len(interrupted) == 1
    assert any((run_dir / "stages" / interrupted[0] / "checkpoints").rglob("_CHECKPOINT_METADATA"))

    done = reasonlab("resume", run_dir, "--no-progress", env={"WANDB_MODE": "disabled"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run_dir / "state.json").read_text())["status"] == "done"
    expected, got = final_params(uninterrupted), final_params(run_dir)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_sigterm_stops_with_a_checkpoint(recipe, tmp_path):
    runs = tmp_path / "runs"
    proc = start(recipe, runs)
    wait_for(metric_seen(runs, "sft", "train/loss", 3), proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    run_dir = next((runs / "relay").iterdir())
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "interrupted" and state["reason"] == "SIGTERM"
    assert state["stages"]["sft"]["status"] == "interrupted"


# an on_stage_start hook that asks the run to stop as the GRPO stage begins, before its first step
STOP_AT_GRPO = '''
import os
import signal

from reasonlab import hookimpl


@hookimpl
def on_stage_start(run, stage):
    if stage.name == "grpo":
        os.kill(os.getpid(), signal.SIGTERM)
'''


def test_a_stop_before_the_first_grpo_step_interrupts_cleanly(recipe, uninterrupted, tmp_path):
    """Tunix's RL learner takes its first batch with a bare next(): a stop that ends the batches
    before there is one must still be a clean, resumable interruption, not a StopIteration."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "stop_at_grpo.py").write_text(STOP_AT_GRPO)
    runs = tmp_path / "runs"
    stopped = reasonlab("--plugins-dir", plugins, "run", recipe, "--no-progress", "--runs-dir", runs,
                        env={"WANDB_MODE": "disabled"})
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr and "reasonlab resume" in stopped.stderr
    run_dir = next((runs / "relay").iterdir())
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "interrupted" and state["resumable"] is True
    assert state["stages"]["sft"]["status"] == "done" and state["stages"]["grpo"]["status"] == "interrupted"
    done = reasonlab("resume", run_dir, "--no-progress", env={"WANDB_MODE": "disabled"})
    assert done.returncode == 0, done.stderr[-3000:]
    expected, got = final_params(uninterrupted), final_params(run_dir)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
