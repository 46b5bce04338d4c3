"""``kind = "preference"``: DPO, ORPO, SimPO, KTO — any preference loss plugin — on Tunix's DPOTrainer.

Recipe keys (besides ``TrainingStageConfig``):
- ``loss`` — a preference loss plugin ("dpo", "orpo", "simpo", "kto", or a third party's);
  ``loss_options`` its hyperparameters (e.g. ``{ beta = 2.0, gamma_beta_ratio = 0.5 }``).
  Tunix's own DPOTrainer silently trains DPO for an unknown algorithm name; here an
  unknown loss is a recipe error.
- ``pairs`` — where the (chosen, rejected) pairs come from:
  "data": the rows' ``chosen_field`` / ``rejected_field`` columns;
  "self": ``num_samples`` samples per prompt from the current model, ranked by the
  ``rewards`` list (best vs worst; ties skipped) — format-enforcing pairs without a teacher;
  "chosen_data": ``chosen_field`` (or the reasoning/answer target) vs one sample from the model;
  "labelled" (unpaired losses such as KTO only): single completions, the rows'
  ``completion_field`` with a desirable/undesirable ``label_field`` (true/false or 1/0).
  An unpaired loss trains on pairs too: each pair becomes a desirable and an undesirable example.
- ``desirable_per_batch`` (unpaired losses) — how many of each batch's rows are desirable; the
  default keeps the data's proportion. Each batch row also carries another row's completion
  for the same prompt: the mismatched pairs that estimate KTO's KL reference point.
- ``sample_temperature``/``sample_top_k``/``sample_max_tokens`` for sampled pairs.
- ``pair_log_every`` (10; the first step always; 0: none) — the step's pairs with their
  log-probs, implied rewards and margin to ``stages/<name>/pairs.jsonl`` and a growing
  ``pairs`` table in the trackers (W&B: one INCREMENTAL table per stage).
The same length budget as SFT applies (over-long pairs are dropped, never truncated).
Logged per step: loss, reward margin and accuracy, chosen/rejected log-probs and lengths.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, PositiveInt

from reasonlab import hookimpl, private_api
from reasonlab.data import apply_length_budget, render_prompt, render_target, require_columns
from reasonlab.errors import RecipeError
from reasonlab.files import drop_rows_after
from reasonlab.modeling import with_bos
from reasonlab.rewards import CompositeReward
from reasonlab.schema import PluginRef, RewardSpec
from reasonlab.stage import StageResult, TrainingStageConfig


class PreferenceConfig(TrainingStageConfig):
    loss: Annotated[str, PluginRef("losses")] = "dpo"
    loss_options: dict = {}
    pairs: Literal["data", "self", "chosen_data", "labelled"] = "data"
    chosen_field: str = "chosen"
    rejected_field: str = "rejected"
    completion_field: str = "completion"
    label_field: str = "label"
    desirable_per_batch: int | None = Field(None, ge=0)
    rewards: list[RewardSpec] = []
    num_samples: int = Field(4, ge=2)
    sample_temperature: float = Field(1.0, gt=0)
    sample_max_tokens: PositiveInt | None = None  # generation budget for sampled pairs (default: the budget - 1)
    sample_top_k: PositiveInt | None = 50
    learning_rate: float = Field(1e-5, gt=0)
    pair_log_every: NonNegativeInt = 10  # the step's pairs with their log-probs and margins every N steps; 0 = none


def build_pairs(ctx, cfg, rows, prompts):
    """[(prompt, chosen, rejected)] from the configured source."""
    if cfg.pairs == "data":
        require_columns(rows, [cfg.chosen_field, cfg.rejected_field], cfg.data)
        return [(p, str(r[cfg.chosen_field]), str(r[cfg.rejected_field])) for p, r in zip(prompts, rows)]
    from reasonlab.sampling import Generator

    # leave room for the stop token: a sample that ran out of budget is dropped by the length budget
    generate = Generator(ctx.model, cfg.max_prompt_tokens, cfg.sample_max_tokens or cfg.max_completion_tokens - 1,
                         batch_size=8)
    if cfg.pairs == "chosen_data":
        chosen = [str(r[cfg.chosen_field]) if cfg.chosen_field in r else render_target(r, cfg.data) for r in rows]
        sampled, _ = generate(prompts, cfg.sample_temperature, cfg.sample_top_k, ctx.seed)
        return [(p, c, s) for p, c, s in zip(prompts, chosen, sampled) if c.strip() != s.strip()]
    reward = CompositeReward(cfg.rewards, ctx.registry("rewards"), context=ctx.reward_context)
    try:
        draws = [generate(prompts, cfg.sample_temperature, cfg.sample_top_k, ctx.seed + 1000 * k)[0]
                 for k in range(cfg.num_samples)]
        columns = {key: [row.get(key) for row in rows] for key in rows[0]}
        scores = [reward(prompts, d, **columns) for d in draws]
    finally:
        reward.close()
    pairs, ties = [], 0
    for i, prompt in enumerate(prompts):
        ranked = sorted(range(cfg.num_samples), key=lambda k: scores[k][i])
        worst, best = ranked[0], ranked[-1]
        if scores[best][i] == scores[worst][i]:
            ties += 1
            continue
        pairs.append((prompt, draws[best][i], draws[worst][i]))
    ctx.log({"pairs/ties_skipped": ties}, 0)
    return pairs


def desirable(value, row: int, field: str) -> bool:
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    if str(value).strip().lower() in ("true", "false"):
        return str(value).strip().lower() == "true"
    raise RecipeError(f"row {row}: {field} = {value!r} is not a desirable/undesirable label",
                      where="label_field", hint="use true/false or 1/0")


def build_examples(ctx, cfg, rows, prompts):
    """[(prompt, completion, desirable)] for an unpaired loss: labelled rows, or pairs split in two."""
    if cfg.pairs == "labelled":
        require_columns(rows, [cfg.completion_field, cfg.label_field], cfg.data)
        return [(p, str(r[cfg.completion_field]), desirable(r[cfg.label_field], i, cfg.label_field))
                for i, (p, r) in enumerate(zip(prompts, rows))]
    pairs = build_pairs(ctx, cfg, rows, prompts)
    return [(p, c, True) for p, c, _ in pairs] + [(p, r, False) for p, _, r in pairs]


def tokenize_examples(examples, tokenizer, max_prompt: int, max_completion: int):
    encoded = [(with_bos(tokenizer, tokenizer.encode(p)), [*tokenizer.encode(c), tokenizer.eos_id()], label)
               for p, c, label in examples]
    return apply_length_budget(encoded, [(len(p), len(c)) for p, c, _ in encoded], (max_prompt, max_completion))


def desirable_rows(cfg, encoded) -> int:
    """Desirable rows per batch: the recipe's number, else the data's proportion (each class
    present in the data gets at least one row)."""
    good = sum(label for *_, label in encoded)
    if cfg.desirable_per_batch is not None:
        n = cfg.desirable_per_batch
        if n > cfg.batch_size or (n and not good) or (n < cfg.batch_size and good == len(encoded)):
            raise RecipeError(f"desirable_per_batch = {n} does not fit a batch of {cfg.batch_size} from "
                              f"{good} desirable and {len(encoded) - good} undesirable examples",
                              where="desirable_per_batch", hint="leave it unset to keep the data's proportion")
        return n
    n = round(cfg.batch_size * good / len(encoded))
    return min(max(n, 1 if good else 0), cfg.batch_size - (1 if good < len(encoded) else 0))


def tokenize_pairs(pairs, tokenizer, max_prompt: int, max_completion: int):
    encoded = [(with_bos(tokenizer, tokenizer.encode(p)), [*tokenizer.encode(c), tokenizer.eos_id()],
                [*tokenizer.encode(r), tokenizer.eos_id()]) for p, c, r in pairs]
    lengths = [(len(p), max(len(c), len(r))) for p, c, r in encoded]
    return apply_length_budget(encoded, lengths, (max_prompt, max_completion))


def padded_batch(cfg, triples):
    """Tunix's DPO input from (prompt, chosen, rejected) token lists: prompts left-padded,
    completions right-padded, always the full budget (one compiled shape)."""
    import numpy as np
    from tunix.sft.dpo.dpo_trainer import TrainingInput

    shape_p, shape_c = (cfg.batch_size, cfg.max_prompt_tokens), (cfg.batch_size, cfg.max_completion_tokens)
    arrays = {k: np.zeros(shape_p if k.startswith("prompt") else shape_c, np.int32)
              for k in ("prompt_ids", "prompt_mask", "chosen_ids", "chosen_mask", "rejected_ids", "rejected_mask")}
    for row, (prompt, chosen, rejected) in enumerate(triples):
        arrays["prompt_ids"][row, -len(prompt):] = prompt
        arrays["prompt_mask"][row, -len(prompt):] = 1
        for name, ids in (("chosen", chosen), ("rejected", rejected)):
            arrays[f"{name}_ids"][row, : len(ids)] = ids
            arrays[f"{name}_mask"][row, : len(ids)] = 1
    return TrainingInput(**arrays)


def batches(encoded, cfg, seed: int, should_stop, on_batch=lambda step, rows: None):
    """Left-padded prompts, right-padded completions, fixed shapes (one compile)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    order: list[int] = []
    for step in range(1, cfg.steps + 1):
        if should_stop():
            return
        while len(order) < cfg.batch_size:
            order += rng.permutation(len(encoded)).tolist()
        chosen_rows, order = order[: cfg.batch_size], order[cfg.batch_size:]
        on_batch(step, [encoded[i] for i in chosen_rows])
        yield padded_batch(cfg, [encoded[i] for i in chosen_rows])


def unpaired_batches(encoded, cfg, n_desirable: int, seed: int, should_stop, on_batch=lambda step, rows: None):
    """Batches of single completions, the desirable rows first; the "rejected" slot of row i
    holds row i+1's completion (for row i's prompt): the mismatched pairs of KTO's KL estimate."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pools = [[i for i, e in enumerate(encoded) if e[2]], [i for i, e in enumerate(encoded) if not e[2]]]
    queues: list[list[int]] = [[], []]
    counts = (n_desirable, cfg.batch_size - n_desirable)
    for step in range(1, cfg.steps + 1):
        if should_stop():
            return
        picked = []
        for pool, queue, count in zip(pools, queues, counts):
            while len(queue) < count:
                queue += rng.permutation(pool).tolist()
            picked += queue[:count]
            del queue[:count]
        rows = [encoded[i] for i in picked]
        on_batch(step, rows)
        yield padded_batch(cfg, [(prompt, completion, rows[(row + 1) % len(rows)][1])
                                 for row, (prompt, completion, _) in enumerate(rows)])


def sequence_logps(model, example):
    """Summed completion log-probs of the chosen (first half) and rejected rows: Tunix's
    ``dpo_trainer.compute_logps``, through ``reasonlab.logprobs`` where the model allows
    (no full-sequence, full-vocabulary logits; decoder layers rematerialised in the
    backward pass)."""
    from tunix.sft.dpo import dpo_trainer

    from reasonlab import logprobs

    if not logprobs.supported(model):
        return dpo_trainer.compute_logps(model, example.input_ids, example.positions, example.attention_mask,
                                         example.logits_to_keep, example.completion_mask)
    token_logps, _ = logprobs.sequence_logps(model, example.input_ids, example.positions, example.attention_mask,
                                             example.logits_to_keep, remat=True)
    totals = (token_logps * example.completion_mask).sum(axis=-1)
    half = totals.shape[0] // 2
    return totals[:half], totals[half:]


def make_loss_fn(loss, options: dict):
    """A Tunix DPOTrainer loss: sequence log-probs from Tunix, the formula from the plugin."""
    import jax.numpy as jnp

    def loss_fn(model, train_example):
        chosen, rejected = sequence_logps(model, train_example)
        half = train_example.completion_mask.shape[0] // 2
        lengths = jnp.maximum(train_example.completion_mask.sum(axis=-1), 1.0)
        c_len, r_len = lengths[:half], lengths[half:]
        ref_c = train_example.ref_chosen_logps if train_example.ref_chosen_logps is not None else 0.0
        ref_r = train_example.ref_rejected_logps if train_example.ref_rejected_logps is not None else 0.0
        losses, c_reward, r_reward = loss(chosen, rejected, c_len, r_len, ref_c, ref_r, **options)
        return losses.mean(), {
            "pairs/margin": jnp.stack([chosen, rejected, c_reward, r_reward], axis=-1),  # PairLog's rows
            "rewards/chosen": c_reward.mean(), "rewards/rejected": r_reward.mean(),
            "rewards/margin": (c_reward - r_reward).mean(), "rewards/accuracy": (c_reward > r_reward).mean(),
            "log_probs/chosen": chosen.mean(), "log_probs/rejected": rejected.mean(),
            "lengths/chosen": c_len.mean(), "lengths/rejected": r_len.mean(),
        }

    return loss_fn


def make_unpaired_loss_fn(loss, options: dict, n_desirable: int):
    """The same for an unpaired loss: the first half holds each row's own completion, the
    second the mismatched one; rows below ``n_desirable`` are the desirable ones."""
    import jax.numpy as jnp

    def mean_where(values, mask):
        return jnp.where(mask, values, 0.0).sum() / jnp.maximum(mask.sum(), 1)

    def loss_fn(model, train_example):
        logps, kl_logps = sequence_logps(model, train_example)
        half = train_example.completion_mask.shape[0] // 2
        lengths = jnp.maximum(train_example.completion_mask.sum(axis=-1), 1.0)
        ref, ref_kl = train_example.ref_chosen_logps, train_example.ref_rejected_logps
        good = jnp.arange(half) < n_desirable
        losses, reward, reference_point = loss(logps, kl_logps, lengths[:half], lengths[half:], ref, ref_kl, good,
                                               **options)
        right_side = jnp.where(good, reward > reference_point, reward < reference_point)
        return losses.mean(), {
            "pairs/margin": jnp.stack([logps, kl_logps, reward, jnp.broadcast_to(reference_point, reward.shape)], -1),
            "rewards/chosen": mean_where(reward, good), "rewards/rejected": mean_where(reward, ~good),
            "rewards/margin": mean_where(reward, good) - mean_where(reward, ~good),
            "rewards/accuracy": right_side.mean(), "rewards/reference_point": reference_point,
            "log_probs/chosen": mean_where(logps, good), "log_probs/rejected": mean_where(logps, ~good),
            "lengths/chosen": mean_where(lengths[:half], good), "lengths/rejected": mean_where(lengths[:half], ~good),
        }

    return loss_fn


class PairLog:
    """Every ``every`` steps (and the first), each pair the step trained on — prompt, chosen,
    rejected, the policy's summed log-probs and the loss's implied rewards and margin — to
    ``stages/<name>/pairs.jsonl`` and the trackers' growing ``pairs`` table (an unpaired loss:
    each example with its label, reward and the reference point it is measured against).

    The numbers come out of the compiled step as an aux value whose aggregation (``capture``)
    Tunix calls once per step, in step order, when it writes that step's metrics."""

    def __init__(self, ctx, every: int, tokenizer, unpaired: bool, n_desirable: int = 0):
        self.ctx, self.every, self.tokenizer, self.unpaired, self.n_desirable = ctx, every, tokenizer, unpaired, n_desirable
        self.texts: dict[int, list] = {}
        self.next_step = 1  # the step Tunix writes next: set from the (restored) trainer

    def wanted(self, step: int) -> bool:
        return bool(self.every) and (step == 1 or step % self.every == 0)

    def on_batch(self, step: int, rows: list) -> None:
        if self.wanted(step):
            self.texts[step] = rows

    def capture(self, values) -> float:
        import numpy as np

        step, self.next_step = self.next_step, self.next_step + 1
        array = np.concatenate([np.asarray(v, dtype=float).reshape(-1, 4) for v in values])
        rows = self.texts.pop(step, None)
        if rows is not None:
            self.write(step, rows, array)
        return float((array[:, 2] - array[:, 3]).mean())  # chosen - rejected; unpaired: reward - reference point

    def write(self, step: int, rows: list, array) -> None:
        decode = lambda ids: self.tokenizer.decode([t for t in ids if t != self.tokenizer.eos_id()])  # noqa: E731
        out = []
        for i, (row, values) in enumerate(zip(rows, array)):
            prompt = decode(row[0][1:])  # without the bos
            if self.unpaired:
                out.append({"step": step, "prompt": prompt, "completion": decode(row[1]),
                            "desirable": i < self.n_desirable, "logp": values[0], "reward": values[2],
                            "reference_point": values[3]})
            else:
                out.append({"step": step, "prompt": prompt, "chosen": decode(row[1]), "rejected": decode(row[2]),
                            "chosen_logp": values[0], "rejected_logp": values[1], "chosen_reward": values[2],
                            "rejected_reward": values[3], "margin": values[2] - values[3]})
        if self.ctx.is_primary:
            with open(self.ctx.dir / "pairs.jsonl", "a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(row) + "\n" for row in out)
        columns = list(out[0])
        self.ctx.log_rows("pairs", columns, [[row[c] for c in columns] for row in out], step)


class PreferenceStage:
    Config = PreferenceConfig
    mesh_roles = ("judge",)  # a local judge model of a reward that ranks pairs

    @classmethod
    def check(cls, config: PreferenceConfig, recipe, plugins) -> None:
        """Before anything trains: a loss that is not a preference loss; self-ranked pairs without rewards."""
        if not hasattr(plugins.registry("losses").get(config.loss), "needs_reference"):
            raise RecipeError(f"loss {config.loss!r} is not a preference loss (it has no needs_reference)",
                              where="loss", hint="use dpo, orpo, simpo or a preference loss plugin")
        if config.pairs == "self" and not config.rewards:
            raise RecipeError('pairs = "self" ranks samples with rewards; list some', where="rewards")
        unpaired = getattr(plugins.registry("losses").get(config.loss), "unpaired", False)
        if config.pairs == "labelled" and not unpaired:
            raise RecipeError(f'pairs = "labelled" gives single completions; loss {config.loss!r} needs pairs',
                              where="pairs", hint='use an unpaired loss such as "kto", or pairs = "data"')
        if config.desirable_per_batch is not None and not unpaired:
            raise RecipeError(f"desirable_per_batch applies to unpaired losses, not {config.loss!r}",
                              where="desirable_per_batch", hint="remove it")

    def run(self, ctx) -> StageResult:
        import numpy as np
        from flax import nnx
        from tunix.sft import metrics_logger
        from tunix.sft.dpo import dpo_trainer

        from reasonlab.tunix_bridge import metrics_before_checkpoints, trainer_options
        from reasonlab.optim import build_optimizer

        cfg: PreferenceConfig = ctx.config
        bundle = ctx.model
        loss = ctx.registry("losses").get(cfg.loss)  # a preference loss: PreferenceStage.check
        unpaired = getattr(loss, "unpaired", False)
        def encode(rows):
            prompts = [render_prompt(r, cfg.data, bundle.chat_template) for r in rows]
            if unpaired:
                return tokenize_examples(build_examples(ctx, cfg, rows, prompts), bundle.tokenizer,
                                         cfg.max_prompt_tokens, cfg.max_completion_tokens)
            return tokenize_pairs(build_pairs(ctx, cfg, rows, prompts), bundle.tokenizer,
                                  cfg.max_prompt_tokens, cfg.max_completion_tokens)

        unit = "examples" if unpaired else "pairs"
        _, budget = ctx.training_data(cfg.data, [cfg.data.question_field], encode, kept_as=f"data/{unit}",
                                      nothing_left=f"no preference {unit} left from {{rows}} rows (ties or length budget)",
                                      hint="check pairs, rewards and max_*_tokens")
        reference = nnx.clone(bundle.model) if loss.needs_reference else None
        trainer = dpo_trainer.DPOTrainer(
            model=bundle.model, ref_model=reference, optimizer=build_optimizer(cfg),
            training_config=dpo_trainer.DPOTrainingConfig(**trainer_options(ctx, cfg)))
        more_metrics = {"lengths/chosen": np.mean, "lengths/rejected": np.mean}
        n_desirable = desirable_rows(cfg, budget.kept) if unpaired else 0
        pair_log = PairLog(ctx, cfg.pair_log_every, bundle.tokenizer, unpaired, n_desirable)
        pair_log.next_step = trainer.train_steps + 1  # after a restore: the first step this session trains
        if ctx.is_primary:
            drop_rows_after(ctx.dir / "pairs.jsonl", trainer.train_steps)  # those steps are redone
        more_metrics["pairs/margin"] = pair_log.capture  # the mean margin (unpaired: over the reference point)
        if unpaired:
            ctx.log({"data/desirable_per_batch": n_desirable}, 0)
            trainer.with_loss_fn(make_unpaired_loss_fn(loss, dict(cfg.loss_options), n_desirable), has_aux=True)
            data = unpaired_batches(budget.kept, cfg, n_desirable, ctx.seed, ctx.should_stop, pair_log.on_batch)
            more_metrics["rewards/reference_point"] = np.mean
        else:
            trainer.with_loss_fn(make_loss_fn(loss, dict(cfg.loss_options)), has_aux=True)
            data = batches(budget.kept, cfg, ctx.seed, ctx.should_stop, pair_log.on_batch)
        trainer.with_gen_model_input_fn(lambda example: {"train_example": example})  # options live in the closure
        private_api.log_more_aux_metrics(trainer, more_metrics)
        metrics_before_checkpoints(trainer)
        ctx.train(trainer, data, cfg.steps)
        history = trainer.metrics_logger
        metrics = {unit: float(len(budget.kept))}
        for key in ("loss", "rewards/accuracy", "rewards/margin"):
            if history.metric_exists("", key, metrics_logger.Mode.TRAIN):
                values = history.get_metric_history("", key, metrics_logger.Mode.TRAIN)
                metrics[f"first_{key.replace('/', '_')}"] = float(values[0])
                metrics[f"final_{key.replace('/', '_')}"] = float(values[-1])
        return StageResult(bundle, metrics)


@hookimpl
def register_stages(register):
    register("preference", PreferenceStage)
