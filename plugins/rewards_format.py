"""Format rewards.

``format_strict``: 1.0 when the completion is exactly one ``<reasoning>…</reasoning>``
followed by one ``<answer>…</answer>`` (whitespace around them allowed, nothing else)
with a non-empty answer; else 0.0.
"""

from __future__ import annotations

from reasonlab import hookimpl
from reasonlab.format import parse_completion


def format_strict(prompts, completions, **_) -> list[float]:
    scores = []
    for text in completions:
        parsed = parse_completion(text)
        scores.append(1.0 if parsed.strict and parsed.answer else 0.0)
    return scores


@hookimpl
def register_rewards(register):
    register("format_strict", format_strict)
