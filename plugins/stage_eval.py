"""``kind = "eval"``: generate on held-out prompts and score format and answers.

Put one before training and one after to get before/after figures in ``summary.json``.
Protocols (``protocol``):
- ``greedy`` — the hackathon's: top_k 1, seed 42, up to ``max_completion_tokens`` (768);
- ``consensus`` — one sample per temperature in ``temperatures`` (top_k ``consensus_top_k``),
  majority vote of the parsed answers; ``consensus_accuracy`` counts an item whose vote
  produced no answer as wrong, ``consensus_accuracy_answered`` is over the ``consensus_answered``
  items only (report both: the 2B-think README's 71.3 % is the second, 62/87); also how many
  greedy-wrong items the vote fixed and how many greedy-right items it broke;
- ``passk`` — ``samples`` draws at ``temperature``; unbiased pass@k for each k in ``k``.

``sampled_format = N`` (greedy protocol; 0 by default, 4 in the shipped recipes) also draws N
samples per item at ``temperature`` (0.7) from the ``sample_top_k`` (50) most likely tokens, as
the GRPO rollouts do: the ``sampled_*`` metrics then say how often what the policy *samples*
is well formed, which is what RL trains and greedy decoding can hide.

Metrics: ``format_accuracy`` (strict parse), ``partial_format_credit`` (share of the four
tags present exactly once), ``answer_accuracy`` (the share of items whose ``answer_reward``
score, default "answer_match" with ``answer_options``, reaches ``correct_at`` — 1.0: all of
a code problem's tests, a verifier's full credit), ``answer_score_mean`` (the raw scores'
mean), ``mean_reasoning_words``, ``mean_completion_chars``,
``truncation_rate`` (no stop token within the budget), and ``<metric>/<domain>`` when rows
carry a ``domain``. Each accuracy comes with its 95 % Wilson interval
(``<metric>_ci95_low``/``_high``) and ``n``, the items it is over. ``consensus`` and
``passk`` always report ``sampled_<metric>`` over all their samples: the format rate of what
the policy samples, which greedy decoding can hide.
Writes ``eval.json``, ``samples.jsonl`` and ``items.jsonl`` (each item's row with its
``pass_rate`` over all its completions, and under ``consensus`` its ``consensus_answer`` and
``consensus_correct``: ``source = "stage:NAME"`` with ``max_pass_rate`` reads
back the items the model failed) in the stage folder.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from typing import Annotated, Literal

from pydantic import Field, PositiveInt

from reasonlab import hookimpl
from reasonlab.data import render_prompt, require_columns
from reasonlab.errors import DataError
from reasonlab.format import ANSWER_CLOSE, ANSWER_OPEN, REASONING_CLOSE, REASONING_OPEN, parse_completion, parse_number
from reasonlab.rewards import bind_context
from reasonlab.sampling import Generator
from reasonlab.schema import DataSpec, PluginRef
from reasonlab.stage import StageConfig, StageResult


TAGS = (REASONING_OPEN, REASONING_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)


class EvalConfig(StageConfig):
    data: DataSpec
    protocol: Literal["greedy", "consensus", "passk"] = "greedy"
    max_prompt_tokens: PositiveInt = 256
    max_completion_tokens: PositiveInt = 768
    batch_size: PositiveInt = 8
    seed: int = 42
    temperatures: list[float] = Field([0.2, 0.4, 0.6, 0.8, 1.0], min_length=1)
    consensus_top_k: PositiveInt = 30
    samples: PositiveInt = 4
    temperature: float = Field(0.7, gt=0)
    sampled_format: int = Field(0, ge=0)
    sample_top_k: PositiveInt | None = 50  # sampled_format's draws; None = the whole vocabulary (top-p mode,
    # which sorts every logit per token: Gemma's 262k take minutes per batch on a CPU)
    k: list[PositiveInt] = [1]
    answer_reward: Annotated[str, PluginRef("rewards")] = "answer_match"
    answer_options: dict = {}  # the answer reward's options (e.g. the ones its GRPO stage trains with)
    correct_at: float = Field(1.0, allow_inf_nan=False)  # an answer score at or above this is a right answer


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"k={k} exceeds the {n} samples drawn")
    return 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority(answers: list[str | None]) -> str | None:
    """Most common parsed answer (numbers compared by value); ties go to the first seen."""
    keyed = [(_key(a), a) for a in answers if a]
    if not keyed:
        return None
    counts = Counter(k for k, _ in keyed)
    best = max(counts.values())
    return next(a for k, a in keyed if counts[k] == best)


def _key(answer: str):
    number = parse_number(answer)
    return round(number, 6) if number is not None else answer.strip().lower()


def score_samples(prompts, completions, rows, answer_fn, answer_column: str, correct_at: float = 1.0) -> list[dict]:
    """Score each completion; ``correct`` is 1.0 when the answer reward reaches ``correct_at``
    (so an accuracy is a share of items, whatever the reward's scale), ``score`` its raw value."""
    columns = {key: [row.get(key) for row in rows] for key in rows[0]}
    scores = answer_fn(prompts, completions, **columns)
    out = []
    for prompt, completion, row, score in zip(prompts, completions, rows, scores):
        score = float(score or 0.0)
        parsed = parse_completion(completion)
        reasoning = re.search(r"<reasoning>(.*?)(?:</reasoning>|$)", completion, re.DOTALL)
        out.append({"prompt": prompt, "completion": completion, "answer": parsed.answer,
                    "gold": row.get(answer_column), "format": float(parsed.strict and bool(parsed.answer)),
                    "partial": sum(completion.count(t) == 1 for t in TAGS) / len(TAGS),
                    "reasoning_words": float(len(reasoning.group(1).split())) if reasoning else 0.0,
                    "correct": float(score >= correct_at), "score": score, "domain": row.get("domain")})
    return out


def item_pass_rates(rows: list[dict], greedy: list[dict], extra: list[dict]) -> list[dict]:
    """Each item's row with ``pass_rate`` over all its completions (greedy, then the extra draws,
    which come draw by draw in item order) and ``greedy_correct``."""
    n = len(rows)
    out = []
    for i, row in enumerate(rows):
        results = [greedy[i]["correct"], *(extra[d * n + i]["correct"] for d in range(len(extra) // n))]
        out.append({**row, "pass_rate": sum(results) / len(results), "greedy_correct": greedy[i]["correct"]})
    return out


def interval_of(key: str, rate: float, n: int) -> dict[str, float]:
    """The 95 % Wilson interval of a rate over n items, as ``<key>_ci95_low``/``_high``."""
    from reasonlab.stats import wilson

    low, high = wilson(round(rate * n), n)
    return {f"{key}_ci95_low": low, f"{key}_ci95_high": high}


def summarize(samples: list[dict], prefix: str = "") -> dict[str, float]:
    n = len(samples)
    metrics = {
        f"{prefix}format_accuracy": sum(s["format"] for s in samples) / n,
        f"{prefix}partial_format_credit": sum(s["partial"] for s in samples) / n,
        f"{prefix}answer_accuracy": sum(s["correct"] for s in samples) / n,
        f"{prefix}answer_score_mean": sum(s.get("score", s["correct"]) for s in samples) / n,
        f"{prefix}mean_reasoning_words": sum(s["reasoning_words"] for s in samples) / n,
        f"{prefix}mean_completion_chars": sum(len(s["completion"]) for s in samples) / n,
    }
    for key in ("format_accuracy", "answer_accuracy"):
        metrics |= interval_of(f"{prefix}{key}", metrics[f"{prefix}{key}"], n)
    metrics[f"{prefix}n"] = float(n)
    if "truncated" in samples[0]:
        metrics[f"{prefix}truncation_rate"] = sum(s["truncated"] for s in samples) / n
    domains = {s["domain"] for s in samples if s.get("domain")}
    for domain in sorted(domains) if len(domains) > 1 else []:
        subset = [s for s in samples if s.get("domain") == domain]
        metrics[f"{prefix}format_accuracy/{domain}"] = sum(s["format"] for s in subset) / len(subset)
        metrics[f"{prefix}answer_accuracy/{domain}"] = sum(s["correct"] for s in subset) / len(subset)
    return metrics


class EvalStage:
    Config = EvalConfig
    mesh_roles = ("judge",)  # a local judge model of the answer reward
    writes_rows = True  # items.jsonl: what `source = "stage:NAME"` reads
    default_evaluator = True  # what a training stage's eval_every runs unless its eval_kind names another

    def run(self, ctx) -> StageResult:
        cfg: EvalConfig = ctx.config
        bundle = ctx.model
        rows = ctx.load_rows(cfg.data)
        require_columns(rows, [cfg.data.question_field, cfg.data.answer_field], cfg.data)
        total = len(rows)
        chat = bundle.chat_template
        rows = [r for r in rows
                if len(bundle.tokenizer.encode(render_prompt(r, cfg.data, chat))) + 1 <= cfg.max_prompt_tokens]
        if not rows:
            raise DataError(f"all {total} prompts exceed max_prompt_tokens={cfg.max_prompt_tokens}",
                            where=f"stages.{ctx.name}", hint="raise max_prompt_tokens")
        prompts = [render_prompt(r, cfg.data, chat) for r in rows]
        answer_fn = bind_context(ctx.registry("rewards").get(cfg.answer_reward), ctx.reward_context)
        if cfg.answer_options:
            answer_fn = functools.partial(answer_fn, **cfg.answer_options)
        generate = Generator(bundle, cfg.max_prompt_tokens, cfg.max_completion_tokens, cfg.batch_size)
        ctx.progress.set_total(len(prompts))

        def sample(temperature, top_k, seed):
            texts, truncated = generate(prompts, temperature, top_k, seed)
            samples = score_samples(prompts, texts, rows, answer_fn, cfg.data.answer_field, cfg.correct_at)
            for s, t in zip(samples, truncated):
                s["truncated"] = float(t)
            return samples

        greedy = sample(1.0, 1, cfg.seed)  # top_k 1 = greedy, as the hackathon evaluated
        metrics = summarize(greedy)
        extra_samples, votes = [], None
        if cfg.protocol == "consensus":
            draws = [sample(t, cfg.consensus_top_k, cfg.seed + i) for i, t in enumerate(cfg.temperatures)]
            votes = self._vote(draws, rows, prompts, answer_fn, cfg)
            metrics.update(self._consensus(greedy, draws, rows, prompts, answer_fn, cfg, scored=votes))
            extra_samples = [s for d in draws for s in d]
        elif cfg.protocol == "passk":
            draws = [sample(cfg.temperature, None, cfg.seed + i) for i in range(cfg.samples)]
            for k in cfg.k:
                metrics[f"pass@{k}"] = sum(pass_at_k(cfg.samples, int(sum(d[i]["correct"] for d in draws)), k)
                                           for i in range(len(prompts))) / len(prompts)
            extra_samples = [s for d in draws for s in d]
        elif cfg.sampled_format:
            extra_samples = [s for i in range(cfg.sampled_format)
                             for s in sample(cfg.temperature, cfg.sample_top_k, cfg.seed + i)]
        if extra_samples:
            metrics.update(summarize(extra_samples, prefix="sampled_"))  # what the policy samples, not its mode
        metrics["items"] = float(len(prompts))
        metrics["dropped_overlength"] = float(total - len(prompts))
        ctx.log(metrics, 0)
        columns = ["prompt", "completion", "answer", "gold", "format", "correct", "truncated"]
        ctx.log_table("eval/samples", columns, [[s.get(c) for c in columns] for s in greedy], 0)
        if not ctx.is_primary:
            return StageResult(bundle, metrics)
        (ctx.dir / "eval.json").write_text(json.dumps({"protocol": cfg.protocol, "metrics": metrics}, indent=2))
        with open(ctx.dir / "samples.jsonl", "w", encoding="utf-8") as fh:
            for s in greedy + extra_samples:
                fh.write(json.dumps(s) + "\n")
        with open(ctx.dir / "items.jsonl", "w", encoding="utf-8") as fh:  # what `source = "stage:NAME"` reads
            for i, row in enumerate(item_pass_rates(rows, greedy, extra_samples)):
                if votes is not None:  # the item's majority answer and whether it is right
                    row |= {"consensus_answer": votes[i]["answer"], "consensus_correct": votes[i]["correct"]}
                fh.write(json.dumps(row, default=str) + "\n")
        return StageResult(bundle, metrics)

    @staticmethod
    def _vote(draws, rows, prompts, answer_fn, cfg) -> list[dict]:
        """Each item's majority answer over the draws, scored like a completion."""
        voted = [majority([d[i]["answer"] for d in draws]) for i in range(len(prompts))]
        completions = [f"<reasoning></reasoning><answer>{v or ''}</answer>" for v in voted]
        return score_samples(prompts, completions, rows, answer_fn, cfg.data.answer_field, cfg.correct_at)

    @staticmethod
    def _consensus(greedy, draws, rows, prompts, answer_fn, cfg, scored=None) -> dict[str, float]:
        scored = EvalStage._vote(draws, rows, prompts, answer_fn, cfg) if scored is None else scored
        voted = [s["answer"] for s in scored]
        fixed = sum(1 for g, s in zip(greedy, scored) if not g["correct"] and s["correct"])
        broke = sum(1 for g, s in zip(greedy, scored) if g["correct"] and not s["correct"])
        accuracy = sum(s["correct"] for s in scored) / len(scored)
        answered = sum(bool(v) for v in voted)  # an empty vote (no draw answered) parses as no answer
        # the headline counts "no answer" as wrong; the answered-only rate is the one the 2B-think
        # README reported (62/87 = 71.3 %, against 62/100 over all its questions)
        return {"consensus_accuracy": accuracy, **interval_of("consensus_accuracy", accuracy, len(scored)),
                "consensus_answered": float(answered),
                "consensus_accuracy_answered": (sum(s["correct"] for s in scored) / answered) if answered else 0.0,
                "consensus_fixed": float(fixed), "consensus_broke": float(broke)}


@hookimpl
def register_stages(register):
    register("eval", EvalStage)


@hookimpl
def register_commands(cli):
    import click

    @cli.command("eval")
    @click.argument("target")
    @click.option("--data", "source", default="arithmetic", show_default=True, help='A data source, e.g. "file:x.jsonl".')
    @click.option("--split", default="test", show_default=True)
    @click.option("--option", "options", multiple=True, help="A data option, key=value (repeatable), e.g. n=64.")
    @click.option("--protocol", type=click.Choice(["greedy", "consensus", "passk"]), default="greedy", show_default=True)
    @click.option("--max-new-tokens", default=768, show_default=True)
    @click.option("--max-prompt-tokens", default=256, show_default=True)
    @click.option("--dtype", type=click.Choice(["float32", "bfloat16", "auto"]), help="For a model preset.")
    @click.option("--out", type=click.Path(file_okay=False), help="Where eval.json and samples.jsonl go.")
    @click.option("--set", "settings", multiple=True,
                  help="Any other eval-stage key, key=value (repeatable), e.g. sampled_format=4, batch_size=32.")
    @click.pass_context
    def eval_command(ctx, target, source, split, options, protocol, max_new_tokens, max_prompt_tokens, dtype, out,
                     settings):
        """Evaluate TARGET — a run directory (its last finished stage) or a model preset name."""
        from reasonlab.cli import plugins_of

        _evaluate(plugins_of(ctx), target, source, split, options, protocol, max_new_tokens, max_prompt_tokens, dtype,
                  out, settings)


def _evaluate(plugins, target, source, split, options, protocol, max_new_tokens, max_prompt_tokens, dtype, out,
              settings=()):
    from datetime import datetime
    from pathlib import Path

    from pydantic import ValidationError
    from rich.console import Console
    from rich.table import Table

    from reasonlab.errors import RecipeError
    from reasonlab.progress import RunProgress
    from reasonlab.recipe import parse_override
    from reasonlab.runs import load_run_model
    from reasonlab.schema import ModelSpec
    from reasonlab.stage import StageContext

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        keys = {"data": {"source": source, "split": split, "options": dict(map(parse_override, options))},
                "protocol": protocol, "max_prompt_tokens": max_prompt_tokens, "max_completion_tokens": max_new_tokens}
        config = EvalConfig(**(keys | dict(map(parse_override, settings))))
    except ValidationError as exc:
        raise RecipeError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()),
                          where="reasonlab eval") from None
    if Path(target).is_dir():
        _, bundle, stage = load_run_model(Path(target), plugins)
        out = Path(out or Path(target) / "evals" / f"{stage}-{stamp}")
    else:
        from reasonlab.modeling import load_model

        bundle = load_model(plugins, ModelSpec(preset=target, dtype=dtype))
        out = Path(out or Path("evals") / f"{target}-{stamp}")
    out.mkdir(parents=True, exist_ok=True)
    ctx = StageContext(name="eval", kind="eval", config=config, recipe=None, model=bundle, dir=out, seed=config.seed,
                       plugins=plugins, log=lambda metrics, step: None, progress=RunProgress(False))
    result = EvalStage().run(ctx)
    table = Table(title=f"{target} on {source} ({split}), {protocol}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.metrics.items():
        table.add_row(key, f"{value:.4g}")
    Console().print(table)
    Console().print(f"report: {out / 'eval.json'}")
