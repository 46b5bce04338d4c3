"""``kind = "distill"``: build SFT data from a teacher model behind an OpenAI-compatible
endpoint — how the metadata-checkpoint and Pinocchio teams made theirs.

For each prompt the teacher is asked for one JSON object ``{"reasoning", "answer",
"checkpoints"}`` (intermediate results a grader can look for). Kept rows pass the
``filters``: "parse" (a well-formed reply), "length" (fits the stage's token budget with
the current model's tokenizer — dropped, never truncated) and "answer" (the teacher's
answer matches the row's gold answer, checked with ``answer_reward``). Output:
``distilled.jsonl`` in the stage folder with ``question``, ``reasoning``, ``answer``,
``checkpoints``, ``chosen`` (the full target) and the source row's ``domain``. Later stages
read it with ``data = { source = "stage:<this stage's name>" }``.

Recipe keys: ``data`` (prompts), ``teacher`` (the OpenAI judge options: ``base_url``,
``model``, ``api_key_env``, ``concurrency``, ``timeout``, ``max_retries``, ``cache``; ``teacher_judge`` names
another judge backend),
``filters``, ``answer_reward``, ``max_prompt_tokens``/``max_completion_tokens``.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import PositiveInt

from reasonlab import hookimpl
from reasonlab.data import render_prompt, require_columns
from reasonlab.errors import DataError
from reasonlab.format import format_target
from reasonlab.schema import DataSpec, PluginRef
from reasonlab.stage import StageConfig, StageResult

TEACHER_SYSTEM = ("You are a careful teacher. Solve the problem step by step. Reply with one JSON object and nothing "
                  'else: {"reasoning": "<your step-by-step reasoning>", "answer": "<the final answer only>", '
                  '"checkpoints": ["<key intermediate results a grader could look for>", ...]}')


OFFLINE_DEADLINE = 7 * 24 * 3600.0  # seconds for all of the stage's teacher calls


class DistillConfig(StageConfig):
    data: DataSpec
    teacher_judge: Annotated[str, PluginRef("judges")] = "openai"  # the judge backend that talks to the teacher
    teacher: dict = {}  # that backend's options
    filters: list[Literal["parse", "length", "answer"]] = ["parse", "length", "answer"]
    answer_reward: Annotated[str, PluginRef("rewards")] = "answer_match"
    max_prompt_tokens: PositiveInt = 256
    max_completion_tokens: PositiveInt = 512


def parse_teacher(reply: str | None) -> dict | None:
    if reply is None:
        return None
    text = reply.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    ok = (isinstance(data, dict) and isinstance(data.get("reasoning"), str) and isinstance(data.get("answer"), str)
          and isinstance(data.get("checkpoints", []), list) and data["reasoning"].strip() and data["answer"].strip())
    return data if ok else None


class DistillStage:
    Config = DistillConfig
    writes_rows = True  # distilled.jsonl: what `source = "stage:NAME"` reads

    def run(self, ctx) -> StageResult:
        cfg: DistillConfig = ctx.config
        rows = ctx.load_rows(cfg.data)
        require_columns(rows, [cfg.data.question_field], cfg.data)
        # 70k prompts take hours: the judge's per-step deadline (120 s) does not apply to a data stage
        teacher = ctx.registry("judges").get(cfg.teacher_judge)({"deadline": OFFLINE_DEADLINE, **cfg.teacher})
        # the teacher gets the bare question (its own chat API does the turns)
        prompts = [render_prompt(r, cfg.data.model_copy(update={"template": "{question}", "system_prompt": None,
                                                               "chat": False})) for r in rows]
        replies = teacher.complete_many([[{"role": "system", "content": TEACHER_SYSTEM},
                                          {"role": "user", "content": p}] for p in prompts])
        tokenizer = ctx.model.tokenizer
        answer_fn = ctx.registry("rewards").get(cfg.answer_reward)
        kept, dropped = [], {"parse": 0, "length": 0, "answer": 0}
        for row, prompt, reply in zip(rows, prompts, replies):
            parsed = parse_teacher(reply)
            if parsed is None:
                dropped["parse"] += 1
                if "parse" in cfg.filters:
                    continue
                parsed = {"reasoning": "", "answer": "", "checkpoints": []}
            chosen = format_target(parsed["reasoning"].strip(), parsed["answer"].strip())
            too_long = (len(tokenizer.encode(render_prompt(row, cfg.data, ctx.model.chat_template))) + 1
                        > cfg.max_prompt_tokens
                        or len(tokenizer.encode(chosen)) + 1 > cfg.max_completion_tokens)
            if too_long:
                dropped["length"] += 1
                if "length" in cfg.filters:
                    continue
            gold = row.get(cfg.data.answer_field)
            if gold is not None and not answer_fn([prompt], [chosen], answer=[gold])[0]:
                dropped["answer"] += 1
                if "answer" in cfg.filters:
                    continue
            kept.append({"question": row[cfg.data.question_field], "reasoning": parsed["reasoning"].strip(),
                         "answer": parsed["answer"].strip(), "checkpoints": [str(c) for c in parsed.get("checkpoints", [])],
                         "chosen": chosen, "gold": gold, "domain": row.get("domain")})
        with open(ctx.dir / "distilled.jsonl", "w", encoding="utf-8") as fh:
            for item in kept:
                fh.write(json.dumps(item) + "\n")
        metrics = {"prompts": float(len(rows)), "kept": float(len(kept)),
                   **{f"dropped_{k}": float(v) for k, v in dropped.items()},
                   **{f"teacher_{k}": float(v) for k, v in teacher.stats.items()}}
        ctx.log(metrics, 0)
        if not kept:
            raise DataError(f"the teacher produced no usable rows from {len(rows)} prompts ({dropped})",
                            where=f"stages.{ctx.name}", hint="check the teacher endpoint, filters and budgets")
        return StageResult(ctx.model, metrics)


@hookimpl
def register_stages(register):
    register("distill", DistillStage)
