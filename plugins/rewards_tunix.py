"""The reward functions of Tunix's GSM8K GRPO example, as that example scores them.

- ``match_format_exactly``: 3.0 when the completion contains the full
  reasoning-then-answer structure;
- ``match_format_approximately``: +0.5 for each of the four tags seen exactly once,
  -0.5 for each seen zero or several times;
- ``check_answer``: 3.0 exact, 1.5 equal after stripping whitespace, 0.5 when the
  numeric ratio is within [0.9, 1.1], 0.25 within [0.8, 1.2], else -1.0; 0 when no
  answer can be extracted (as the example does);
- ``check_numbers``: 1.5 when the first number in ``<answer>`` equals the gold number.
"""

from __future__ import annotations

import re

from reasonlab import hookimpl
from reasonlab.format import gold_answer, parse_number

_FULL = re.compile(r"<reasoning>.+?</reasoning>.*?<answer>(.+?)</answer>", re.DOTALL)
_TAGS = ("<reasoning>", "</reasoning>", "<answer>", "</answer>")


def match_format_exactly(prompts, completions, **_):
    return [3.0 if _FULL.search(c) else 0.0 for c in completions]


def match_format_approximately(prompts, completions, **_):
    return [sum(0.5 if c.count(tag) == 1 else -0.5 for tag in _TAGS) for c in completions]


def check_answer(prompts, completions, answer_column: str = "answer", **columns):
    scores = []
    for text, gold in zip(completions, columns[answer_column]):
        match = _FULL.search(text)
        if not match:
            scores.append(0.0)
            continue
        guess, gold = match.group(1), gold_answer(gold)
        if guess == gold:
            scores.append(3.0)
        elif guess.strip() == gold.strip():
            scores.append(1.5)
        else:
            ratio = _ratio(guess, gold)
            scores.append(0.5 if ratio and 0.9 <= ratio <= 1.1 else 0.25 if ratio and 0.8 <= ratio <= 1.2 else -1.0)
    return scores


def _ratio(guess: str, gold: str) -> float | None:
    g, t = parse_number(guess), parse_number(gold)
    return None if g is None or not t else g / t


def check_numbers(prompts, completions, answer_column: str = "answer", **columns):
    scores = []
    for text, gold in zip(completions, columns[answer_column]):
        match = re.search(r"<answer>.*?([\d.]{1,})", text, re.DOTALL)
        guess = parse_number(match.group(1)) if match else None
        scores.append(1.5 if guess is not None and guess == parse_number(gold_answer(gold)) else 0.0)
    return scores


@hookimpl
def register_rewards(register):
    register("match_format_exactly", match_format_exactly)
    register("match_format_approximately", match_format_approximately)
    register("check_answer", check_answer, columns=["{answer_column}"])
    register("check_numbers", check_numbers, columns=["{answer_column}"])
