"""The rewards of "Teaching a 2B model to think" (Tunix hackathon), exactly as the team's
session notebooks score them (../shared/RECIPES.md §6; their README shows a simpler sketch).

``think_2b`` (``correctness_focused_reward``, sessions 2–3):
- either tag pair missing (substring tests for ``<reasoning>``, ``</reasoning>``,
  ``<answer>``, ``</answer>``) → −10, nothing else counts;
- else +2; the first ``<answer>(.*?)</answer>``, stripped; numbers by ``-?\\d+\\.?\\d*``; none →
  −5; the first number against ``float(gold)``: within 0.01 → +25; relative error
  ``|pred − gold| / max(|gold|, 1) < 0.1`` → +5; else −15 (so ``1,000`` reads 1 and ``3/4``
  reads 3); anything that raises here → −13, returned at once;
- on the first ``<reasoning>(.*?)</reasoning>``: +2 if it contains any of ``+ - * / =``, +1 if
  any of the case-sensitive ``Step``, ``First``, ``Then``, ``1.``, ``2.``.

Session 1 adds two more (Tunix sums reward functions unweighted):
``think_2b_consistency`` — the reasoning (between the first ``<reasoning>`` and the next
``</reasoning>``, stripped; "" unless both occur): +2 if the gold answer's text occurs in it,
+1 if it contains ``+`` or "add" (any case); ``think_2b_comprehension`` — 0 without both
reasoning tags; else, on the lower-cased prompt and reasoning: " more " or " additional " →
+3 if the reasoning has add/plus/+/sum else −2; " total" without " more " → +2 if it has
neither "add" nor "plus"; " left" or " remaining" → +3 if it has subtract/minus/-/take away
else −2; " times " or " multiplied " → +2 if it has multiply/×/*/product.
"""

from __future__ import annotations

import re

from reasonlab import hookimpl
from reasonlab.format import gold_answer

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_REASONING = re.compile(r"<reasoning>(.*?)</reasoning>", re.DOTALL)
_NUMBER = re.compile(r"-?\d+\.?\d*")
STEP_MARKS = ("Step", "First", "Then", "1.", "2.")


def score_one(text: str, gold) -> float:
    if not all(tag in text for tag in ("<reasoning>", "</reasoning>", "<answer>", "</answer>")):
        return -10.0
    score = 2.0
    try:
        numbers = _NUMBER.findall(_ANSWER.search(text).group(1).strip())
        if not numbers:
            score -= 5.0
        else:
            predicted, target = float(numbers[0]), float(gold_answer(gold))
            if abs(predicted - target) < 0.01:
                score += 25.0
            elif abs(predicted - target) / max(abs(target), 1.0) < 0.1:
                score += 5.0
            else:
                score -= 15.0
    except Exception:  # the team's code: any failure here scores 2 - 15 at once
        return score - 15.0
    reasoning = _REASONING.search(text)
    body = reasoning.group(1) if reasoning else ""
    if any(op in body for op in "+-*/="):
        score += 2.0
    if any(mark in body for mark in STEP_MARKS):
        score += 1.0
    return score


def think_2b(prompts, completions, answer_column: str = "answer", **columns):
    return [score_one(text, gold) for text, gold in zip(completions, columns[answer_column])]


def _reasoning_between_tags(text: str) -> str:
    start = text.find("<reasoning>")
    end = text.find("</reasoning>", start + len("<reasoning>")) if start >= 0 else -1
    return text[start + len("<reasoning>"):end].strip() if start >= 0 and end >= 0 else ""


def think_2b_consistency(prompts, completions, answer_column: str = "answer", **columns):
    scores = []
    for text, gold in zip(completions, columns[answer_column]):
        reasoning = _reasoning_between_tags(text)
        score = 2.0 if reasoning and gold_answer(gold) in reasoning else 0.0
        score += 1.0 if "+" in reasoning or "add" in reasoning.lower() else 0.0
        scores.append(score)
    return scores


def _any(text: str, words) -> bool:
    return any(w in text for w in words)


def think_2b_comprehension(prompts, completions, **_):
    scores = []
    for prompt, text in zip(prompts, completions):
        if "<reasoning>" not in text or "</reasoning>" not in text:
            scores.append(0.0)
            continue
        question, reasoning = str(prompt).lower(), _reasoning_between_tags(text).lower()
        score = 0.0
        if " more " in question or " additional " in question:
            score += 3.0 if _any(reasoning, ("add", "plus", "+", "sum")) else -2.0
        if " total" in question and " more " not in question:
            score += 2.0 if not _any(reasoning, ("add", "plus")) else 0.0
        if " left" in question or " remaining" in question:
            score += 3.0 if _any(reasoning, ("subtract", "minus", "-", "take away")) else -2.0
        if " times " in question or " multiplied " in question:
            score += 2.0 if _any(reasoning, ("multiply", "×", "*", "product")) else 0.0
        scores.append(score)
    return scores


@hookimpl
def register_rewards(register):
    register("think_2b", think_2b, columns=["{answer_column}"])
    register("think_2b_consistency", think_2b_consistency, columns=["{answer_column}"])
    register("think_2b_comprehension", think_2b_comprehension)
