"""``kind = "sft"``: supervised fine-tuning with Tunix's PeftTrainer.

Trains LoRA params when the recipe's ``[model.lora]`` is set, else all params. The
loss covers completion tokens only (``loss``, default "cross_entropy", from the loss
plugins). Every batch has the same shape (prompt + completion budget), so XLA
compiles the step once. Recipe keys: see ``TrainingStageConfig`` and ``SFTConfig``.
"""

from __future__ import annotations

from typing import Annotated


from reasonlab import hookimpl
from reasonlab.data import apply_length_budget, render_prompt, render_target
from reasonlab.errors import DataError
from reasonlab.modeling import with_bos
from reasonlab.schema import PluginRef
from reasonlab.stage import StageResult, TrainingStageConfig


class SFTConfig(TrainingStageConfig):
    """``loss`` names a loss plugin; ``loss_options`` are its keyword arguments."""

    loss: Annotated[str, PluginRef("losses")] = "cross_entropy"
    loss_options: dict = {}


def with_options(loss_fn, options: dict, where: str):
    """``loss_fn`` with the recipe's ``loss_options`` bound; an option it does not take is a recipe error."""
    import functools
    import inspect

    from reasonlab.errors import RecipeError

    if not options:
        return loss_fn
    parameters = inspect.signature(loss_fn).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    unknown = [k for k in options if k not in parameters and not takes_any]
    if unknown:
        raise RecipeError(f"the loss takes no option {unknown[0]!r}", where=f"{where}.loss_options.{unknown[0]}",
                          hint=f"its parameters: {', '.join(parameters)}")
    return functools.partial(loss_fn, **options)


def tokenize_examples(rows, spec, tokenizer, max_prompt: int, max_completion: int, chat_template: str | None = None):
    """(prompt ids with bos, completion ids with eos) per row, over-long rows dropped."""
    pairs = [
        (with_bos(tokenizer, tokenizer.encode(render_prompt(r, spec, chat_template))),
         [*tokenizer.encode(render_target(r, spec)), tokenizer.eos_id()])
        for r in rows
    ]
    return apply_length_budget(pairs, [(len(p), len(c)) for p, c in pairs], (max_prompt, max_completion))


def batches(pairs, steps: int, batch_size: int, seq_len: int, seed: int, should_stop=lambda: False,
            shuffle: bool = True, process: tuple[int, int] = (0, 1), pad_id: int = 0):
    """``steps`` fixed-shape batches over shuffled epochs: tokens (padded with ``pad_id``) and
    completion mask.

    The order depends only on ``seed``, so a resumed trainer that skips the batches it
    already consumed sees exactly the same data. Ends early when ``should_stop()``.
    In a multi-process run (``process`` = (index, count)) each process yields its own
    slice of every global batch; Tunix assembles the global array from the slices.
    """
    import numpy as np
    from tunix.sft.peft_trainer import TrainingInput

    rng = np.random.default_rng(seed)
    order: list[int] = []
    for _ in range(steps):
        if should_stop():
            return
        while len(order) < batch_size:
            order += rng.permutation(len(pairs)).tolist() if shuffle else list(range(len(pairs)))
        chosen, order = order[:batch_size], order[batch_size:]
        tokens = np.full((batch_size, seq_len), pad_id, np.int32)
        mask = np.zeros((batch_size, seq_len), np.int32)
        for row, index in enumerate(chosen):
            prompt, completion = pairs[index]
            tokens[row, : len(prompt) + len(completion)] = prompt + completion
            mask[row, len(prompt): len(prompt) + len(completion)] = 1
        process_index, process_count = process
        local = batch_size // process_count
        mine = slice(process_index * local, (process_index + 1) * local)
        yield TrainingInput(input_tokens=tokens[mine], input_mask=mask[mine])


def model_inputs(pad_id: int):
    from tunix.sft import utils as sft_utils

    def gen(x):
        padding = x.input_tokens != pad_id
        return {
            "input_tokens": x.input_tokens,
            "input_mask": x.input_mask,
            "positions": sft_utils.build_positions_from_mask(padding),
            "attention_mask": sft_utils.make_causal_attn_mask(padding),
        }

    return gen


class SFTStage:
    Config = SFTConfig

    @classmethod
    def check(cls, config: SFTConfig, recipe, plugins) -> None:
        """Before anything trains: each process feeds an equal slice of every batch."""
        import os

        from reasonlab import distributed

        count = distributed.process_count() if distributed.process_count() > 1 else int(
            os.environ.get("JAX_NUM_PROCESSES", "1") or 1)
        if config.batch_size % count:
            raise DataError(f"batch_size {config.batch_size} does not split over {count} processes",
                            where="batch_size", hint="use a multiple of the process count")

    def run(self, ctx) -> StageResult:
        from tunix.sft import peft_trainer

        from reasonlab.optim import build_optimizer
        from reasonlab.tunix_bridge import metrics_before_checkpoints, trainer_options

        cfg: SFTConfig = ctx.config
        bundle = ctx.model
        columns = [cfg.data.question_field] + ([cfg.data.completion_field] if cfg.data.completion_field
                                               else [cfg.data.reasoning_field, cfg.data.answer_field])
        _, budget = ctx.training_data(
            cfg.data, columns, lambda rows: tokenize_examples(rows, cfg.data, bundle.tokenizer, cfg.max_prompt_tokens,
                                                              cfg.max_completion_tokens, bundle.chat_template),
            nothing_left=f"all {{rows}} rows exceed the length budget ({cfg.max_prompt_tokens} prompt / "
                         f"{cfg.max_completion_tokens} completion tokens)",
            hint="raise max_prompt_tokens / max_completion_tokens")
        trainer = peft_trainer.PeftTrainer(
            bundle.model,
            build_optimizer(cfg),
            peft_trainer.TrainingConfig(**trainer_options(ctx, cfg)),
        )
        loss_fn = with_options(ctx.registry("losses").get(cfg.loss), cfg.loss_options, f"stages.{ctx.name}")
        trainer = trainer.with_gen_model_input_fn(model_inputs(bundle.tokenizer.pad_id())).with_loss_fn(loss_fn)
        metrics_before_checkpoints(trainer)
        seq_len = cfg.max_prompt_tokens + cfg.max_completion_tokens
        ctx.train(trainer, batches(budget.kept, cfg.steps, cfg.batch_size, seq_len, ctx.seed, ctx.should_stop,
                                   shuffle=cfg.data.order == "shuffle", process=(ctx.process_index, ctx.process_count),
                                   pad_id=bundle.tokenizer.pad_id()),
                  cfg.steps)
        metrics = {"dropped_overlength": budget.dropped}
        losses = ctx.history("train/loss")  # across resumes: the first is step 1's, not the restored step's
        if losses:
            metrics |= {"first_loss": float(min(losses)[1]), "final_loss": float(max(losses)[1])}
        return StageResult(bundle, metrics)


@hookimpl
def register_stages(register):
    register("sft", SFTStage)
