"""``kind = "grpo"``: GRPO with Tunix's GRPOLearner on an RLCluster (vanilla rollout).

Recipe keys (besides ``TrainingStageConfig``): ``num_generations`` (G), ``algorithm``
("grpo" default, "dr_grpo", "dapo", "gspo": a set of defaults for the next keys,
``reasonlab_plugins.grpo_algorithms`` and docs/algorithms.md), ``beta`` (KL to the
reference; 0 keeps no reference model), ``epsilon`` (= ``epsilon_low``, the clip's lower
side) and ``epsilon_high`` (its upper side: DAPO's clip-higher), ``loss_aggregation``,
``scale_rewards`` ("group", "batch", "none"), ``dynamic_sampling`` with
``max_resample_batches``, ``overlong_buffer`` / ``overlong_penalty`` (DAPO's soft length
penalty, in tokens), ``mask_truncated``, ``temperature``/``top_k``/``top_p`` (rollout
sampler), ``rewards`` (a weighted list of reward plugins, run concurrently by
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
(e.g. ``rollout_vllm_model_version``).

Besides Tunix's metrics, each step logs ``perf/rollout_seconds``,
``perf/rollout_tokens_per_second`` (new tokens generated per second of rollout) and the
policy's mean token entropy (``train/actor/entropy``).

Memory: for Gemma-family models the policy loss and the reference's log-probs come from
``reasonlab.logprobs`` (the vocabulary head on completion tokens only, chunked), not from
full-sequence, full-vocabulary logits; the loss is Tunix's GRPO loss otherwise
(``lean_grpo_loss`` says which parts).
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any, Literal

from pydantic import AliasChoices, Field, NonNegativeInt, PositiveFloat, PositiveInt

from reasonlab import hookimpl
from reasonlab.data import apply_length_budget, render_prompt, require_columns
from reasonlab.errors import DataError
from reasonlab.rewards import CompositeReward, summary_table
from reasonlab.schema import RewardSpec
from reasonlab.stage import StageResult, TrainingStageConfig
from reasonlab_plugins import grpo_algorithms
from reasonlab_plugins.grpo_algorithms import Aggregation


class GRPOConfig(TrainingStageConfig):
    batch_size: PositiveInt = 2
    learning_rate: PositiveFloat = 1e-5
    num_generations: int = Field(4, ge=2)
    algorithm: Literal["grpo", "dr_grpo", "dapo", "gspo"] = "grpo"  # each one's defaults: grpo_algorithms.py
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
    top_k: PositiveInt | None = 50
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
    max_prompt_tokens: PositiveInt = 128
    max_completion_tokens: PositiveInt = 128


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


def frozen_copy(model):
    """The policy as it is now, frozen, for the KL reference. With LoRA only the adapters are
    copied: the backbone arrays are shared (never updated, never donated), so the reference
    costs the adapters' memory instead of a second backbone — and Tunix sees the shared
    backbone and keeps actor and reference on one copy."""
    import jax
    import jax.numpy as jnp
    from flax import nnx
    from tunix.sft import utils as sft_utils

    if not sft_utils.is_lora_enabled(model):
        return nnx.clone(model)
    graphdef, adapters, backbone = nnx.split(model, nnx.LoRAParam, ...)
    return nnx.merge(graphdef, jax.tree.map(jnp.copy, adapters), backbone)


def lean_grpo_loss(model, train_example, algo_config, pad_id: int, eos_id: int, remat: bool = False):
    """Tunix's GRPO policy loss (``tunix.rl.algo_core.grpo_loss_fn``) for what this stage
    configures — the clipped importance ratio (token or, for GSPO, sequence level), clip-higher,
    the KL penalty to the reference and the loss aggregation, read from Tunix's
    ``algo_config`` as Tunix's loss reads them (``grpo_algorithms.policy_loss``) — but with
    log-probs from ``reasonlab.logprobs`` instead of [B, L, V] logits. ``remat`` recomputes
    each decoder layer in the backward pass (``logprobs.layer_remat``); it needs the model
    to come through NNX's transforms, as in Tunix's trainer (flax refuses it on a model
    rebuilt with ``nnx.merge`` inside a plain ``jax.grad``)."""
    import jax.numpy as jnp

    from reasonlab import logprobs

    logps, entropy = logprobs.completion_logps(model, train_example.prompt_ids, train_example.completion_ids,
                                               pad_id, eos_id, algo_config.temperature, remat)
    mask = train_example.completion_mask
    loss, aux = grpo_algorithms.policy_loss(
        logps, train_example.old_per_token_logps, train_example.ref_per_token_logps, train_example.advantages, mask,
        epsilon=algo_config.epsilon, epsilon_high=getattr(algo_config, "epsilon_high", algo_config.epsilon),
        loss_agg_mode=algo_config.loss_agg_mode, sequence_ratio=algo_config.loss_algo == "gspo-token",
        beta=algo_config.beta, kl_loss_mode=algo_config.kl_loss_mode, kl_clamp_value=algo_config.kl_clamp_value)
    aux["entropy"] = (entropy * mask).sum() / jnp.clip(mask.sum(), min=1)
    return loss, aux


def learner_class():
    """Tunix's GRPOLearner, with ``lean_grpo_loss`` as the actor's loss where the model allows,
    and the rollout-side pieces of the algorithm: truncated completions masked out of the loss
    and dynamic sampling (``grpo_algorithms``)."""
    import numpy as np
    from tunix.rl import rl_cluster as rl_cluster_lib
    from tunix.rl.grpo import grpo_learner

    from reasonlab import logprobs

    class LeanGRPOLearner(grpo_learner.GRPOLearner):
        def __init__(self, *, settings, more_prompts=None, max_completion_tokens: int = 0, on_metrics=None, **kwargs):
            super().__init__(**kwargs)
            self.settings, self.more_prompts = settings, more_prompts
            self.max_completion_tokens, self.on_metrics = max_completion_tokens, on_metrics
            self.extra_draws = 0
            trainer = self.rl_cluster.actor_trainer
            if not logprobs.supported(trainer.model):
                return
            pad_id, eos_id = self.rl_cluster.rollout.pad_id(), self.rl_cluster.rollout.eos_id()
            # as Tunix does: the loss reads the learner's config, not the traced argument
            trainer.with_loss_fn(lambda model, train_example, algo_config: lean_grpo_loss(
                model, train_example, self.algo_config, pad_id, eos_id, remat=True), has_aux=True)
            trainer.with_rl_metrics_to_log({"kl": np.mean, "pg_clipfrac": np.mean, "entropy": np.mean})

        def _generate_and_compute_advantage(self, training_input, mode=rl_cluster_lib.Mode.TRAIN):
            example = self._rolled_out(training_input, mode)
            if mode != rl_cluster_lib.Mode.TRAIN or not self.settings.dynamic_sampling:
                return example
            example, stats = grpo_algorithms.fill_with_informative_groups(
                example, lambda: self._rolled_out(self._next_prompts(), mode), self.algo_config.num_generations,
                self.settings.max_resample_batches)
            self.on_metrics(stats.metrics(example.advantages.shape[0] // self.algo_config.num_generations))
            return example

        def _rolled_out(self, training_input, mode):
            example = super()._generate_and_compute_advantage(training_input, mode)
            if self.settings.mask_truncated:
                example, truncated = grpo_algorithms.mask_truncated(example, self.max_completion_tokens)
                self.on_metrics({"train/truncated_fraction": float(np.mean(truncated))})
            return example

        def _next_prompts(self):
            self.extra_draws += 1
            return grpo_algorithms.repeat_for_groups(next(self.more_prompts), self.algo_config.num_generations,
                                                     f"resample{self.extra_draws}")

    return LeanGRPOLearner


def use_lean_reference(worker) -> None:
    """Route the reference's log-probs through ``reasonlab.logprobs``. RLCluster builds its
    inference worker itself, so the lean method is set on that instance."""
    from reasonlab import logprobs

    if not logprobs.supported(worker.get_model("reference")):
        return

    def get_ref_per_token_logps(prompt_tokens, completion_tokens, pad_id, eos_id, temperature=1.0):
        return logprobs.reference_logps(worker.get_model("reference"), prompt_tokens, completion_tokens,
                                        pad_id, eos_id, temperature)

    worker.get_ref_per_token_logps = get_ref_per_token_logps


def cluster_class(meshes, on_rollout, backbone_followers=()):
    """Tunix's RLCluster, timing each rollout (``on_rollout(seconds, new_tokens)``).

    RLCluster also snapshots the whole actor after each weight sync (its "anchor", on the
    ``pinned_host`` memory kind) for old-policy log-probs, which GRPO reads only with
    ``num_iterations > 1``; this stage runs one iteration per batch, and on CPU that
    snapshot is a second full copy of the weights (0.54 GB for Gemma 3 270M), so it is
    dropped. After each train step the reference (and ``backbone_followers``, e.g. the
    bundle's base model) is pointed at the actor's backbone arrays again (LoRA: they are
    equal, but the step returned new ones; ``reasonlab.modeling.share_backbone``), and before each rollout
    and train step freed heap pages go back to the OS (``reasonlab.memory``). Its buffered
    rollout metrics are logged under the actor's step numbers (Tunix counts rollouts from
    0) and are written before each checkpoint
    (``reasonlab.tunix_bridge.metrics_before_checkpoints``).

    On CPU with the rollout on other devices than the actor, its weight sync may also
    copy: ``RLCluster.sync_weights`` forbids explicit host<->device transfers on
    non-TPU/GPU backends, to catch accidental host round trips, but between disjoint CPU
    device slices every reshard *is* a host copy (all CPU "devices" share host memory), so
    the guard refuses a transfer that is correct and cheap there. The subclass repeats the
    sync without the guard in exactly that case; everywhere else Tunix's own method runs.
    """
    import dataclasses
    import time

    import jax
    from flax import nnx
    from tunix.rl import rl_cluster as rl_cluster_lib
    from tunix.sft import utils as sft_utils

    from reasonlab.memory import release_free_memory
    from reasonlab.modeling import share_backbone
    from reasonlab.tunix_bridge import metrics_before_checkpoints

    class TimedCluster(rl_cluster_lib.RLCluster):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if kwargs.get("reference") is not None:
                use_lean_reference(self.inference_worker)
            self._anchor_policy_state = None
            metrics_before_checkpoints(self.actor_trainer, self._write_buffered_metrics)

        def _log_metrics(self, metrics_buffer):
            # Tunix numbers rollouts from 0; the actor's steps, our reward and rollout records from 1
            super()._log_metrics(dataclasses.replace(metrics_buffer, global_steps=metrics_buffer.global_steps + 1))

        def _write_buffered_metrics(self):
            for buffer in self._buffered_train_metrics:
                self._log_metrics(buffer)
            self._buffered_train_metrics.clear()

        def generate(self, *args, **kwargs):
            release_free_memory()
            start = time.perf_counter()
            out = super().generate(*args, **kwargs)
            on_rollout(time.perf_counter() - start, sum(len(tokens) for tokens in out.tokens))
            return out

        def update_actor(self, *args, **kwargs):
            release_free_memory()
            out = super().update_actor(*args, **kwargs)
            self._share_backbone_again()
            return out

        def _share_backbone_again(self):
            if not sft_utils.is_lora_enabled(self.actor_trainer.model):
                return
            shares = rl_cluster_lib.Role.REFERENCE in self._backbone_sharing_map[rl_cluster_lib.Role.ACTOR]
            reference = self.inference_worker.get_model("reference") if shares else None
            share_backbone(self.actor_trainer.model, reference, *backbone_followers)

        def sync_weights(self):
            super().sync_weights()
            self._anchor_policy_state = None

    if jax.default_backend() != "cpu" or meshes.role("rollout") == meshes.role("actor"):
        return TimedCluster

    class CPUSplitMeshCluster(TimedCluster):
        def sync_weights(self):
            kind = nnx.LoRAParam if sft_utils.is_lora_enabled(self.actor_trainer.model) else nnx.Param
            self.rollout.update_params(nnx.state(self.actor_trainer.model, kind), (kind,))
            self.global_steps += 1

    return CPUSplitMeshCluster


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


def overlong_reward(tokenizer, max_tokens: int, settings, on_metrics):
    """DAPO's soft overlong penalty as one more of Tunix's reward functions (summed with the
    recipe's rewards), the completion's length counted in the tokenizer's tokens."""

    def overlong_penalty(prompts, completions, **_):
        lengths = [len(tokenizer.encode(text)) for text in completions]
        scores = grpo_algorithms.overlong_penalty(lengths, max_tokens, settings.overlong_buffer,
                                                  settings.overlong_penalty)
        on_metrics({"train/overlong/penalised_fraction": float((scores < 0).mean()),
                    "train/overlong/mean_penalty": float(scores.mean())})
        return scores.tolist()

    return overlong_penalty


class GRPOStage:
    Config = GRPOConfig

    @classmethod
    def check(cls, config: GRPOConfig, recipe, plugins) -> None:
        """Before anything trains: settings that contradict the recipe's model or this machine."""
        from reasonlab.errors import RecipeError

        if config.reference == "base" and not recipe.model.lora:
            raise RecipeError('reference = "base" is the backbone under the LoRA adapters; this model has no LoRA',
                              where="reference", hint='set model.lora, or use reference = "initial"')
        check_rollout_engine(config, "")
        settings = grpo_algorithms.resolve(config)
        if settings.epsilon_high < settings.epsilon:
            raise RecipeError(f"epsilon_high ({settings.epsilon_high:g}) is below epsilon ({settings.epsilon:g}): "
                              "clip-higher widens the upper bound", where="epsilon_high",
                              hint="set epsilon_high >= epsilon, or leave it out (= epsilon)")
        if settings.overlong_buffer > config.max_completion_tokens:
            raise RecipeError(f"overlong_buffer ({settings.overlong_buffer}) is longer than max_completion_tokens "
                              f"({config.max_completion_tokens})", where="overlong_buffer",
                              hint="the penalty ramps over the last overlong_buffer tokens of the budget")

    def run(self, ctx) -> StageResult:
        from tunix.rl import rl_cluster as rl_cluster_lib
        from tunix.rl.rollout import base_rollout

        from reasonlab.optim import build_optimizer
        from reasonlab.tunix_bridge import trainer_options

        cfg: GRPOConfig = ctx.config
        bundle = ctx.model
        rows = ctx.load_rows(cfg.data)
        require_columns(rows, [cfg.data.question_field], cfg.data)
        budget = prompt_records(rows, cfg, bundle.tokenizer, bundle.chat_template)
        ctx.log({"data/rows": len(rows), "data/dropped_overlength": budget.dropped}, 0)
        if not budget.kept:
            raise DataError(f"all {len(rows)} prompts exceed max_prompt_tokens={cfg.max_prompt_tokens}",
                            where=f"stages.{ctx.name}", hint="raise max_prompt_tokens")

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
            top_k=cfg.top_k,
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
        cluster = cluster_class(ctx.meshes, on_rollout, followers)(actor=bundle.model, reference=reference, tokenizer=bundle.tokenizer,
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
        learner = learner_class()(
            rl_cluster=cluster,
            algo_config=grpo_algorithms.tunix_config(settings, cfg.num_generations, cfg.num_iterations,
                                                     KL_LOSS_MODES[cfg.kl_estimator]),
            reward_fns=reward_fns, settings=settings, max_completion_tokens=cfg.max_completion_tokens,
            more_prompts=training_batches(budget.kept, cfg, ctx.seed + 1, endless=True),
            on_metrics=lambda metrics: ctx.log(metrics, next_step()),
        )
        try:
            with ctx.meshes.role("actor"):
                learner.train(training_batches(budget.kept, cfg, ctx.seed, ctx.should_stop))
        finally:
            reward.close()
            ctx.progress.print(summary_table(reward.summary(), f"rewards of stage {ctx.name!r}"))
        ctx.stop_if_requested(cluster.actor_trainer.train_steps, cfg.steps)
        bundle.model = cluster.actor_trainer.model
        return StageResult(bundle, {"steps": float(cluster.actor_trainer.train_steps)})


@hookimpl
def register_stages(register):
    register("grpo", GRPOStage)
