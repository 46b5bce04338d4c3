"""``think_2b``: the reward of "Teaching a 2B model to think" (Tunix hackathon), as the
team's code scores it (../shared/RECIPES.md §6; their README shows a simpler variant).

- a missing ``<reasoning>`` or ``<answer>`` tag pair: -10 (nothing else counts);
- otherwise +2, then on the first number in ``<answer>``:
  none: -5; ``|pred - gold| < 0.01``: +25; relative error < 10 %: +5; else -15;
- +2 when the reasoning contains any of ``+ - * / =``;
- +1 when it contains a step word (``step_words`` option; ours, the code's list is unpublished).
"""

from __future__ import annotations

import re

from reasonlab import hookimpl
from reasonlab.format import gold_answer, parse_number

STEP_WORDS = ("first", "then", "next", "finally", "step", "so", "therefore")
_REASONING = re.compile(r"<reasoning>(.*?)</reasoning>", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def score_one(text: str, gold, step_words=STEP_WORDS) -> float:
    reasoning, answer = _REASONING.search(text), _ANSWER.search(text)
    if not reasoning or not answer:
        return -10.0
    score = 2.0
    predicted, expected = parse_number(answer.group(1)), parse_number(gold_answer(gold))
    if predicted is None:
        score -= 5.0
    elif expected is not None and abs(predicted - expected) < 0.01:
        score += 25.0
    elif expected and abs(predicted - expected) / abs(expected) < 0.10:
        score += 5.0
    else:
        score -= 15.0
    body = reasoning.group(1)
    if re.search(r"[+\-*/=]", body):
        score += 2.0
    if any(re.search(rf"\b{w}\b", body, re.IGNORECASE) for w in step_words):
        score += 1.0
    return score


def think_2b(prompts, completions, answer_column: str = "answer", step_words=STEP_WORDS, **columns):
    return [score_one(text, gold, step_words) for text, gold in zip(completions, columns[answer_column])]


@hookimpl
def register_rewards(register):
    register("think_2b", think_2b, columns=["{answer_column}"])
