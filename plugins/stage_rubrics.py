"""``kind = "rubrics"``: write an instance-specific rubric for every prompt with a teacher LLM,
as Rubrics as Rewards (RaR, Gunjal et al. 2025) does before its GRPO stage.

For each row the teacher (any OpenAI-compatible endpoint: ``teacher``, the ``openai`` judge's
options) sees the question and the reference answer (``data.answer_field``) and replies with a
JSON list of ``min_items``–``max_items`` (RaR: 7–20) items ``{title, criterion, category}``,
category one of RaR's Essential, Important, Optional, Pitfall (pitfalls phrased "Avoids …",
so every item is satisfied by a good response; an optional numeric ``weight``
is kept; otherwise ``rubric_judge``'s category weights apply). Each reply is validated: a list
of well-formed items, the count in range, at least one Essential item. A row whose rubric is
invalid is dropped and counted (``dropped_invalid``); more than ``max_invalid_rate`` of them
stops the run, since a teacher that mostly fails would leave the GRPO stage a handful of rows.

Output: ``rubrics.jsonl`` in the stage folder, every kept row with its ``rubric`` column;
the GRPO stage reads it with ``data = { source = "stage:<this stage's name>" }``. The
teacher's replies are cached on disk by the ``openai`` judge (model + messages), so a rerun
or a later recipe with the same prompts asks only for the new ones (``teacher_cache_hits``).
"""

from __future__ import annotations

import json

from typing import Annotated

from pydantic import Field, PositiveInt

from reasonlab import hookimpl
from reasonlab.data import require_columns
from reasonlab.errors import DataError
from reasonlab.schema import DataSpec, PluginRef
from reasonlab.stage import StageConfig, StageResult

CATEGORIES = ("Essential", "Important", "Optional", "Pitfall")
OFFLINE_DEADLINE = 7 * 24 * 3600.0  # seconds for all of a stage's teacher calls (the judge's default, 120, is per GRPO step)

TEACHER_SYSTEM = (
    "You write grading rubrics. Given a question and its reference answer, list the criteria a grader "
    "should check in a response, specific to this question. Categories: Essential (a response without it "
    "is wrong), Important (a strong response has it), Optional (nice to have), Pitfall (a mistake a "
    "response must avoid, phrased as what a good response does: 'Avoids ...'). Reply with one JSON list and nothing else: "
    '[{"title": "<2-6 words>", "criterion": "<one sentence a grader can check>", '
    '"category": "Essential|Important|Optional|Pitfall"}, ...] with {low} to {high} items.')


class RubricsConfig(StageConfig):
    data: DataSpec
    teacher_judge: Annotated[str, PluginRef("judges")] = "openai"  # the judge backend that talks to the teacher
    teacher: dict = {}  # that backend's options
    min_items: PositiveInt = 7
    max_items: PositiveInt = 20
    max_invalid_rate: float = Field(0.5, ge=0.0, le=1.0)


def parse_rubric(reply: str | None, low: int, high: int) -> list[dict] | str:
    """The validated rubric, or why it is not one."""
    if reply is None:
        return "no reply"
    text = reply.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        return "not JSON"
    if not isinstance(items, list):
        return "not a list"
    if not low <= len(items) <= high:
        return f"{len(items)} items, not {low}-{high}"
    rubric = []
    for item in items:
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) and item[k].strip()
                                                 for k in ("title", "criterion", "category")):
            return "an item without title, criterion and category"
        category = item["category"].strip().capitalize()
        if category not in CATEGORIES:
            return f"category {item['category']!r}"
        kept = {"title": item["title"].strip(), "criterion": item["criterion"].strip(), "category": category}
        if "weight" in item:
            if isinstance(item["weight"], bool) or not isinstance(item["weight"], (int, float)):
                return f"weight {item['weight']!r}"
            kept["weight"] = float(item["weight"])
        rubric.append(kept)
    if not any(i["category"] == "Essential" for i in rubric):
        return "no Essential item"
    return rubric


class RubricsStage:
    Config = RubricsConfig
    writes_rows = True  # rubrics.jsonl: what `source = "stage:NAME"` reads

    def run(self, ctx) -> StageResult:
        cfg: RubricsConfig = ctx.config
        if cfg.min_items > cfg.max_items:
            raise DataError(f"min_items ({cfg.min_items}) is above max_items ({cfg.max_items})",
                            where=f"stages.{ctx.name}")
        rows = ctx.load_rows(cfg.data)
        require_columns(rows, [cfg.data.question_field, cfg.data.answer_field], cfg.data)
        # a rubric is long, and the stage has no step to keep short: no per-call deadline by default
        teacher = ctx.registry("judges").get(cfg.teacher_judge)({"max_tokens": 2048, "deadline": OFFLINE_DEADLINE, **cfg.teacher})
        system = TEACHER_SYSTEM.replace("{low}", str(cfg.min_items)).replace("{high}", str(cfg.max_items))
        replies = teacher.complete_many([
            [{"role": "system", "content": system},
             {"role": "user", "content": f"Question:\n{r[cfg.data.question_field]}\n\n"
                                         f"Reference answer:\n{r[cfg.data.answer_field]}"}] for r in rows])
        kept, why = [], {}
        for row, reply in zip(rows, replies):
            rubric = parse_rubric(reply, cfg.min_items, cfg.max_items)
            if isinstance(rubric, str):
                why[rubric] = why.get(rubric, 0) + 1
                continue
            kept.append({**row, "rubric": rubric})
        if ctx.is_primary:
            with open(ctx.dir / "rubrics.jsonl", "w", encoding="utf-8") as fh:
                for row in kept:
                    fh.write(json.dumps(row, default=str) + "\n")
        invalid = len(rows) - len(kept)
        metrics = {"prompts": float(len(rows)), "kept": float(len(kept)), "dropped_invalid": float(invalid),
                   "mean_items": sum(len(r["rubric"]) for r in kept) / len(kept) if kept else 0.0,
                   **{f"teacher_{k}": float(v) for k, v in teacher.stats.items()}}
        ctx.log(metrics, 0)
        if not kept or invalid > cfg.max_invalid_rate * len(rows):
            reasons = ", ".join(f"{n} × {reason}" for reason, n in sorted(why.items(), key=lambda kv: -kv[1]))
            raise DataError(f"the teacher wrote no valid rubric for {invalid} of {len(rows)} prompts ({reasons})",
                            where=f"stages.{ctx.name}",
                            hint="check the teacher endpoint and model; max_invalid_rate sets how many may fail")
        return StageResult(ctx.model, metrics)


@hookimpl
def register_stages(register):
    register("rubrics", RubricsStage)
