"""The optimiser keys mean one thing in every training stage (reasonlab.optim), hand-computed;
GRPO's μ (num_iterations) draws steps/μ batches of rollouts."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
from conftest import reasonlab, run_dir_of, tiny_recipe

from reasonlab.optim import build_optimizer, learning_rate_schedule


def cfg(**overrides):
    base = dict(steps=10, learning_rate=1.0, warmup_ratio=0.2, warmup_steps=None, schedule="cosine",
                final_lr_ratio=0.1, weight_decay=0.0, adam_b1=0.9, adam_b2=0.999, max_grad_norm=None)
    return SimpleNamespace(**(base | overrides))


@pytest.mark.parametrize("overrides,step,expected", [
    ({}, 0, 0.0), ({}, 1, 0.5), ({}, 2, 1.0),                                   # linear warm-up over 2 steps
    ({}, 4, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 2 / 8))),                 # cosine over the other 8
    ({}, 10, 0.1),                                                              # ends at final_lr_ratio
    ({"schedule": "linear"}, 4, 1.0 - 0.9 * 2 / 8),
    ({"schedule": "constant"}, 9, 1.0),
    ({"warmup_ratio": 0.0}, 0, 1.0),                                            # no warm-up: the peak at once
    ({"warmup_steps": 5}, 1, 0.2),                                              # warmup_steps wins over the ratio
    ({"final_lr_ratio": 0.0}, 10, 0.0),                                         # cosine to zero (Tunix's example)
])
def test_learning_rate_schedule(overrides, step, expected):
    assert float(learning_rate_schedule(cfg(**overrides))(step)) == pytest.approx(expected, abs=1e-6)


def test_weight_decay_and_clipping_reach_the_update():
    import jax.numpy as jnp

    params = {"w": jnp.ones(2)}
    grads = {"w": jnp.zeros(2)}
    for decay in (0.0, 0.5):
        opt = build_optimizer(cfg(warmup_ratio=0.0, schedule="constant", weight_decay=decay, max_grad_norm=1.0))
        updates, _ = opt.update(grads, opt.init(params), params)
        assert float(updates["w"][0]) == pytest.approx(-decay)               # zero gradient: only the decay moves


def test_stage_defaults():
    from reasonlab_plugins.stage_grpo import GRPOConfig
    from reasonlab_plugins.stage_sft import SFTConfig

    data = {"source": "arithmetic"}
    grpo = GRPOConfig(data=data, steps=1, rewards=[{"name": "format_strict"}])
    assert (grpo.weight_decay, grpo.adam_b2, grpo.max_grad_norm, grpo.num_iterations) == (0.1, 0.99, 0.1, 1)
    sft = SFTConfig(data=data, steps=1)
    assert (sft.weight_decay, sft.adam_b2, sft.max_grad_norm) == (1e-4, 0.999, None)


@pytest.mark.slow
def test_num_iterations_trains_each_batch_of_rollouts_mu_times(tmp_path):
    recipe = tmp_path / "mu.toml"
    recipe.write_text(tiny_recipe("mu", """
[[stages]]
name = "g"
kind = "grpo"
data = { source = "arithmetic", options = { n = 16 } }
steps = 4
batch_size = 2
num_generations = 2
num_iterations = 2
learning_rate = 1e-3
max_prompt_tokens = 96
max_completion_tokens = 16
rewards = [{ name = "format_strict" }]
"""))
    result = reasonlab("run", recipe, "--no-progress", "--runs-dir", tmp_path / "runs", env={"WANDB_MODE": "disabled"})
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in (run_dir_of(tmp_path / "runs", "mu") / "metrics.jsonl").read_text().splitlines()]
    steps_of = lambda key: [r["step"] for r in records if key in r]  # noqa: E731
    assert steps_of("train/actor/loss") == [1, 2, 3, 4]
    assert steps_of("reward/total/mean") == steps_of("perf/rollout_seconds") == [1, 3]   # two batches, μ = 2
