"""Rewards on hand-written completions, and the weighted concurrent composite."""

from __future__ import annotations

import asyncio
import time

import pytest

from reasonlab.errors import ReasonlabError
from reasonlab.format import parse_completion, parse_number
from reasonlab.plugins import get_plugins
from reasonlab.rewards import CompositeReward
from reasonlab.schema import RewardSpec
from reasonlab_plugins.rewards_answer import answer_match
from reasonlab_plugins.rewards_format import format_strict

GOOD = "<reasoning>3 + 4 = 7</reasoning><answer>7</answer>"
CASES = {
    "right": GOOD,
    "spaces_around": "  <reasoning>x</reasoning>\n<answer>7</answer>\n",
    "wrong_answer": "<reasoning>3 + 4 = 8</reasoning><answer>8</answer>",
    "no_tags": "The answer is 7.",
    "text_outside": "Sure! " + GOOD,
    "two_answers": GOOD + "<answer>7</answer>",
    "empty": "",
    "empty_answer": "<reasoning>hm</reasoning><answer></answer>",
    "swapped": "<answer>7</answer><reasoning>3 + 4</reasoning>",
    "huge": "<reasoning>" + "think " * 20000 + "</reasoning><answer>7</answer>",
    "adversarial": "<reasoning></reasoning><answer>7</answer></reasoning><answer>7</answer>",
}
FORMAT = {"right": 1, "spaces_around": 1, "wrong_answer": 1, "no_tags": 0, "text_outside": 0, "two_answers": 0,
          "empty": 0, "empty_answer": 0, "swapped": 0, "huge": 1, "adversarial": 0}
ANSWER = {"right": 1, "spaces_around": 1, "wrong_answer": 0, "no_tags": 0, "text_outside": 1, "two_answers": 1,
          "empty": 0, "empty_answer": 0, "swapped": 1, "huge": 1, "adversarial": 1}


@pytest.mark.parametrize("case", sorted(CASES))
def test_format_strict(case):
    assert format_strict(["q"], [CASES[case]]) == [FORMAT[case]]


@pytest.mark.parametrize("case", sorted(CASES))
def test_answer_match(case):
    assert answer_match(["q"], [CASES[case]], answer=["7"]) == [ANSWER[case]]


def test_parse_number_forms():
    assert parse_number("$1,234.50") == 1234.5
    assert parse_number("3/4 of it") == 0.75
    assert parse_number("-12 apples") == -12
    assert parse_number("none") is None
    assert parse_completion("<reasoning>a</reasoning><answer> 5 </answer>").answer == "5"


def test_answer_match_tolerance_and_missing_column():
    assert answer_match(["q"], ["<answer>7.001</answer>"], tolerance=0.01, answer=["7"]) == [1.0]
    with pytest.raises(KeyError):
        answer_match(["q"], [GOOD])


def registry_with(**fns):
    registry = get_plugins().registry("rewards")
    for name, fn in fns.items():
        registry.add(name, fn, "test")
    return registry


def test_composite_weights_and_metrics():
    logged = []
    registry = registry_with(const_half=lambda p, c, **_: [0.5] * len(c))
    composite = CompositeReward([RewardSpec(name="format_strict", weight=2.0), RewardSpec(name="const_half", weight=-1.0)],
                                registry, on_metrics=logged.append)
    scores = composite(["q", "q"], [GOOD, "no"], answer=["7", "7"], mode="train")
    assert scores == [2.0 - 0.5, -0.5]
    assert logged[0]["reward/format_strict/mean"] == 0.5 and logged[0]["reward/const_half/mean"] == 0.5
    assert logged[0]["reward/total/mean"] == 0.5 and "reward/format_strict/seconds" in logged[0]


def test_composite_failures_fall_back_and_are_counted():
    def boom(p, c, **_):
        raise RuntimeError("judge down")

    logged = []
    registry = registry_with(boom=boom, short=lambda p, c, **_: [1.0], nan=lambda p, c, **_: [float("nan")] * len(c))
    composite = CompositeReward([RewardSpec(name=n) for n in ("boom", "short", "nan")], registry,
                                fallback=-1.0, on_metrics=logged.append, failures="fallback")
    assert composite(["q", "q"], ["a", "b"]) == [-3.0, -3.0]
    assert logged[0]["reward/boom/failures"] == 2 and logged[0]["reward/short/failures"] == 2
    assert logged[0]["reward/nan/failures"] == 2
    strict = CompositeReward([RewardSpec(name="boom")], registry, fail_fast=True)
    with pytest.raises(ReasonlabError, match="boom"):
        strict(["q"], ["a"])


def test_composite_runs_rewards_concurrently_including_async():
    def slow(p, c, **_):
        time.sleep(0.3)
        return [1.0] * len(c)

    async def slow_async(p, c, **_):
        await asyncio.sleep(0.3)
        return [1.0] * len(c)

    registry = registry_with(slow1=slow, slow2=slow, slow3=slow_async)
    composite = CompositeReward([RewardSpec(name=n) for n in ("slow1", "slow2", "slow3")], registry)
    start = time.perf_counter()
    assert composite(["q"], ["a"]) == [3.0]
    assert time.perf_counter() - start < 0.8  # serial would take 0.9 s
