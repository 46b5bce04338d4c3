"""Rewards named after a source score exactly as the source's code does (../shared/RECIPES.md
§6-§7). Every expected value below is worked out by hand from those rules."""

from __future__ import annotations

import pytest

from reasonlab_plugins.rewards_think2b import think_2b, think_2b_comprehension, think_2b_consistency
from reasonlab_plugins.rewards_tunix import check_answer, check_numbers, match_format_approximately, match_format_exactly

R = "<reasoning>r</reasoning>"

# completion, gold, exactly, approximately, check_answer, check_numbers
TUNIX = [
    (R + "<answer>7</answer>", "7", 3.0, 2.5, 3.0, 1.5),
    ("Sure! " + R + "<answer>7</answer>", "7", 0.0, 1.5, 0.0, 1.5),  # text before the first tag
    (R + "<answer>7</answer> trailing", "7", 0.0, 2.5, 0.0, 1.5),  # text after the last tag
    ("Sure!\n" + R + "<answer>7</answer>", "7", 3.0, 1.5, 3.0, 1.5),  # MULTILINE: ^ after a newline
    (" " + R + "<answer> 7 </answer>\n", "7", 3.0, 1.5, 1.5, 1.5),
    (R + "<answer>7.5</answer>", "7", 3.0, 2.5, 0.5, 0.0),
    (R + "<answer>8.2</answer>", "7", 3.0, 2.5, 0.25, 0.0),
    (R + "<answer>20</answer>", "7", 3.0, 2.5, -1.0, 0.0),
    (R + "<answer>$18</answer>", "18", 3.0, 2.5, -0.5, 1.5),  # float('$18') raises; the regex finds 18
    (R + "<answer>five</answer>", "5", 3.0, 2.5, -0.5, 0.0),
    (R + "<answer>0.0</answer>", "0", 3.0, 2.5, -0.5, 1.5),  # gold 0: the ratio raises
    (R + "<answer>1.5.</answer>", "1.5", 3.0, 2.5, -0.5, 0.0),  # float('1.5.') raises
    ("", "7", 0.0, -2.5, 0.0, 0.0),
    (R + "<answer>7</answer><answer>7</answer>", "7", 3.0, 0.5, -0.5, 1.5),  # (.+?) stretches to the last tag
]


@pytest.mark.parametrize("completion, gold, exactly, approximately, answer, numbers", TUNIX)
def test_tunix_example_rewards_as_the_example_scores(completion, gold, exactly, approximately, answer, numbers):
    assert match_format_exactly(None, [completion]) == [exactly]
    assert match_format_approximately(None, [completion]) == [approximately]
    assert check_answer(None, [completion], answer=[gold]) == [answer]
    assert check_numbers(None, [completion], answer=[gold]) == [numbers]


def test_lenient_number_reading_is_an_option():
    completion = R + "<answer>$18</answer>"
    assert check_answer(None, [completion], answer=["18"], lenient=True) == [0.5]  # ratio 1.0 read leniently
    assert check_answer(None, [R + "<answer>0.0</answer>"], answer=["0"], lenient=True) == [-0.5]


def think(reasoning, answer):
    return f"<reasoning>{reasoning}</reasoning><answer>{answer}</answer>"


THINK_2B = [
    (think("First, 4 + 6 = 10", "10"), "10", 2 + 25 + 2 + 1),
    (think("4+6", "10.5"), "10", 2 + 5 + 2),
    (think("r", "13"), "10", 2 - 15),
    (think("r", "none"), "10", 2 - 5),
    ("<answer>10</answer>", "10", -10),
    (think("Step 1", "1,000"), "1000", 2 - 15 + 1),  # the regex reads 1
    (think("3/4 of it", "3/4"), "0.75", 2 - 15 + 2),  # the regex reads 3
    (think("x", "0.05"), "0", 2 + 5),  # gold 0: relative to max(|gold|, 1)
    (think("4+6", "10"), "ten", 2 - 15),  # float('ten') raises: returned at once, no bonus
    ("</answer>" + R + "<answer>", "10", 2 - 15),  # all four tags, but no <answer>…</answer>
    (think("first 4 - 2 then", "10"), "10", 2 + 25 + 2),  # step words are case-sensitive
]


@pytest.mark.parametrize("completion, gold, expected", THINK_2B)
def test_think_2b_as_the_team_coded_it(completion, gold, expected):
    assert think_2b(None, [completion], answer=[gold]) == [expected]


@pytest.mark.parametrize("completion, expected", [
    (think("4 + 6 = 10", "10"), 3.0),
    (think("We add them", "9"), 1.0),
    (think("ADD", "9"), 1.0),
    ("<answer>10</answer>", 0.0),
    ("<reasoning>10 + 0 without a closing tag", 0.0),
])
def test_think_2b_consistency(completion, expected):
    assert think_2b_consistency(None, [completion], answer=["10"]) == [expected]


@pytest.mark.parametrize("prompt, reasoning, expected", [
    ("Tom has 3 apples and gets 2 more apples. How many in total?", "3 plus 2", 3.0),
    ("Tom has 3 apples and gets 2 more apples.", "it is 5", -2.0),
    ("What is the total of 3 and 4?", "3 and 4 make 7", 2.0),
    ("What is the total of 3 and 4?", "add them", 0.0),
    ("He had 5 and 2 are left", "5 minus 2", 3.0),
    ("How many are remaining", "it is 3", -2.0),
    ("3 times 4", "3*4", 2.0),
    ("3 times 4", "twelve", 0.0),
    ("He gets 2 more and has 1 left", "add 2 then take away 1", 6.0),
])
def test_think_2b_comprehension(prompt, reasoning, expected):
    assert think_2b_comprehension([prompt], [think(reasoning, "1")]) == [expected]
    assert think_2b_comprehension([prompt], ["<answer>1</answer>"]) == [0.0]


# seed 000's process reward: 0.2 per checkpoint found verbatim inside a closed <reasoning>, uncapped
@pytest.mark.parametrize("completion, expected", [
    ("<reasoning>4 * 2 = 8, 3 * 3 = 9, 8 + 9 = 17</reasoning><answer>17</answer>", 0.6),
    ("<reasoning>4*2=8 and 3 * 3 = 9</reasoning><answer>17</answer>", 0.2),  # spacing differs: not verbatim
    ("<reasoning>4 * 2 = 8 3 * 3 = 9 8 + 9 = 17 20 - 17 x 4 * 2 = 8</reasoning>", 0.8),  # each found once
    ("<reasoning>4 * 2 = 8, 3 * 3 = 9", 0.0),  # no closed block
    ("4 * 2 = 8 <answer>8</answer>", 0.0),
])
def test_checkpoints_as_seed_000_prints_it(completion, expected):
    from reasonlab_plugins.rewards_process import checkpoints

    marks = [["4 * 2 = 8", "3 * 3 = 9", "8 + 9 = 17", "20 - 17"]]
    assert checkpoints(None, [completion], checkpoints=marks) == [pytest.approx(expected)]


def test_checkpoints_is_uncapped_by_default():
    from reasonlab_plugins.rewards_process import checkpoints

    marks = [[f"{i} + 1 = {i + 1}" for i in range(8)]]
    body = "<reasoning>" + ", ".join(marks[0]) + "</reasoning>"
    assert checkpoints(None, [body], checkpoints=marks) == [pytest.approx(1.6)]
    assert checkpoints(None, [body], checkpoints=marks, cap=1.0) == [1.0]
