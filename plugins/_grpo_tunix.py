"""The Tunix side of the GRPO stage: the learner and cluster subclasses, the lean loss and the
reference model. ``stage_grpo`` builds a stage from these; private Tunix names are reached only
through ``reasonlab.private_api``'s base classes."""

from __future__ import annotations

from reasonlab_plugins import _grpo_algorithms as grpo_algorithms


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

    from reasonlab import logprobs, private_api

    class LeanGRPOLearner(private_api.grpo_learner_base()):
        def __init__(self, *, settings, more_prompts=None, max_completion_tokens: int = 0, on_metrics=None,
                     on_rolled_out=lambda example: None, token_advantages=None, **kwargs):
            super().__init__(**kwargs)
            self.settings, self.more_prompts = settings, more_prompts
            self.max_completion_tokens, self.on_metrics = max_completion_tokens, on_metrics
            self.on_rolled_out = on_rolled_out  # each rolled-out batch (training), before any masking
            # example -> [B, T] advantages that replace the reward's (on-policy distillation)
            self.token_advantages = token_advantages
            self.extra_draws = 0
            trainer = self.rl_cluster.actor_trainer
            if not logprobs.supported(trainer.model):
                return
            pad_id, eos_id = self.rl_cluster.rollout.pad_id(), self.rl_cluster.rollout.eos_id()
            # as Tunix does: the loss reads the learner's config, not the traced argument
            trainer.with_loss_fn(lambda model, train_example, algo_config: lean_grpo_loss(
                model, train_example, self.algo_config, pad_id, eos_id, remat=True), has_aux=True)
            trainer.with_rl_metrics_to_log({"kl": np.mean, "pg_clipfrac": np.mean, "entropy": np.mean})

        def prepare_batch(self, training_input, mode):
            example = self._rolled_out(training_input, mode)
            if mode != rl_cluster_lib.Mode.TRAIN or not self.settings.dynamic_sampling:
                return example
            example, stats = grpo_algorithms.fill_with_informative_groups(
                example, lambda: self._rolled_out(self._next_prompts(), mode), self.algo_config.num_generations,
                self.settings.max_resample_batches)
            self.on_metrics(stats.metrics(example.advantages.shape[0] // self.algo_config.num_generations))
            return example

        def _rolled_out(self, training_input, mode):
            example = self.roll_out(training_input, mode)
            if mode == rl_cluster_lib.Mode.TRAIN:
                if self.token_advantages is not None:
                    example = example.replace(advantages=self.token_advantages(example))
                self.on_rolled_out(example)
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


def cluster_class(meshes, on_rollout, backbone_followers=(), group_size: int = 1):
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
    (``reasonlab.tunix_bridge.metrics_before_checkpoints``). With ``group_size`` > 1 the
    vanilla rollout prefills each prompt of a group once, not once per generation
    (``reasonlab.private_api.share_prompt_prefill``; the same tokens, benchmarks/README.md).

    On CPU with the rollout on other devices than the actor, its weight sync may also
    copy: ``RLCluster.sync_weights`` forbids explicit host<->device transfers on
    non-TPU/GPU backends, to catch accidental host round trips, but between disjoint CPU
    device slices every reshard *is* a host copy (all CPU "devices" share host memory), so
    the guard refuses a transfer that is correct and cheap there. The subclass repeats the
    sync without the guard in exactly that case; everywhere else Tunix's own method runs.
    """
    import time

    import jax
    from flax import nnx
    from tunix.sft import utils as sft_utils

    from reasonlab import private_api
    from reasonlab.memory import release_free_memory
    from reasonlab.modeling import share_backbone
    from reasonlab.tunix_bridge import metrics_before_checkpoints

    class TimedCluster(private_api.rl_cluster_base()):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if kwargs.get("reference") is not None:
                use_lean_reference(self.inference_worker)
            self.drop_anchor_snapshot()
            private_api.share_prompt_prefill(self.rollout, group_size)
            metrics_before_checkpoints(self.actor_trainer, self.write_buffered_metrics)

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
            reference = self.inference_worker.get_model("reference") if self.reference_shares_backbone() else None
            share_backbone(self.actor_trainer.model, reference, *backbone_followers)

        def sync_weights(self):
            super().sync_weights()
            self.drop_anchor_snapshot()

    if jax.default_backend() != "cpu" or meshes.role("rollout") == meshes.role("actor"):
        return TimedCluster

    class CPUSplitMeshCluster(TimedCluster):
        def sync_weights(self):
            kind = nnx.LoRAParam if sft_utils.is_lora_enabled(self.actor_trainer.model) else nnx.Param
            self.rollout.update_params(nnx.state(self.actor_trainer.model, kind), (kind,))
            self.global_steps += 1

    return CPUSplitMeshCluster
