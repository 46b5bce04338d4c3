"""Does GRPO move the policy the way its reward says? (the cause of the quickstart's drop)

The KL penalty's per-token estimator decides what the penalty pulls on. Tunix 0.1.7's
default, k1 = log p - log ref, has a gradient of beta * grad log p for every sampled
token even where the policy *is* the reference: it lowers the probability of whatever
was sampled. Under top-k/top-p sampling that is the model's likeliest tokens, so the
penalty flattens the policy away from its greedy answers on every step, whatever the
reward says. k3 = exp(ref - logp) - (ref - logp) - 1 has zero gradient there.
"""

from __future__ import annotations

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import read_metrics, reasonlab, run_dir_of, tiny_recipe
from flax import nnx
from test_logprobs import EOS, PAD, batch, gemma, train_example, tunix_logps


def penalty_gradient(kl_estimator: str):
    """The GRPO loss's gradient with zero advantages at policy == reference: the KL term alone."""
    from tunix.rl.grpo.grpo_learner import GRPOConfig

    from reasonlab_plugins._grpo_tunix import lean_grpo_loss
    from reasonlab_plugins.stage_grpo import KL_LOSS_MODES

    model = gemma(lora=True, layers=1)  # one layer: the penalty, not the depth, is under test
    prompt_ids, completion_ids = batch()
    config = GRPOConfig(num_generations=2, beta=0.04, epsilon=0.2, kl_loss_mode=KL_LOSS_MODES[kl_estimator])
    config.temperature = 0.7
    own, _ = tunix_logps(model, prompt_ids, completion_ids, temperature=0.7)
    example = train_example(prompt_ids, completion_ids, jax.lax.stop_gradient(own))
    example = example.replace(advantages=jnp.zeros_like(example.advantages))
    diff = nnx.DiffState(0, nnx.LoRAParam)
    grad = nnx.grad(lambda m: lean_grpo_loss(m, example, config, PAD, EOS)[0], argnums=diff)(model)
    return max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grad))


def test_k3_penalty_has_no_gradient_where_the_policy_is_the_reference():
    assert penalty_gradient("k3") < 1e-7


def test_k1_penalty_pulls_on_the_policy_even_at_the_reference():
    # the defect the default was changed for: a gradient where there is nothing to correct
    assert penalty_gradient("k1") > 1e-4


def test_the_default_estimator_is_k3():
    from reasonlab_plugins.stage_grpo import GRPOConfig

    assert GRPOConfig.model_fields["kl_estimator"].default == "k3"


SCRIPTED_REWARD = '''
from reasonlab import hookimpl

TOKEN = "7"


def prefers_sevens(prompts, completions, **_):
    """A reward the tiny model can learn: the share of characters of the completion that are '7'."""
    return [c.count(TOKEN) / max(len(c), 1) for c in completions]


@hookimpl
def register_rewards(register):
    register("prefers_sevens", prefers_sevens)
'''

RECIPE = tiny_recipe("scripted", '''
[[stages]]
name = "grpo"
kind = "grpo"
data = {{ source = "arithmetic", options = {{ n = 32 }} }}
steps = {steps}
batch_size = 4
num_generations = 4
learning_rate = 3e-3
warmup_ratio = 0.0
temperature = 1.0
top_k = 64
top_p = 1.0
beta = 0.04
kl_estimator = "{kl}"
max_grad_norm = 1.0
max_prompt_tokens = 96
max_completion_tokens = 12
rewards = [{{ name = "prefers_sevens" }}]
''', seed=5)


@pytest.mark.slow
def test_grpo_on_a_scripted_reward_raises_it(tmp_path):
    """Regression: GRPO on a learnable reward must raise that reward — a sign or scale error
    in the loss, the advantages or the update would leave it flat or push it down."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "scripted.py").write_text(textwrap.dedent(SCRIPTED_REWARD))
    recipe = tmp_path / "scripted.toml"
    recipe.write_text(RECIPE.format(steps=30, kl="k3"))
    runs = tmp_path / "runs"
    result = reasonlab("--plugins-dir", plugins, "run", recipe, "--no-progress", "--runs-dir", runs)
    assert result.returncode == 0, result.stderr[-3000:]
    rewards = [r["reward/total/mean"] for r in read_metrics(run_dir_of(runs, "scripted")) if "reward/total/mean" in r]
    assert len(rewards) == 30
    first, last = np.mean(rewards[:8]), np.mean(rewards[-8:])
    # the share of '7's starts near 0.01 (how near depends on the tiny tokenizer's merges); a sign
    # or scale error leaves it there or lower, a working update multiplies it (5x here)
    assert last > 2 * first and last > first + 0.02, (first, last, rewards)
