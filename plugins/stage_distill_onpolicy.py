"""``kind = "on_policy_distill"``: the student samples, a teacher model scores every sampled
token, and the per-token reverse KL is the training signal (Agarwal et al. 2024, "On-Policy
Distillation of Language Models"; Thinking Machines' "On-Policy Distillation", 2025 — the
method of the hackathon's honourable mention "Eliciting Reasoning via On-Policy
Distillation", ../shared/seeds/).

Each completion token x_t sampled from the student π gets the advantage
``-reverse_kl_coef * (log π(x_t) - log π_teacher(x_t))``: tokens the teacher finds likelier
than the student are pushed up, the others down, and the expected update lowers
KL(π || π_teacher) on the student's own samples. It runs on the GRPO stage's machinery
(Tunix's RLCluster and learner, our lean loss, ``num_iterations``, the optimiser keys), with
the advantages replaced; ``rewards`` are optional (logged, not trained on). Keys besides
GRPO's: ``teacher`` (any model preset: ``{ preset = "...", path = "..." }``; it must share
the student's tokenizer), ``reverse_kl_coef`` (1.0). Defaults that differ from GRPO's:
``temperature = 1.0``, ``top_k`` off and ``top_p = 1.0`` (so the sampled tokens' log-probs are
the student's, untruncated; on a 262k vocabulary top-p sorts every logit, slow on a CPU),
``beta = 0`` (the teacher is the anchor). The teacher goes on the
``teacher`` mesh role when the recipe gives one. Logged per step: ``train/distill/reverse_kl``
(the mean over sampled tokens of log π - log π_teacher, before the step's update).
"""

from __future__ import annotations

from pydantic import Field, PositiveFloat, PositiveInt

from reasonlab import hookimpl
from reasonlab.schema import ModelSpec, RewardSpec
from reasonlab_plugins.stage_grpo import GRPOConfig, GRPOStage


class OnPolicyDistillConfig(GRPOConfig):
    teacher: ModelSpec
    reverse_kl_coef: PositiveFloat = 1.0
    rewards: list[RewardSpec] = []
    beta: float | None = Field(0.0, ge=0.0)
    temperature: PositiveFloat = 1.0
    top_k: PositiveInt | None = None
    top_p: float | None = Field(1.0, gt=0.0, le=1.0)  # top-p mode with p = 1: the whole distribution


def same_tokenizer(student, teacher) -> bool:
    probe = "<reasoning>2 + 3 = 5</reasoning><answer>5</answer> Étude, naïve: 12,345."
    return student.vocab_size == teacher.vocab_size and student.encode(probe) == teacher.encode(probe)


class OnPolicyDistillStage(GRPOStage):
    Config = OnPolicyDistillConfig
    mesh_roles = (*GRPOStage.mesh_roles, "teacher")

    def token_advantages(self, ctx, bundle, student, log):
        import jax.numpy as jnp
        import numpy as np

        from reasonlab import logprobs
        from reasonlab.errors import RecipeError
        from reasonlab.modeling import load_model

        cfg: OnPolicyDistillConfig = ctx.config
        teacher = load_model(ctx.plugins, cfg.teacher, ctx.meshes.role("teacher"))
        if not same_tokenizer(bundle.tokenizer, teacher.tokenizer):
            raise RecipeError(f"the teacher {cfg.teacher.preset!r} does not share the student's tokenizer "
                              f"({bundle.preset!r}): per-token log-probs cannot be compared",
                              where=f"stages.{ctx.name}.teacher", hint="pick a teacher of the same model family")
        pad_id, eos_id = bundle.tokenizer.pad_id(), bundle.tokenizer.eos_id()

        def advantages(example):
            args = (example.prompt_ids, example.completion_ids, pad_id, eos_id)
            own = logprobs.reference_logps(student(), *args)
            theirs = logprobs.reference_logps(teacher.model, *args)
            mask = example.completion_mask.astype(jnp.float32)
            reverse_kl = (own - theirs) * mask
            log({"train/distill/reverse_kl": float(np.asarray(reverse_kl.sum() / jnp.clip(mask.sum(), min=1)))})
            return -cfg.reverse_kl_coef * reverse_kl

        return advantages


@hookimpl
def register_stages(register):
    register("on_policy_distill", OnPolicyDistillStage)
