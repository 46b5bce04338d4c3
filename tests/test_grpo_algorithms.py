"""The GRPO stage's algorithms (``algorithm = "grpo" | "dr_grpo" | "dapo" | "gspo"``).

Each loss is checked on small hand-made arrays against its paper's formula written out in
numpy (not through any code of ours or Tunix's), and against Tunix's own ``grpo_loss_fn``
(value and gradients) on a random Gemma3. The rollout-side pieces — advantages, DAPO's
overlong penalty, dynamic sampling, truncation masking — are checked on arrays too, and a
tiny run trains with each algorithm; in the DAPO stage a scripted reward ties every group
of half the prompts, which dynamic sampling must drop and refill.
"""

from __future__ import annotations

import functools
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import read_metrics, reasonlab, run_dir_of, tiny_recipe
from flax import nnx
from test_logprobs import EOS, PAD, batch, gemma, train_example, tunix_logps

from reasonlab_plugins import _grpo_algorithms as algos
from reasonlab_plugins.stage_grpo import GRPOConfig, KL_LOSS_MODES

G = 2  # completions per prompt in the hand-made batch: rows (0, 1) and (2, 3) are groups
LOGPS = np.array([[-1.0, -2.0, -0.5, 0.0], [-0.3, -1.2, 0.0, 0.0], [-2.0, -0.1, -0.7, -1.5], [-0.9, 0.0, 0.0, 0.0]])
MASK = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], np.float64)
OLD = LOGPS + np.array([[0.1, -0.4, 0.0, 0], [0.5, 0.05, 0, 0], [-0.3, 0.2, 0.0, 0.1], [0.0, 0, 0, 0]])
REF = LOGPS - 0.2
ADVANTAGES = np.array([1.0, -1.0, 0.5, -0.5])


def settings_for(algorithm: str, **keys):
    cfg = GRPOConfig(data={"source": "arithmetic"}, steps=1, rewards=[{"name": "format_strict"}],
                     algorithm=algorithm, max_completion_tokens=4, **keys)
    return algos.resolve(cfg)


def ours(settings, logps=LOGPS, old=OLD):
    return algos.policy_loss(
        jnp.asarray(logps, jnp.float32), jnp.asarray(old, jnp.float32), jnp.asarray(REF, jnp.float32),
        jnp.asarray(ADVANTAGES, jnp.float32), jnp.asarray(MASK, jnp.float32),
        epsilon=settings.epsilon, epsilon_high=settings.epsilon_high,
        loss_agg_mode=algos.TUNIX_AGGREGATION[settings.loss_aggregation],
        sequence_ratio=settings.ratio == "sequence", beta=settings.beta, kl_loss_mode="low_var_kl")


def k3(logps):  # Schulman's k3 estimator of KL(policy || reference) per token
    d = REF - logps
    return np.exp(d) - d - 1


def clipped_objective(ratio, adv, low, high):  # PPO's per-token (or per-sequence) surrogate, to maximise
    return np.minimum(ratio * adv, np.clip(ratio, 1 - low, 1 + high) * adv)


def test_grpo_is_deepseekmath_equation_21():
    """J = 1/G Σ_i 1/|o_i| Σ_t [min(r A, clip(r, 1±ε) A) - β KL]; the loss is -J."""
    s = settings_for("grpo")
    assert (s.epsilon, s.epsilon_high, s.beta, s.loss_aggregation) == (0.2, 0.2, 0.04, "sequence-mean-token-mean")
    r = np.exp(LOGPS - OLD)
    per_token = clipped_objective(r, ADVANTAGES[:, None], 0.2, 0.2) - 0.04 * k3(LOGPS)
    expected = -np.mean((per_token * MASK).sum(1) / MASK.sum(1))
    np.testing.assert_allclose(float(ours(s)[0]), expected, rtol=1e-5)


def test_dr_grpo_divides_by_the_budget_not_the_length():
    """Dr. GRPO: 1/G Σ_i 1/L_max Σ_t (the completion budget, not |o_i|)."""
    s = settings_for("dr_grpo")
    assert (s.loss_aggregation, s.scale_rewards) == ("sequence-mean-token-scale", "none")
    r = np.exp(LOGPS - OLD)
    per_token = clipped_objective(r, ADVANTAGES[:, None], 0.2, 0.2) - 0.04 * k3(LOGPS)
    expected = -np.mean((per_token * MASK).sum(1) / LOGPS.shape[1])
    np.testing.assert_allclose(float(ours(s)[0]), expected, rtol=1e-5)


def test_dapo_is_token_level_with_clip_higher_and_no_kl():
    """DAPO eq. 8: 1/Σ|o_i| Σ_i Σ_t min(r A, clip(r, 1-ε_low, 1+ε_high) A), no KL term."""
    s = settings_for("dapo")
    assert (s.epsilon, s.epsilon_high, s.beta, s.dynamic_sampling) == (0.2, 0.28, 0.0, True)
    assert s.overlong_buffer == 1  # 20 % of the 4-token budget, at least one token
    r = np.exp(LOGPS - OLD)
    expected = -(clipped_objective(r, ADVANTAGES[:, None], 0.2, 0.28) * MASK).sum() / MASK.sum()
    np.testing.assert_allclose(float(ours(s)[0]), expected, rtol=1e-5)
    symmetric = -(clipped_objective(r, ADVANTAGES[:, None], 0.2, 0.2) * MASK).sum() / MASK.sum()
    assert not np.isclose(expected, symmetric)  # the batch above exercises the raised upper bound


def test_gspo_uses_the_sequence_ratio_and_its_gradient():
    """GSPO eq. 5-7: s_i = exp(1/|o_i| Σ_t log(π/π_old)), J = 1/G Σ_i min(s_i A_i, clip(s_i) A_i);
    ∇J = 1/G Σ_i s_i A_i 1/|o_i| Σ_t ∇log π where unclipped, 0 where clipped."""
    s = settings_for("gspo", epsilon=0.05, epsilon_high=0.1)  # the paper's 3e-4/4e-4 would clip every row here
    assert settings_for("gspo").epsilon == 3e-4 and settings_for("gspo").epsilon_high == 4e-4
    seq = np.exp(((LOGPS - OLD) * MASK).sum(1) / MASK.sum(1))
    kl = (k3(LOGPS) * MASK).sum(1) / MASK.sum(1)
    expected = -np.mean(clipped_objective(seq, ADVANTAGES, 0.05, 0.1)) + 0.04 * np.mean(kl)
    np.testing.assert_allclose(float(ours(s)[0]), expected, rtol=1e-5)

    grad = np.asarray(jax.grad(lambda lp: ours(s, logps=lp)[0])(jnp.asarray(LOGPS, jnp.float32)))
    unclipped = seq * ADVANTAGES <= np.clip(seq, 0.95, 1.1) * ADVANTAGES
    assert unclipped.any() and not unclipped.all()
    pg = -(unclipped * seq * ADVANTAGES / MASK.sum(1))[:, None] * MASK / len(ADVANTAGES)
    kl_grad = 0.04 * (1 - np.exp(REF - LOGPS)) * MASK / MASK.sum(1, keepdims=True) / len(ADVANTAGES)
    np.testing.assert_allclose(grad, pg + kl_grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("scale, formula", [
    ("group", lambda r: (r - r.mean(1, keepdims=True)) / (r.std(1, ddof=1, keepdims=True) + 1e-6)),
    ("none", lambda r: r - r.mean(1, keepdims=True)),  # Dr. GRPO: no std
    ("batch", lambda r: (r - r.mean(1, keepdims=True)) / (r.std(ddof=1) + 1e-6)),
])
def test_advantages_scale_as_named(scale, formula):
    from tunix.rl import function_registry

    algos.register_advantage_estimators()
    rewards = np.array([1.0, 0.0, 0.5, 0.5, 2.0, 0.0, 3.0, 1.0])
    estimator = function_registry.get_advantage_estimator(algos.ADVANTAGE_ESTIMATORS[scale])
    got = np.asarray(estimator(rewards=rewards, num_generations=4))
    np.testing.assert_allclose(got, formula(rewards.reshape(2, 4)).reshape(-1), rtol=1e-5)


def test_overlong_penalty_in_tokens_by_hand():
    """DAPO eq. 13 with L_max = 100, L_cache = 20: 0 up to 80 tokens, then linear to -1 at 100."""
    got = algos.overlong_penalty([10, 80, 81, 90, 100, 120], max_tokens=100, buffer=20)
    np.testing.assert_allclose(got, [0.0, 0.0, -0.05, -0.5, -1.0, -1.0], rtol=1e-6)
    np.testing.assert_allclose(algos.overlong_penalty([90], 100, 20, penalty=0.5), [-0.25])


def example_with(advantages, tag: float):
    from tunix.rl.common import TrainExample

    n = len(advantages)
    ids = jnp.full((n, 3), tag)
    return TrainExample(prompt_ids=ids, prompt_mask=jnp.ones((n, 3)), completion_ids=ids,
                        completion_mask=jnp.ones((n, 3)), advantages=jnp.asarray(advantages, jnp.float32),
                        ref_per_token_logps=None, old_per_token_logps=None)


def test_dynamic_sampling_drops_tied_groups_and_refills_the_batch():
    first = example_with([0, 0, 1, -1, 0, 0], tag=1)  # groups of 2: tied, informative, tied
    more = iter([example_with([0, 0, 0, 0, 0, 0], 2), example_with([0.5, -0.5, 0, 0, 2, -2], 3)])
    batch, stats = algos.fill_with_informative_groups(first, lambda: next(more), group_size=2, max_extra_batches=5)
    assert batch.advantages.shape == (6,)  # the shape never changes
    assert list(np.asarray(batch.prompt_ids[:, 0])) == [1, 1, 3, 3, 3, 3]  # every group informative
    assert (stats.zero_variance_groups, stats.extra_batches, stats.short_groups) == (2, 2, 0)
    assert stats.dropped_groups == 2 + 3 + 1
    assert stats.metrics(3)["train/dynamic_sampling/zero_variance_fraction"] == pytest.approx(2 / 3)


def test_dynamic_sampling_stops_at_its_bound_and_says_so():
    first = example_with([0, 0, 1, -1, 0, 0], tag=1)
    batch, stats = algos.fill_with_informative_groups(
        first, lambda: example_with([0] * 6, 2), group_size=2, max_extra_batches=1)
    assert batch.advantages.shape == (6,)
    assert list(np.asarray(batch.advantages)) == [1, -1, 0, 0, 0, 0]  # the informative group first, then ties
    assert (stats.extra_batches, stats.short_groups) == (1, 2)


def test_truncated_completions_leave_the_loss():
    example = example_with([1, -1], tag=1).replace(completion_mask=jnp.asarray([[1, 1, 1], [1, 1, 0]]))
    masked, truncated = algos.mask_truncated(example, max_tokens=3)
    assert list(truncated) == [True, False]
    assert np.asarray(masked.completion_mask).tolist() == [[0, 0, 0], [1, 1, 0]]


def test_bad_algorithm_settings_are_refused_at_validate(tmp_path):
    recipe = tmp_path / "bad.toml"
    recipe.write_text(tiny_recipe("bad", '''
[[stages]]
name = "grpo"
kind = "grpo"
data = { source = "arithmetic" }
steps = 1
algorithm = "dapo"
epsilon = 0.3
epsilon_high = 0.2
rewards = [{ name = "format_strict" }]
'''))
    result = reasonlab("validate", recipe)
    assert result.returncode == 2
    assert "epsilon_high" in result.stderr and "stages.grpo" in result.stderr, result.stderr


@pytest.mark.parametrize("algorithm, keys", [  # grpo's defaults: tests/test_logprobs.py
    ("dr_grpo", {}), ("dapo", {"beta": 0.04}), ("gspo", {"epsilon": 0.05, "epsilon_high": 0.1}),
    ("grpo", {"loss_aggregation": "sequence-mean-token-sum"})])
def test_lean_loss_matches_tunix_for_each_algorithm(algorithm, keys):
    """Value, aux and gradients against Tunix 0.1.7's ``grpo_loss_fn`` given the same config
    (with a second-iteration old policy, so the ratio is not 1 and clipping engages)."""
    from tunix.rl.algo_core import grpo_loss_fn

    from reasonlab_plugins._grpo_tunix import lean_grpo_loss

    settings = settings_for(algorithm, **keys)
    config = algos.tunix_config(settings, num_generations=2, num_iterations=2, kl_loss_mode=KL_LOSS_MODES["k3"])
    config.temperature = 0.7
    model = gemma(lora=True, layers=1)  # one layer: the loss is what differs between algorithms
    prompt_ids, completion_ids = batch()
    ref_logps, _ = tunix_logps(gemma(seed=9, layers=1), prompt_ids, completion_ids)
    shifted, _ = tunix_logps(model, prompt_ids, completion_ids)
    example = train_example(prompt_ids, completion_ids, jax.lax.stop_gradient(ref_logps))
    example = example.replace(old_per_token_logps=jax.lax.stop_gradient(shifted) - 0.03)

    def grads(loss_fn):
        diff = nnx.DiffState(0, nnx.LoRAParam)
        return nnx.value_and_grad(lambda m: loss_fn(m, example, config, PAD, EOS), argnums=diff, has_aux=True)(model)

    (loss, aux), grad = grads(grpo_loss_fn)
    (lean_loss, lean_aux), lean_grad = grads(functools.partial(lean_grpo_loss, remat=False))
    np.testing.assert_allclose(lean_loss, loss, rtol=1e-5)
    # Tunix aggregates the entropy it logs like the loss; ours is always the mean token entropy
    same_entropy = settings.loss_aggregation in ("token-mean", "sequence-mean-token-mean")
    for key in ("kl", "pg_clipfrac", "entropy") if same_entropy else ("kl", "pg_clipfrac"):
        np.testing.assert_allclose(lean_aux[key], aux[key], rtol=1e-4, atol=1e-6, err_msg=key)
    for expected, got in zip(jax.tree.leaves(grad), jax.tree.leaves(lean_grad), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


SCRIPTED = '''
import zlib

from reasonlab import hookimpl


def half_tied(prompts, completions, **_):
    """Every completion of an even-hashed prompt scores 1 (a tied group); the others score a
    hash of their text (they vary whenever the completions differ)."""
    return [1.0 if zlib.crc32(p.encode()) % 2 == 0 else zlib.crc32(c.encode()) % 100 / 100
            for p, c in zip(prompts, completions)]


@hookimpl
def register_rewards(register):
    register("half_tied", half_tied)
'''


def stage(algorithm: str, extra: str = "") -> str:
    return f'''
[[stages]]
name = "{algorithm}"
kind = "grpo"
algorithm = "{algorithm}"
data = {{ source = "arithmetic", options = {{ n = 32 }} }}
steps = 2
batch_size = 2
num_generations = 4
learning_rate = 1e-3
temperature = 1.0
top_p = 1.0
max_prompt_tokens = 96
max_completion_tokens = 12
rewards = [{{ name = "half_tied" }}]
{extra}'''


@pytest.mark.slow
def test_a_tiny_run_trains_with_every_algorithm(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "scripted.py").write_text(textwrap.dedent(SCRIPTED))
    recipe = tmp_path / "algorithms.toml"
    recipe.write_text(tiny_recipe("algorithms", stage("grpo") + stage("dr_grpo")
                                  + stage("gspo", "overlong_buffer = 4\nmask_truncated = true")
                                  + stage("dapo", "max_resample_batches = 6\noverlong_buffer = 0")))
    runs = tmp_path / "runs"
    result = reasonlab("--plugins-dir", plugins, "run", recipe, "--no-progress", "--runs-dir", runs)
    assert result.returncode == 0, result.stderr[-3000:]
    for algorithm in ("grpo", "dr_grpo", "gspo", "dapo"):
        assert f"algorithm {algorithm}" in result.stdout + result.stderr
    metrics = read_metrics(run_dir_of(runs, "algorithms"))

    def of(stage_name, key):
        return [r for r in metrics if r.get("stage") == stage_name and key in r]

    for algorithm in ("grpo", "dr_grpo", "gspo", "dapo"):
        assert len(of(algorithm, "train/actor/loss")) == 2, algorithm
    dapo = of("dapo", "train/dynamic_sampling/dropped_groups")
    assert len(dapo) == 2, dapo  # one record per step
    assert sum(r["train/dynamic_sampling/dropped_groups"] for r in dapo) > 0  # tied groups were dropped ...
    assert all(r["train/dynamic_sampling/short_groups"] == 0 for r in dapo)  # ... and the batch refilled
    assert any(r["train/dynamic_sampling/extra_batches"] > 0 for r in dapo)
    assert of("gspo", "train/overlong/penalised_fraction") and of("gspo", "train/truncated_fraction")
    for algorithm in ("grpo", "dr_grpo", "gspo"):  # dynamic sampling is DAPO's default only
        assert not of(algorithm, "train/dynamic_sampling/dropped_groups")
