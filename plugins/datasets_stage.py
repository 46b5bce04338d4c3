"""``source = "stage:NAME"``: rows that an earlier stage of this run wrote.

- a ``distill`` stage: the teacher rows it kept (``distilled.jsonl``);
- a ``rubrics`` stage: its prompts with the rubric the teacher wrote for each (``rubrics.jsonl``);
- an ``eval`` stage: every item it scored, with the item's own columns and its
  ``pass_rate`` (the share of its completions — greedy plus any samples — that were right)
  and ``greedy_correct`` (``items.jsonl``). ``options.max_pass_rate`` keeps the items at or
  below it: ``0.0`` = those no completion got right, the "hard subset" a later session trains
  on (Format-Align-Reinforce's session 2).
"""

from __future__ import annotations

import json

from reasonlab import hookimpl
from reasonlab.errors import DataError

OUTPUTS = ("distilled.jsonl", "rubrics.jsonl", "items.jsonl")  # what distill / rubrics / eval stages write


def load_stage_output(arg: str, spec, context) -> list[dict]:
    run_dir = context.run_dir
    paths = [run_dir / "stages" / arg / name for name in OUTPUTS] if run_dir else []
    path = next((p for p in paths if p.exists()), None)
    if path is None:
        raise DataError(f"no output of stage {arg!r} in this run",
                        where=f"data.source = \"stage:{arg}\"",
                        hint="a distill, rubrics or eval stage of that name must run earlier in the recipe")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    limit = spec.options.get("max_pass_rate")
    if limit is None:
        return rows
    if rows and "pass_rate" not in rows[0]:
        raise DataError(f"stage {arg!r} wrote no pass rates ({path.name})", where="data.options.max_pass_rate",
                        hint="max_pass_rate filters the items of an eval stage")
    kept = [r for r in rows if r["pass_rate"] <= limit]
    if not kept:
        raise DataError(f"none of the {len(rows)} items of stage {arg!r} has pass_rate <= {limit}: the model got "
                        "every one right at least that often", where="data.options.max_pass_rate",
                        hint="raise max_pass_rate, or evaluate more (or harder) items in that stage")
    return kept


def _check(arg: str, spec) -> None:
    if not arg:
        raise DataError("source \"stage:\" names no stage", where="data.source", hint='e.g. source = "stage:distill"')
    unknown = set(spec.options) - {"max_pass_rate"}
    if unknown:
        raise DataError(f"stage: sources take only max_pass_rate, not {', '.join(sorted(unknown))}", where="data.options")
    limit = spec.options.get("max_pass_rate")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or not 0 <= limit <= 1):
        raise DataError(f"data.options.max_pass_rate must be a number from 0 to 1, got {limit!r}",
                        where="data.options.max_pass_rate")


load_stage_output.check = _check  # options only: the output exists once the run gets there
load_stage_output.needs_run = True  # `validate` cannot read its rows before the run
load_stage_output.reads_stage = lambda arg: arg  # validate checks NAME runs earlier and writes rows


@hookimpl
def register_datasets(register):
    register("stage", load_stage_output)
