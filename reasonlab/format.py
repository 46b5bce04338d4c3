"""The reasoning format and answer normalisation, shared by rewards, data and eval."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

REASONING_OPEN, REASONING_CLOSE = "<reasoning>", "</reasoning>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

# The whole completion, nothing outside the two blocks but whitespace.
_STRICT = re.compile(r"^\s*<reasoning>(?P<reasoning>.*?)</reasoning>\s*<answer>(?P<answer>.*?)</answer>\s*$", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")


@dataclass(frozen=True)
class Parsed:
    reasoning: str | None
    answer: str | None
    strict: bool  # exactly one reasoning block then one answer block, nothing else


def parse_completion(text: str) -> Parsed:
    match = _STRICT.match(text)
    if match and all(text.count(tag) == 1 for tag in (REASONING_OPEN, REASONING_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)):
        return Parsed(match["reasoning"].strip(), match["answer"].strip(), True)
    answer = _ANSWER.search(text)
    return Parsed(None, answer.group(1).strip() if answer else None, False)


def format_target(reasoning: str, answer: str) -> str:
    return f"{REASONING_OPEN}{reasoning}{REASONING_CLOSE}{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"


def gold_answer(text) -> str:
    """The final answer in a reference: GSM8K-style "…#### 42" gives "42"; anything else as is."""
    text = str(text)
    return text.rsplit("####", 1)[-1].strip() if "####" in text else text.strip()


def parse_number(text: str | None) -> float | None:
    """The first number in ``text`` ("$1,234.5" -> 1234.5, "3/4" -> 0.75), or None."""
    if not text:
        return None
    match = _NUMBER.search(text)
    if not match:
        return None
    token = match.group(0).replace(",", "")
    try:
        return float(Fraction(token)) if "/" in token else float(token)
    except (ValueError, ZeroDivisionError):
        return None
