"""The reward functions of Tunix's GSM8K GRPO example, exactly as that example scores them
(../shared/RECIPES.md §7). ``FORMAT`` is the example's regex,
``^[\\s]{0,}<reasoning>.+?</reasoning>.*?<answer>(.+?)</answer>[\\s]{0,}$`` with MULTILINE and
DOTALL, so text before the first tag or after the last one fails it.

- ``match_format_exactly``: 3.0 when FORMAT matches, else 0;
- ``match_format_approximately``: five terms of ±0.5 — ``<reasoning>`` once, the completion
  starting with ``<reasoning>``, ``</reasoning>`` once, ``<answer>`` once, ``</answer>`` once
  (−2.5 … +2.5);
- ``check_answer``: no FORMAT match → 0; the guess equal to the gold text → 3.0; equal after
  ``strip()`` → 1.5; else ``r = float(guess) / float(gold)``: 0.9 ≤ r ≤ 1.1 → 0.5,
  0.8 ≤ r ≤ 1.2 → 0.25, else −1.0; anything that raises (text, ``$18``, gold 0) → −0.5;
- ``check_numbers``: the first ``<answer>.*?([\\d\\.]{1,})`` match; none → 0;
  ``float(guess) == float(gold)`` → 1.5, else 0; a conversion error (``1.5.``) → 0.

Ours, off by default: ``lenient = true`` on ``check_answer`` and ``check_numbers`` reads
numbers with reasonlab's parser (``$1,234.50`` → 1234.5, ``3/4`` → 0.75) instead of ``float``.
"""

from __future__ import annotations

import re

from reasonlab import hookimpl
from reasonlab.format import gold_answer, parse_number

FORMAT = re.compile(r"^[\s]{0,}<reasoning>.+?</reasoning>.*?<answer>(.+?)</answer>[\s]{0,}$", re.MULTILINE | re.DOTALL)
NUMBER = re.compile(r"<answer>.*?([\d\.]{1,})", re.DOTALL)


def match_format_exactly(prompts, completions, **_):
    return [3.0 if FORMAT.search(c) else 0.0 for c in completions]


def match_format_approximately(prompts, completions, **_):
    def term(ok: bool) -> float:
        return 0.5 if ok else -0.5

    return [term(c.count("<reasoning>") == 1) + term(c.find("<reasoning>") == 0) + term(c.count("</reasoning>") == 1)
            + term(c.count("<answer>") == 1) + term(c.count("</answer>") == 1) for c in completions]


def _number(text: str, lenient: bool) -> float:
    if not lenient:
        return float(text)
    value = parse_number(text)
    if value is None:
        raise ValueError(f"no number in {text!r}")
    return value


def check_answer(prompts, completions, answer_column: str = "answer", lenient: bool = False, **columns):
    scores = []
    for text, gold in zip(completions, columns[answer_column]):
        match = FORMAT.search(text)
        if not match:
            scores.append(0.0)
            continue
        guess, gold = match.group(1), gold_answer(gold)
        if guess == gold:
            scores.append(3.0)
        elif guess.strip() == gold.strip():
            scores.append(1.5)
        else:
            try:
                ratio = _number(guess, lenient) / _number(gold, lenient)
                scores.append(0.5 if 0.9 <= ratio <= 1.1 else 0.25 if 0.8 <= ratio <= 1.2 else -1.0)
            except (ValueError, ZeroDivisionError):
                scores.append(-0.5)
    return scores


def check_numbers(prompts, completions, answer_column: str = "answer", lenient: bool = False, **columns):
    scores = []
    for text, gold in zip(completions, columns[answer_column]):
        match = NUMBER.search(text)
        if not match:
            scores.append(0.0)
            continue
        try:
            scores.append(1.5 if _number(match.group(1), lenient) == _number(gold_answer(gold), lenient) else 0.0)
        except ValueError:
            scores.append(0.0)
    return scores


@hookimpl
def register_rewards(register):
    register("match_format_exactly", match_format_exactly)
    register("match_format_approximately", match_format_approximately)
    register("check_answer", check_answer, columns=["{answer_column}"])
    register("check_numbers", check_numbers, columns=["{answer_column}"])
