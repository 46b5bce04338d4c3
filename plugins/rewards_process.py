"""``checkpoints``: process reward from metadata checkpoints (the "Thinking in Tokens" recipe).

Each expected intermediate result in the row's ``checkpoints`` column (a list, or its
JSON text) found inside ``<reasoning>`` earns ``per_checkpoint`` (default 0.2), up to
``cap`` (default 1.0). Matching ignores whitespace and case and treats ×·∗ as *, −–
as -, ÷ as /; "4 * 2 = 8" also matches "4*2=8" and "4 × 2 = 8".
"""

from __future__ import annotations

import json
import re

from reasonlab import hookimpl
from reasonlab.rewards import require_column
from reasonlab.format import parse_completion

_OPERATORS = str.maketrans({"×": "*", "·": "*", "∗": "*", "−": "-", "–": "-", "÷": "/", "$": ""})


def normalise(text: str) -> str:
    return re.sub(r"\s+", "", text.translate(_OPERATORS)).lower()


def _as_list(value) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [value]
    return [str(v) for v in value or []]


def checkpoints(prompts, completions, per_checkpoint: float = 0.2, cap: float = 1.0,
                checkpoints_column: str = "checkpoints", **columns):
    expected = require_column(columns, checkpoints_column, "checkpoints")
    scores = []
    for text, marks in zip(completions, expected):
        reasoning = parse_completion(text).reasoning
        if reasoning is None:  # lenient: also look inside an unclosed or malformed reasoning block
            match = re.search(r"<reasoning>(.*?)(?:</reasoning>|$)", text, re.DOTALL)
            reasoning = match.group(1) if match else ""
        body = normalise(reasoning)
        found = sum(1 for mark in _as_list(marks) if normalise(mark) and normalise(mark) in body)
        scores.append(min(cap, per_checkpoint * found))
    return scores


@hookimpl
def register_rewards(register):
    register("checkpoints", checkpoints, columns=["{checkpoints_column}"])
