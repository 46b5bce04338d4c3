"""``kind = "grpo"``: GRPO with Tunix's GRPOLearner on an RLCluster (vanilla rollout).

Recipe keys (besides ``TrainingStageConfig``): ``num_generations`` (G), ``algorithm``
("grpo" default, "dr_grpo", "dapo", "gspo": a set of defaults for the next keys,
``reasonlab_plugins._grpo_algorithms`` and docs/algorithms.md), ``beta`` (KL to the
reference; 0 keeps no reference model), ``epsilon`` (= ``epsilon_low``, the clip's lower
side) and ``epsilon_high`` (its upper side: DAPO's clip-higher), ``loss_aggregation``,
``scale_rewards`` ("group", "batch", "none"), ``dynamic_sampling`` with
``max_resample_batches``, ``overlong_buffer`` / ``overlong_penalty`` (DAPO's soft length
penalty, in tokens), ``mask_truncated``, ``rollout_log_every`` (rollout samples with their
reward breakdown every N steps: ``RolloutLog``), ``temperature``/``top_k``/``top_p`` (rollout
sampler; ``top_k = 0`` with ``top_p = 1.0`` samples the whole vocabulary unsorted),
``rewards`` (a weighted list of reward plugins, run concurrently by
``reasonlab.rewards.CompositeReward``), ``reward_failures`` ("stop": a reward failing on
a whole step, or on more than ``reward_max_failure_rate`` of the completions over
``reward_failure_window`` steps, stops the run; "fallback": failed scores become
``reward_fallback``), ``fail_fast`` (stop at the first failure), ``reward_deadline``
(seconds for all of a step's rewards together; a reward still running then gives the
fallback and counts a timeout, so a slow judge cannot stretch a step), ``max_grad_norm``,
``kl_estimator`` (the per-token KL of the penalty: "k3", Schulman's ``exp(r) - r - 1``,
default; "k1" ``log p - log ref``, Tunix 0.1.7's default; "k2" ``(log p - log ref)^2 / 2``).
``num_iterations`` (μ: optimisation passes over each batch of rollouts, as the 2B-think team
ran 10 and 5; ``steps`` counts optimiser steps, so a stage draws ``steps / μ`` batches, and
our reward and rollout records carry the first actor step each batch serves — Tunix's own
``train/rewards/*`` count batches). ``batch_size`` counts prompts per step. The optimiser keys (``schedule``,
``warmup_steps``, ``final_lr_ratio``, ``weight_decay`` 0.1, ``adam_b2`` 0.99,
``max_grad_norm`` 0.1 here: Tunix's GRPO example) are ``reasonlab.optim``'s.

``reference`` picks the KL anchor: "initial" (default) is a frozen copy of the policy as
the stage starts — after an SFT stage, the SFT model, as in the published recipes;
"base" (LoRA only) is the backbone under the adapters, shared without a copy (less
memory, but the KL then also pulls away from what earlier stages taught).

Placement (``mesh``, or the recipe's ``[mesh]``): the actor trains on the main mesh;
``roles.reference`` / ``roles.rollout`` put those models on their own device slices and
Tunix reshards them there and syncs weights after each step. ``rollout_engine`` picks
Tunix's engine: "vanilla" (built in), "vllm" or "sglang_jax" (when those packages are
installed); ``rollout_options`` passes engine settings to Tunix's ``RolloutConfig``
(e.g. ``rollout_vllm_model_version``). ``shared_prefill`` (ours, default true): the vanilla
engine prefills each prompt once for its ``num_generations`` rollouts instead of once per
rollout — the same tokens, a quarter of the prefill at 4 generations.

Besides Tunix's metrics, each step logs ``perf/rollout_seconds``,
``perf/rollout_tokens_per_second`` (new tokens generated per second of rollout) and the
policy's mean token entropy (``train/actor/entropy``).

Memory: for Gemma-family models the policy loss and the reference's log-probs come from
``reasonlab.logprobs`` (the vocabulary head on completion tokens only, chunked), not from
full-sequence, full-vocabulary logits; the loss is Tunix's GRPO loss otherwise
(``reasonlab_plugins._grpo_tunix.lean_grpo_loss`` says which parts; the Tunix subclasses live there too).
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any, Literal

from pydantic import AliasChoices, Field, NonNegativeInt, PositiveFloat, PositiveInt

from reasonlab import hookimpl
from reasonlab.data import apply_length_budget, render_prompt
from reasonlab.errors import DataError
from reasonlab.files import drop_rows_after
from reasonlab.rewards import CompositeReward, summary_table
from reasonlab.schema import RewardSpec
from reasonlab.stage import StageResult, TrainingStageConfig
from reasonlab_plugins import _grpo_algorithms as grpo_algorithms
from reasonlab_plugins._grpo_algorithms import Aggregation
from reasonlab_plugins._grpo_tunix import cluster_class, frozen_copy, learner_class


class GRPOConfig(TrainingStageConfig):
    batch_size: PositiveInt = 2
    learning_rate: PositiveFloat = 1e-5
    num_generations: int = Field(4, ge=2)
    algorithm: Literal["grpo", "dr_grpo", "dapo", "gspo"] = "grpo"  # each one's defaults: _grpo_algorithms.py
    beta: float | None = Field(None, ge=0.0)  # None: the algorithm's (0.04; DAPO 0)
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"  # k1 pulls on the policy where it equals the reference: docs/results.md
    epsilon: PositiveFloat | None = Field(None, validation_alias=AliasChoices("epsilon", "epsilon_low"))
    epsilon_high: PositiveFloat | None = None
    loss_aggregation: Aggregation | None = None
    scale_rewards: Literal["group", "batch", "none"] | None = None
    dynamic_sampling: bool | None = None
    max_resample_batches: NonNegativeInt = 3
    overlong_buffer: NonNegativeInt | None = None  # tokens; 0 = off
    overlong_penalty: float = Field(1.0, ge=0.0)
    mask_truncated: bool = False
    temperature: PositiveFloat = 0.7
    # 0 = no cut. Tunix samples any cut over the *sorted* logits, so two near-tied tokens swapping
    # places (rounding) can change the draw; no cut with top_p 1.0 samples the logits as they are.
    top_k: NonNegativeInt | None = 50
    top_p: float | None = Field(0.9, gt=0.0, le=1.0)
    max_grad_norm: PositiveFloat | None = 0.1
    weight_decay: float = Field(0.1, ge=0.0, allow_inf_nan=False)  # Tunix's GRPO example's AdamW
    adam_b2: float = Field(0.99, ge=0.0, lt=1.0)
    num_iterations: PositiveInt = 1  # μ: optimisation passes over each batch of rollouts (GRPO's inner loop)
    rewards: list[RewardSpec] = Field(min_length=1)
    reward_fallback: float = 0.0
    reward_failures: Literal["stop", "fallback"] = "stop"
    reward_max_failure_rate: float = Field(0.5, ge=0.0, le=1.0)
    reward_failure_window: PositiveInt = 10
    reward_deadline: PositiveFloat | None = None
    fail_fast: bool = False
    reference: Literal["initial", "base"] = "initial"
    rollout_engine: Literal["vanilla", "vllm", "sglang_jax"] = "vanilla"
    rollout_options: dict[str, Any] = {}
    shared_prefill: bool = True  # vanilla engine: each prompt of a group prefilled once (ours; Tunix prefills every row)
    max_prompt_tokens: PositiveInt = 128
    max_completion_tokens: PositiveInt = 128
    rollout_log_every: NonNegativeInt = 10  # rollout samples every N steps (and the first); 0 = none


def _column_value(value):
    """Columns must batch into numpy arrays: nested values travel as JSON text."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def prompt_records(rows, cfg, tokenizer, chat_template: str | None = None):
    records = [{"prompts": render_prompt(r, cfg.data, chat_template), **{k: _column_value(v) for k, v in r.items()}} for r in rows]
    lengths = [(len(tokenizer.encode(r["prompts"])) + 1,) for r in records]
    return apply_length_budget(records, lengths, (cfg.max_prompt_tokens,))


def training_batches(records, cfg, seed: int, should_stop=lambda: False, endless: bool = False):
    """``steps`` batches (``endless``: without end) in a seed-determined order, drawn lazily (a huge
    ``steps`` allocates nothing up front); ends early when ``should_stop()``."""
    import itertools

    import grain
    import numpy as np

    rng = np.random.default_rng(seed)

    def indices():
        while True:  # as_is keeps a curriculum's easy-to-hard order
            yield from rng.permutation(len(records)).tolist() if cfg.data.order == "shuffle" else range(len(records))

    order = indices()
    for _ in itertools.count() if endless else range(cfg.steps):
        if should_stop():
            return
        chosen = [records[next(order)] for _ in range(cfg.batch_size)]
        yield from grain.MapDataset.source(chosen).batch(cfg.batch_size)


def first_drawn(batches):
    """``batches`` with its first batch already drawn, or None when there is none. Tunix's RL
    learner takes its first batch with a bare ``next()``, so an iterator that a stop ended before
    the first step would escape from it as ``StopIteration`` instead of a clean interruption."""
    import itertools

    first = next(batches, None)
    return None if first is None else itertools.chain([first], batches)


# Schulman's estimators of KL(policy || reference) per sampled token, by Tunix's names
KL_LOSS_MODES = {"k1": "kl", "k2": "mse_kl", "k3": "low_var_kl"}

ENGINE_PACKAGES = {"vllm": ("vllm", "pip install vllm (a GPU or TPU build)"),
                   "sglang_jax": ("sgl_jax", "pip install sglang-jax")}


def check_rollout_engine(cfg, where: str) -> None:
    if cfg.rollout_engine in ENGINE_PACKAGES:
        module, install = ENGINE_PACKAGES[cfg.rollout_engine]
        if importlib.util.find_spec(module) is None:
            raise DataError(f'rollout_engine = "{cfg.rollout_engine}" needs the {module!r} package, '
                            f"which is not installed", where=f"{where}.rollout_engine".lstrip("."),
                            hint=f'{install}, or use rollout_engine = "vanilla"')


def describe(settings) -> str:
    parts = [f"algorithm {settings.algorithm}", f"loss {settings.loss_aggregation}",
             f"rewards scaled by {settings.scale_rewards}", f"clip [{1 - settings.epsilon:g}, {1 + settings.epsilon_high:g}]",
             f"{settings.ratio}-level ratio", f"beta {settings.beta:g}"]
    if settings.dynamic_sampling:
        parts.append(f"dynamic sampling (<= {settings.max_resample_batches} extra batches)")
    if settings.overlong_buffer:
        parts.append(f"overlong penalty over the last {settings.overlong_buffer} tokens")
    if settings.mask_truncated:
        parts.append("truncated completions masked")
    return ", ".join(parts)


class RolloutLog:
    """Every ``every`` steps (and the first), each rolled-out completion with its prompt, its
    scores from each reward, the total the advantages come from, the advantage and its length
    in tokens: appended to ``stages/<name>/rollouts.jsonl`` and to the trackers' growing
    ``rollouts`` table. With dynamic sampling, every batch drawn for the step (``draw``)."""

    def __init__(self, ctx, reward, every: int, group_size: int, step, overlong=None):
        self.ctx, self.reward, self.every, self.group_size, self.step = ctx, reward, every, group_size, step
        self.overlong = overlong
        self.draws: dict[int, int] = {}

    def __call__(self, example) -> None:
        import numpy as np

        step = self.step()
        if not self.every or (step != 1 and step % self.every) or self.reward.last_call is None:
            return
        draw = self.draws[step] = self.draws.get(step, -1) + 1
        prompts, completions, scores, totals = self.reward.last_call
        if self.overlong is not None:
            scores = {**scores, "overlong_penalty": self.overlong.last}
            totals = [t + p for t, p in zip(totals, self.overlong.last, strict=True)]
        mask = np.asarray(example.completion_mask)
        lengths = mask.sum(axis=-1)
        advantages = np.asarray(example.advantages, dtype=float)
        if advantages.ndim == 2:  # per-token advantages (distillation): each completion's mean
            advantages = (advantages * mask).sum(axis=-1) / np.maximum(lengths, 1)
        rows = [{"step": step, "draw": draw, "group": i // self.group_size, "prompt": prompts[i],
                 "completion": completions[i], **{f"reward/{name}": values[i] for name, values in scores.items()},
                 "total": totals[i], "advantage": float(advantages[i]), "length": int(lengths[i])}
                for i in range(len(completions))]
        if self.ctx.is_primary:
            with open(self.ctx.dir / "rollouts.jsonl", "a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(row) + "\n" for row in rows)
        columns = list(rows[0])
        self.ctx.log_rows("rollouts", columns, [[row[c] for c in columns] for row in rows], step)


def overlong_reward(tokenizer, max_tokens: int, settings, on_metrics):
    """DAPO's soft overlong penalty as one more of Tunix's reward functions (summed with the
    recipe's rewards), the completion's length counted in the tokenizer's tokens."""

    def overlong_penalty(prompts, completions, **_):
        lengths = [len(tokenizer.encode(text)) for text in completions]
        scores = grpo_algorithms.overlong_penalty(lengths, max_tokens, settings.overlong_buffer,
                                                  settings.overlong_penalty)
        on_metrics({"train/overlong/penalised_fraction": float((scores < 0).mean()),
                    "train/overlong/mean_penalty": float(scores.mean())})
        overlong_penalty.last = scores.tolist()  # for the rollout log
        return overlong_penalty.last

    return overlong_penalty


class GRPOStage:
    Config = GRPOConfig
    # the trainer, the KL reference, the sampler, and a reward's local judge model
    mesh_roles = ("actor", "reference", "rollout", "judge")

    @classmethod
    def check(cls, config: GRPOConfig, recipe, plugins) -> None:
        """Before anything trains: settings that contradict the recipe's model or this machine."""
        from reasonlab.errors import RecipeError

        if config.reference == "base" and not recipe.model.lora:
            raise RecipeError('reference = "base" is the backbone under the LoRA adapters; this model has no LoRA',
                              where="reference", hint='set model.lora, or use reference = "initial"')
        check_rollout_engine(config, "")
        if config.top_p is None:  # Tunix's sampler: no top_p means greedy decoding, whatever the temperature
            raise RecipeError("top_p is unset: Tunix's sampler then decodes greedily, so every completion of a group "
                              "is the same and no group carries a signal", where="top_p",
                              hint="set top_p (1.0 samples from the whole distribution; top_k still applies)")
        settings = grpo_algorithms.resolve(config)
        if settings.epsilon_high < settings.epsilon:
            raise RecipeError(f"epsilon_high ({settings.epsilon_high:g}) is below epsilon ({settings.epsilon:g}): "
                              "clip-higher widens the upper bound", where="epsilon_high",
                              hint="set epsilon_high >= epsilon, or leave it out (= epsilon)")
        if settings.overlong_buffer > config.max_completion_tokens:
            raise RecipeError(f"overlong_buffer ({settings.overlong_buffer}) is longer than max_completion_tokens "
                              f"({config.max_completion_tokens})", where="overlong_buffer",
                              hint="the penalty ramps over the last overlong_buffer tokens of the budget")

    def token_advantages(self, ctx, bundle, student, log):
        """A stage built on this one may train on per-token advantages instead of the rewards'
        (``example -> [B, T]``; ``student()`` is the policy as it is now); GRPO does not."""
        return None

    def run(self, ctx) -> StageResult:
        from tunix.rl import rl_cluster as rl_cluster_lib
        from tunix.rl.rollout import base_rollout

        from reasonlab.optim import build_optimizer
        from reasonlab.tunix_bridge import trainer_options

        cfg: GRPOConfig = ctx.config
        bundle = ctx.model
        _, budget = ctx.training_data(cfg.data, [cfg.data.question_field],
                                      lambda rows: prompt_records(rows, cfg, bundle.tokenizer, bundle.chat_template),
                                      nothing_left=f"all {{rows}} prompts exceed max_prompt_tokens={cfg.max_prompt_tokens}",
                                      hint="raise max_prompt_tokens")

        check_rollout_engine(cfg, f"stages.{ctx.name}")
        settings = grpo_algorithms.resolve(cfg)
        ctx.progress.print(f"stage {ctx.name!r}: {describe(settings)}")
        if settings.beta == 0:  # no KL term: no reference in memory, no reference forward pass
            reference = None
        else:
            reference = bundle.base if cfg.reference == "base" else frozen_copy(bundle.model)
        optimizer = build_optimizer(cfg)
        rollout = base_rollout.RolloutConfig(
            max_tokens_to_generate=cfg.max_completion_tokens,
            max_prompt_length=cfg.max_prompt_tokens,
            kv_cache_size=cfg.max_prompt_tokens + cfg.max_completion_tokens + 8,
            temperature=cfg.temperature,
            top_k=cfg.top_k or None,
            top_p=cfg.top_p,
            eos_tokens=bundle.stop_ids or None,
            seed=ctx.seed,  # an int: a fresh key per call (a key array is donated after one use)
            **cfg.rollout_options,
        )
        role = rl_cluster_lib.Role
        cluster_config = rl_cluster_lib.ClusterConfig(
            role_to_mesh={role.ACTOR: ctx.meshes.role("actor"), role.REFERENCE: ctx.meshes.role("reference"),
                          role.ROLLOUT: ctx.meshes.role("rollout")},
            rollout_engine=cfg.rollout_engine,
            offload_to_cpu=False,
            training_config=rl_cluster_lib.RLTrainingConfig(
                actor_optimizer=optimizer, **trainer_options(ctx, cfg)),
            rollout_config=rollout,
        )
        def next_step() -> int:  # the actor step a rollout serves (with μ > 1, the first of its μ steps)
            return cluster.actor_trainer.train_steps + 1

        def on_rollout(seconds: float, new_tokens: int) -> None:
            ctx.log({"perf/rollout_seconds": seconds, "perf/rollout_tokens_per_second": new_tokens / seconds},
                    next_step())

        followers = [bundle.base] if bundle.lora else []
        cluster = cluster_class(ctx.meshes, on_rollout, followers,
                                group_size=cfg.num_generations if cfg.shared_prefill else 1)(actor=bundle.model, reference=reference, tokenizer=bundle.tokenizer,
                                           cluster_config=cluster_config)
        # rewards are computed for the step the cluster is about to train (also right after a resume)
        reward = CompositeReward(cfg.rewards, ctx.registry("rewards"), context=ctx.reward_context, fallback=cfg.reward_fallback,
                                 fail_fast=cfg.fail_fast, failures=cfg.reward_failures,
                                 max_failure_rate=cfg.reward_max_failure_rate,
                                 failure_window=cfg.reward_failure_window, group_size=cfg.num_generations,
                                 errors_path=ctx.dir / "reward_errors.jsonl", warn=ctx.progress.print,
                                 where=f"stages.{ctx.name}.rewards", deadline=cfg.reward_deadline,
                                 on_metrics=lambda metrics: ctx.log(metrics, next_step()))
        reward_fns = [reward]
        if settings.overlong_buffer:
            reward_fns.append(overlong_reward(bundle.tokenizer, cfg.max_completion_tokens, settings,
                                              lambda metrics: ctx.log(metrics, next_step())))
        if ctx.is_primary:  # resumed: the steps after the checkpoint are redone, and logged again
            drop_rows_after(ctx.dir / "rollouts.jsonl", cluster.actor_trainer.train_steps)
        rollout_log = RolloutLog(ctx, reward, cfg.rollout_log_every, cfg.num_generations, next_step,
                                 overlong=reward_fns[1] if settings.overlong_buffer else None)
        learner = learner_class()(
            rl_cluster=cluster,
            algo_config=grpo_algorithms.tunix_config(settings, cfg.num_generations, cfg.num_iterations,
                                                     KL_LOSS_MODES[cfg.kl_estimator]),
            reward_fns=reward_fns, settings=settings, max_completion_tokens=cfg.max_completion_tokens,
            more_prompts=training_batches(budget.kept, cfg, ctx.seed + 1, endless=True),
            on_metrics=lambda metrics: ctx.log(metrics, next_step()), on_rolled_out=rollout_log,
            token_advantages=self.token_advantages(ctx, bundle, lambda: cluster.actor_trainer.model,
                                                   lambda metrics: ctx.log(metrics, next_step())),
        )
        evaluations = ctx.evaluation_hooks()  # eval_every: held-out evaluations between steps
        if evaluations is not None:
            cluster.actor_trainer.with_training_hooks(evaluations)
        try:
            batches = first_drawn(training_batches(budget.kept, cfg, ctx.seed, ctx.should_stop))
            if batches is not None:  # None: a stop (time budget, signal) came before the first step
                with ctx.meshes.role("actor"):
                    learner.train(batches)
        finally:
            reward.close()
            ctx.progress.print(summary_table(reward.summary(), f"rewards of stage {ctx.name!r}"))
        ctx.stop_if_requested(cluster.actor_trainer.train_steps, cfg.steps)
        bundle.model = cluster.actor_trainer.model
        if evaluations is not None:
            evaluations.after_training(cluster.actor_trainer.train_steps)
        return StageResult(bundle, {"steps": float(cluster.actor_trainer.train_steps)})


@hookimpl
def register_stages(register):
    register("grpo", GRPOStage)
