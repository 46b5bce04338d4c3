"""The policy-gradient algorithms of the GRPO stage (``algorithm = "..."``) and their pieces.

Each algorithm is a set of defaults for the stage's keys; a recipe may set any key itself
(``docs/algorithms.md`` has the table, the papers and which recipe uses which):

=========  ==========================  ==============  =================  ==========  =====
algorithm  loss_aggregation            scale_rewards   epsilon / _high    ratio       beta
=========  ==========================  ==============  =================  ==========  =====
grpo       sequence-mean-token-mean    group           0.2 / 0.2          token       0.04
dr_grpo    sequence-mean-token-scale   none            0.2 / 0.2          token       0.04
dapo       token-mean                  group           0.2 / 0.28         token       0
gspo       sequence-mean-token-mean    group           3e-4 / 4e-4        sequence    0.04
=========  ==========================  ==============  =================  ==========  =====

DAPO also turns on ``dynamic_sampling`` (groups whose rewards all tie teach nothing: they are
dropped and more prompts drawn, at most ``max_resample_batches`` extra batches per step) and
the soft overlong penalty over the last ``overlong_buffer`` tokens of the completion budget
(counted in tokens; Tunix 0.1.7's ``DAPOLearner`` counts characters). ``mask_truncated`` (any
algorithm) removes completions that hit the budget without an end token from the loss.

Everything here is plain arrays in, arrays out, so each formula is tested against numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Literal

import numpy as np

Aggregation = Literal["sequence-mean-token-mean", "token-mean", "sequence-mean-token-sum", "sequence-mean-token-scale"]

# our names -> Tunix 0.1.7's ``common.aggregate_loss`` modes
TUNIX_AGGREGATION = {"sequence-mean-token-mean": "sequence-mean-token-mean", "token-mean": "token-mean",
                     "sequence-mean-token-sum": "seq-mean-token-sum",
                     "sequence-mean-token-scale": "sequence-mean-token-scale"}
# scale_rewards -> the advantage estimator's name in Tunix's function registry
ADVANTAGE_ESTIMATORS = {"group": "grpo", "none": "drgrpo", "batch": "reasonlab_batch_std"}


@dataclass(frozen=True)
class Algorithm:
    """One algorithm's defaults (None: the stage's own value)."""

    paper: str
    loss_aggregation: Aggregation = "sequence-mean-token-mean"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    epsilon: float = 0.2
    epsilon_high: float | None = None  # None: = epsilon (symmetric clip)
    ratio: Literal["token", "sequence"] = "token"
    beta: float = 0.04
    dynamic_sampling: bool = False
    overlong_buffer_fraction: float | None = None  # of max_completion_tokens


ALGORITHMS = {
    "grpo": Algorithm("Shao et al. 2024, DeepSeekMath (arXiv:2402.03300)"),
    "dr_grpo": Algorithm("Liu et al. 2025, Understanding R1-Zero-Like Training (arXiv:2503.20783)",
                         loss_aggregation="sequence-mean-token-scale", scale_rewards="none"),
    # DAPO: L_cache 4096 of L_max 20480, i.e. the last 20 % of the budget
    "dapo": Algorithm("Yu et al. 2025, DAPO (arXiv:2503.14476)", loss_aggregation="token-mean", epsilon_high=0.28,
                      beta=0.0, dynamic_sampling=True, overlong_buffer_fraction=0.2),
    "gspo": Algorithm("Zheng et al. 2025, Group Sequence Policy Optimization (arXiv:2507.18071)",
                      epsilon=3e-4, epsilon_high=4e-4, ratio="sequence"),
}


@dataclass(frozen=True)
class Settings:
    """What a GRPO stage runs with once its algorithm's defaults are filled in."""

    algorithm: str
    loss_aggregation: Aggregation
    scale_rewards: str
    epsilon: float
    epsilon_high: float
    ratio: str
    beta: float
    dynamic_sampling: bool
    max_resample_batches: int
    overlong_buffer: int  # tokens; 0 = no overlong penalty
    overlong_penalty: float
    mask_truncated: bool


def resolve(cfg) -> Settings:
    """The stage config's keys, with ``None`` replaced by its algorithm's default."""
    algo = ALGORITHMS[cfg.algorithm]

    def pick(key, default):
        value = getattr(cfg, key)
        return default if value is None else value

    epsilon = pick("epsilon", algo.epsilon)
    if cfg.overlong_buffer is not None:
        buffer = cfg.overlong_buffer
    elif algo.overlong_buffer_fraction:
        buffer = max(1, round(cfg.max_completion_tokens * algo.overlong_buffer_fraction))
    else:
        buffer = 0
    return Settings(
        algorithm=cfg.algorithm, loss_aggregation=pick("loss_aggregation", algo.loss_aggregation),
        scale_rewards=pick("scale_rewards", algo.scale_rewards), epsilon=epsilon,
        epsilon_high=pick("epsilon_high", epsilon if algo.epsilon_high is None else algo.epsilon_high),
        ratio=algo.ratio, beta=pick("beta", algo.beta), dynamic_sampling=pick("dynamic_sampling", algo.dynamic_sampling),
        max_resample_batches=cfg.max_resample_batches, overlong_buffer=buffer,
        overlong_penalty=cfg.overlong_penalty, mask_truncated=cfg.mask_truncated)


def tunix_config(settings: Settings, num_generations: int, num_iterations: int, kl_loss_mode: str):
    """Tunix's ``GRPOConfig`` for these settings (``epsilon_high`` is a field of Tunix's DAPO
    config only; its GRPO loss reads it where present, so the config here carries it)."""
    import dataclasses

    from tunix.rl.grpo import grpo_learner

    register_advantage_estimators()

    @dataclasses.dataclass(kw_only=True)
    class ClipHigherGRPOConfig(grpo_learner.GRPOConfig):
        epsilon_high: float = 0.2

    return ClipHigherGRPOConfig(
        num_generations=num_generations, num_iterations=num_iterations, beta=settings.beta,
        epsilon=settings.epsilon, epsilon_high=settings.epsilon_high, kl_loss_mode=kl_loss_mode,
        loss_agg_mode=TUNIX_AGGREGATION[settings.loss_aggregation],
        advantage_estimator=ADVANTAGE_ESTIMATORS[settings.scale_rewards],
        loss_algo="gspo-token" if settings.ratio == "sequence" else "grpo")


def batch_scaled_advantages(rewards: np.ndarray, num_generations: int) -> np.ndarray:
    """Group-mean baseline, scaled by the whole batch's std (``scale_rewards = "batch"``;
    Liu et al. 2025 "Part I: Tricks or Traps?", TRL's ``scale_rewards="batch"``)."""
    rewards = np.asarray(rewards, np.float64)
    centred = rewards - rewards.reshape(-1, num_generations).mean(axis=1).repeat(num_generations)
    return (centred / (rewards.std(ddof=1) + 1e-6)).astype(np.float32)


def register_advantage_estimators() -> None:
    from tunix.rl import function_registry

    if "reasonlab_batch_std" not in function_registry.default_registry.list_functions("advantage_estimator"):
        function_registry.register_advantage_estimator("reasonlab_batch_std")(batch_scaled_advantages)


def policy_loss(logps, old_logps, ref_logps, advantages, mask, *, epsilon: float, epsilon_high: float,
                loss_agg_mode: str, sequence_ratio: bool, beta: float, kl_loss_mode: str, kl_clamp_value=None):
    """The clipped policy-gradient loss (+ β·KL) from per-token log-probs [B, T], as Tunix
    0.1.7's ``grpo_loss_fn`` computes it (its aggregation and KL functions; ``loss_agg_mode``
    is Tunix's name) but without logits. Returns (loss, aux)."""
    import jax
    import jax.numpy as jnp
    from tunix.rl import common

    old = jax.lax.stop_gradient(logps) if old_logps is None else old_logps.astype(jnp.float32)
    log_ratio = jnp.clip(logps - old, -20.0, 20.0)
    if sequence_ratio:
        # GSPO: each token carries its sequence's length-normalised ratio (value), its own gradient
        sequence = (log_ratio * mask).sum(-1) / jnp.clip(mask.sum(-1), min=1)
        log_ratio = jnp.clip(logps - jax.lax.stop_gradient(logps) + jax.lax.stop_gradient(sequence)[:, None], max=10.0)
    ratio = jnp.exp(log_ratio)
    advantages = advantages.astype(jnp.float32)
    advantages = advantages if advantages.ndim == 2 else advantages[:, None]  # [B, T]: per-token (distillation)
    unclipped = -advantages * ratio
    clipped = -advantages * jnp.clip(ratio, 1 - epsilon, 1 + epsilon_high)
    loss = common.aggregate_loss(jnp.maximum(unclipped, clipped), mask, loss_agg_mode)

    def token_mean(values):
        return (values * mask).sum() / jnp.clip(mask.sum(), min=1)

    aux = {"kl": jnp.float32(0.0), "pg_clipfrac": token_mean(clipped > unclipped)}
    if ref_logps is not None:
        kl = common.compute_kl_divergence(logps, ref_logps, kl_loss_mode, clamp_value=kl_clamp_value)
        aux["kl"] = token_mean(kl)
        if beta:
            loss = loss + beta * common.aggregate_loss(kl, mask, loss_agg_mode)
    return loss, aux


def overlong_penalty(lengths, max_tokens: int, buffer: int, penalty: float = 1.0) -> np.ndarray:
    """DAPO's soft overlong punishment (eq. 13), lengths in tokens: 0 up to ``max_tokens -
    buffer``, then falling linearly to ``-penalty`` at ``max_tokens`` (and beyond)."""
    lengths = np.asarray(lengths, np.float64)
    start = max_tokens - buffer
    return (np.clip((start - lengths) / buffer, -1.0, 0.0) * penalty).astype(np.float32)


def informative_groups(advantages, group_size: int, tolerance: float = 1e-6) -> np.ndarray:
    """One flag per group: does any completion have a non-zero advantage? A group whose rewards
    all tie has zero advantages under every estimator here, so it contributes no gradient."""
    return (np.abs(np.asarray(advantages)).reshape(-1, group_size) > tolerance).any(axis=1)


def take_groups(example, groups: np.ndarray, group_size: int):
    """The rows of ``example`` (a Tunix TrainExample, [B·G, ...]) that belong to ``groups``."""
    import jax

    rows = (np.asarray(groups)[:, None] * group_size + np.arange(group_size)).reshape(-1)
    return jax.tree.map(lambda x: x[rows], example)


def concat_examples(examples):
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *examples)


@dataclass
class FillStats:
    zero_variance_groups: int = 0  # in the step's first draw
    dropped_groups: int = 0  # over all draws
    extra_batches: int = 0
    short_groups: int = 0  # zero-variance groups kept because the bound was reached

    def metrics(self, batch_groups: int) -> dict[str, float]:
        return {"train/dynamic_sampling/zero_variance_fraction": self.zero_variance_groups / batch_groups,
                "train/dynamic_sampling/dropped_groups": float(self.dropped_groups),
                "train/dynamic_sampling/extra_batches": float(self.extra_batches),
                "train/dynamic_sampling/short_groups": float(self.short_groups)}


def fill_with_informative_groups(first, draw_more: Callable[[], object], group_size: int,
                                 max_extra_batches: int):
    """DAPO's dynamic sampling: keep the groups of ``first`` whose advantages are not all zero
    and call ``draw_more()`` (another rolled-out batch of the same shape) until there are as
    many as ``first`` had, or ``max_extra_batches`` were drawn; then the batch is topped up
    with zero-variance groups so its shape (and the compiled step) never changes."""
    batch_groups = first.advantages.shape[0] // group_size
    stats = FillStats()
    kept, spare, have = [], [], 0
    example = first
    while True:
        flags = informative_groups(example.advantages, group_size)
        if example is first:
            stats.zero_variance_groups = int((~flags).sum())
        stats.dropped_groups += int((~flags).sum())
        if flags.any():
            kept.append(take_groups(example, np.flatnonzero(flags), group_size))
            have += int(flags.sum())
        if (~flags).any():
            spare.append(take_groups(example, np.flatnonzero(~flags), group_size))
        if have >= batch_groups or stats.extra_batches >= max_extra_batches:
            break
        example = draw_more()
        stats.extra_batches += 1
    stats.short_groups = max(batch_groups - have, 0)
    stats.dropped_groups -= stats.short_groups
    batch = concat_examples(kept + spare)
    return take_groups(batch, np.arange(batch_groups), group_size), stats


def mask_truncated(example, max_tokens: int):
    """Completions that used the whole budget ended without an end token (Tunix strips it):
    their mask is zeroed, so they leave the loss (DAPO's overlong filtering)."""
    import jax.numpy as jnp

    mask = example.completion_mask
    truncated = mask.sum(axis=-1) >= max_tokens
    return example.replace(completion_mask=jnp.where(truncated[:, None], jnp.zeros_like(mask), mask)), truncated


def repeat_for_groups(batch: dict, group_size: int, tag: str) -> dict:
    """A grain batch of prompts as Tunix's learner feeds it to a rollout: each row G times,
    with trajectory ids."""
    out = {key: np.repeat(np.asarray(value), group_size, axis=0) for key, value in batch.items()}
    rows = len(next(iter(batch.values())))
    out["trajectory_ids"] = [f"{tag}_{r}_{g}" for r in range(rows) for g in range(group_size)]
    return out


def endless(batches: Callable[[], Iterator[dict]]) -> Iterator[dict]:
    while True:
        yield from batches()
