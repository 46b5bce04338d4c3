"""Answer rewards.

``answer_match``: 1.0 when the first number inside ``<answer>`` equals the row's
``answer`` column within ``tolerance`` (absolute, default 1e-6); else 0.0.
Options: ``tolerance``, ``answer_column`` (default "answer").
"""

from __future__ import annotations

from reasonlab import hookimpl
from reasonlab.rewards import require_column
from reasonlab.format import gold_answer, parse_completion, parse_number


def answer_match(prompts, completions, tolerance: float = 1e-6, answer_column: str = "answer", **columns) -> list[float]:
    golds = require_column(columns, answer_column, "answer_match")
    scores = []
    for text, gold in zip(completions, golds):
        predicted = parse_number(parse_completion(text).answer)
        expected = parse_number(gold_answer(gold))
        scores.append(1.0 if predicted is not None and expected is not None and abs(predicted - expected) <= tolerance else 0.0)
    return scores


@hookimpl
def register_rewards(register):
    register("answer_match", answer_match, columns=["{answer_column}"])
