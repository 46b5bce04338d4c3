"""Each builtin reward on hand-written completions: right, wrong, malformed, empty, huge, adversarial."""

from __future__ import annotations

import json
import time

import pytest

from reasonlab_plugins.rewards_code import code_tests
from reasonlab_plugins.rewards_math import math_equiv
from reasonlab_plugins.rewards_process import checkpoints
from reasonlab_plugins.rewards_tfidf import tfidf_relevance


def wrap(answer, reasoning="work"):
    return f"<reasoning>{reasoning}</reasoning><answer>{answer}</answer>"


HUGE = wrap("7", "step " * 50000)


@pytest.mark.slow
def test_math_equiv_forms_and_adversarial_input():
    golds = ["3/4", "0.5", "1200", "(x+1)^2", "7", "7", "7"]
    completions = [wrap("\\frac{3}{4}"), wrap("50\\%"), wrap("\\$1,200"), wrap("x^2+2x+1"), wrap("8"), "no tags", ""]
    assert math_equiv(None, completions, answer=golds) == [1, 1, 1, 1, 0, 0, 0]
    start = time.perf_counter()
    assert math_equiv(None, [wrap("9**9**9**9"), wrap("7")], answer=["7", "7"], timeout=1.0) == [0, 1]
    assert time.perf_counter() - start < 40  # the hung check was killed, the next one still answered


def test_checkpoints_process_reward():
    marks = ["4 * 2 = 8", "3 * 3 = 9", "8 + 9 = 17", "20 - 17"]
    completions = [
        wrap("3", "4×2=8, 3 · 3 = 9, 8+9 = 17, 20 − 17 = 3"),   # all four, other operator glyphs
        wrap("3", "4 * 2 = 8 then guess"),                      # one
        "4 * 2 = 8 3 * 3 = 9 <answer>3</answer>",               # outside <reasoning>: none
        "", HUGE,
    ]
    scores = checkpoints(None, completions, checkpoints=[json.dumps(marks)] * 5, normalise=True)  # ours
    assert scores == [pytest.approx(0.8), pytest.approx(0.2), 0, 0, 0]
    assert checkpoints(None, [completions[0]], checkpoints=[marks], cap=0.5, normalise=True) == [0.5]


def test_tfidf_relevance_prefers_on_topic_concise_reasoning():
    prompt = "A doctor must decide whether to tell a patient about a risky experimental treatment."
    on_topic = wrap("tell", "The doctor should tell the patient about the risky experimental treatment and its risk.")
    off_topic = wrap("tell", "Bananas grow in tropical climates and are rich in potassium and fibre.")
    verbose = wrap("tell", " ".join(["The doctor should tell the patient about the treatment."] * 40))
    scores = tfidf_relevance([prompt] * 4, [on_topic, off_topic, verbose, "no tags"], target_words=40)
    assert scores[0] > scores[2] > scores[1] >= 0 and scores[3] == 0
    sectioned = wrap("x", "Identify: the facts. Determine: the conflict. Explore: options. Act: on one. Evaluate: it.")
    assert tfidf_relevance([prompt], [sectioned], section_bonus=0.5)[0] >= 0.5


@pytest.mark.slow
def test_code_tests_sandbox():
    tests = [json.dumps(["assert add(1, 2) == 3", "assert add(-1, 1) == 0"])]
    good = wrap("```python\ndef add(a, b):\n    return a + b\n```")
    half = wrap("def add(a, b):\n    return abs(a) + b")
    assert code_tests(None, [good, half, wrap("def add(:"), ""], tests=tests * 4) == [1.0, 0.5, 0.0, 0.0]
    assert code_tests(None, [good, wrap("def add(:")], mode="syntax") == [1.0, 0.0]




@pytest.mark.slow
def test_a_timed_out_math_answer_does_not_delay_the_next_one():
    import time

    from reasonlab_plugins.rewards_math import math_equiv

    math_equiv(["q"], ["<answer>1</answer>"], answer=["1"])  # the worker and its spare are up
    time.sleep(3)  # the spare has finished importing
    hostile = "<answer>\\binom{10^8}{5 \\cdot 10^7}</answer>"
    start = time.perf_counter()
    scores = math_equiv(["q"] * 4, [hostile] * 3 + ["<answer>0.5</answer>"], timeout=1.0, answer=["1/2"] * 4)
    elapsed = time.perf_counter() - start
    assert scores == [0.0, 0.0, 0.0, 1.0]
    assert elapsed < 3 * 1.0 + 4.0, elapsed  # three limits, plus at most a spare's import between them


def test_tfidf_sections_count_only_as_headings():
    prompt = "A nurse and a patient's family."
    def bonus(reasoning):
        completion = f"<reasoning>{reasoning}</reasoning><answer>x</answer>"
        with_bonus = tfidf_relevance([prompt], [completion], section_bonus=1.0)[0]
        return with_bonus - tfidf_relevance([prompt], [completion])[0]
    assert bonus("The facts have an impact; the exact act of evaluation matters.") == pytest.approx(0.0)
    assert bonus("Identify: the facts. ACT : tell the family.") == pytest.approx(2 / 5)
    assert bonus("identify: a. determine: b. explore: c. act: d. evaluate: e.") == pytest.approx(1.0)
