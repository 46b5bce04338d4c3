"""``checkpoints``: process reward from metadata checkpoints (the "Thinking in Tokens" recipe),
as the function printed in ../shared/seeds/000 scores it: ``per_checkpoint`` (0.2) for each
expected intermediate result in the row's ``checkpoints`` column (a list, or its JSON text)
that occurs **verbatim** (``str(cp) in reasoning``) inside a closed
``<reasoning>…</reasoning>`` block, uncapped; 0 without a closed block.

Ours, off by default: ``normalise = true`` matches ignoring whitespace, case and ``$`` and
reads ×·∗ as *, −– as -, ÷ as / ("4 * 2 = 8" also matches "4×2=8"); ``cap`` bounds the score;
``open_reasoning = true`` also reads an unclosed ``<reasoning>`` block.
"""

from __future__ import annotations

import json
import re

from reasonlab import hookimpl
from reasonlab.rewards import require_column

_OPERATORS = str.maketrans({"×": "*", "·": "*", "∗": "*", "−": "-", "–": "-", "÷": "/", "$": ""})


def normalised(text: str) -> str:
    return re.sub(r"\s+", "", text.translate(_OPERATORS)).lower()


def _as_list(value) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [value]
    return [str(v) for v in value or []]


def checkpoints(prompts, completions, per_checkpoint: float = 0.2, cap: float | None = None,
                checkpoints_column: str = "checkpoints", normalise: bool = False, open_reasoning: bool = False,
                **columns):
    expected = require_column(columns, checkpoints_column, "checkpoints")
    scores = []
    for text, marks in zip(completions, expected):
        closed = re.search(r"<reasoning>(.*?)</reasoning>", text, re.DOTALL)
        if closed:
            reasoning = closed.group(1)
        else:
            unclosed = re.search(r"<reasoning>(.*)$", text, re.DOTALL) if open_reasoning else None
            reasoning = unclosed.group(1) if unclosed else None
        if reasoning is None:
            scores.append(0.0)
            continue
        see = normalised if normalise else str
        body = see(reasoning)
        found = sum(1 for mark in _as_list(marks) if see(mark) and see(mark) in body)
        score = per_checkpoint * found
        scores.append(min(cap, score) if cap is not None else score)
    return scores


@hookimpl
def register_rewards(register):
    register("checkpoints", checkpoints, columns=["{checkpoints_column}"])
