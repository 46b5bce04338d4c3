"""Eval metrics on hand-made completions, pass@k, consensus votes."""

from __future__ import annotations

import math
from itertools import combinations

import pytest

from reasonlab.stats import wilson

from reasonlab_plugins.rewards_answer import answer_match
from reasonlab_plugins.stage_eval import EvalConfig, EvalStage, majority, pass_at_k, score_samples, summarize

ROWS = [{"question": "q1", "answer": "7", "domain": "math"}, {"question": "q2", "answer": "10", "domain": "math"},
        {"question": "q3", "answer": "3", "domain": "logic"}, {"question": "q4", "answer": "1", "domain": "logic"}]
COMPLETIONS = [
    "<reasoning>3+4=7</reasoning><answer>7</answer>",       # format, right
    "<reasoning>5*2=11</reasoning><answer>11</answer>",     # format, wrong
    "the answer is <answer>3</answer>",                     # no format, right
    "",                                                     # nothing
]


def test_summarize_matches_hand_computed_values():
    samples = score_samples(["p"] * 4, COMPLETIONS, ROWS, answer_match, "answer")
    metrics = summarize(samples)
    assert metrics["format_accuracy"] == 0.5
    assert metrics["answer_accuracy"] == 0.5
    assert metrics["mean_completion_chars"] == sum(map(len, COMPLETIONS)) / 4
    assert metrics["partial_format_credit"] == (1 + 1 + 0.5 + 0) / 4  # the third has only the answer tags
    assert metrics["mean_reasoning_words"] == (1 + 1 + 0 + 0) / 4
    assert metrics["format_accuracy/math"] == 1.0 and metrics["format_accuracy/logic"] == 0.0
    assert metrics["answer_accuracy/math"] == 0.5 and metrics["answer_accuracy/logic"] == 0.5
    assert [s["answer"] for s in samples] == ["7", "11", "3", None]


@pytest.mark.parametrize("n,c,k", [(5, 0, 1), (5, 5, 3), (10, 3, 1), (10, 3, 5), (8, 2, 8), (20, 7, 4)])
def test_pass_at_k_equals_brute_force(n, c, k):
    outcomes = [1] * c + [0] * (n - c)
    subsets = list(combinations(range(n), k))
    expected = sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)
    assert math.isclose(pass_at_k(n, c, k), expected)
    if k == 1:
        assert math.isclose(pass_at_k(n, c, 1), c / n)


def test_pass_at_k_rejects_k_above_n():
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_majority_vote_compares_numbers_by_value():
    assert majority(["12", "12.0", "13", None]) == "12"
    assert majority([None, None]) is None
    assert majority(["a", "b"]) == "a"  # tie: first seen


def test_consensus_fixed_and_broke_counts():
    rows = [{"question": f"q{i}", "answer": a} for i, a in enumerate(["1", "2", "3"])]
    prompts = ["p"] * 3
    greedy = score_samples(prompts, ["<answer>1</answer>", "<answer>9</answer>", "<answer>3</answer>"], rows, answer_match, "answer")

    def draw(answers):
        return [{"answer": a} for a in answers]

    # votes: item0 -> 1 (stays right), item1 -> 2 (fixed), item2 -> 4 (broke)
    draws = [draw(["1", "2", "4"]), draw(["1", "2", "4"]), draw(["5", "9", "3"])]
    cfg = EvalConfig(data={"source": "arithmetic"}, protocol="consensus")
    metrics = EvalStage._consensus(greedy, draws, rows, prompts, answer_match, cfg)
    low, high = wilson(2, 3)
    assert metrics == {"consensus_accuracy": 2 / 3, "consensus_fixed": 1.0, "consensus_broke": 1.0,
                       "consensus_accuracy_ci95_low": low, "consensus_accuracy_ci95_high": high,
                       "consensus_answered": 3.0, "consensus_accuracy_answered": 2 / 3}


def test_consensus_counts_no_answer_as_wrong_and_reports_the_answered_rate():
    """2B-think's README: 62 right of the 87 votes that produced an answer, of 100 questions."""
    rows = [{"question": f"q{i}", "answer": "1"} for i in range(4)]
    prompts = ["p"] * 4
    greedy = score_samples(prompts, ["<answer>1</answer>"] * 4, rows, answer_match, "answer")
    votes = [[{"answer": a} for a in ("1", "1", None, "2")]] * 3      # item 2: no draw produced an answer
    cfg = EvalConfig(data={"source": "arithmetic"}, protocol="consensus")
    metrics = EvalStage._consensus(greedy, votes, rows, prompts, answer_match, cfg)
    assert metrics["consensus_accuracy"] == 2 / 4                      # the headline: no answer is wrong
    assert (metrics["consensus_answered"], metrics["consensus_accuracy_answered"]) == (3.0, 2 / 3)


@pytest.mark.slow
def test_generator_samples_with_top_k_and_is_greedy_with_top_k_1():
    """Tunix decodes greedily when given top_k without top_p; our generator must really sample."""
    from reasonlab.sampling import Generator
    from reasonlab.schema import ModelSpec
    from reasonlab_plugins.models_tiny import load

    generate = Generator(load(ModelSpec(preset="tiny")), 64, 16, batch_size=2)
    prompts = ["Question: Ana has 3 apples.", "Question: Ben has 4 pens."]
    sampled = {tuple(generate(prompts, 1.0, 30, seed)[0]) for seed in (1, 2, 3)}
    greedy = {tuple(generate(prompts, 1.0, 1, seed)[0]) for seed in (1, 2, 3)}
    assert len(sampled) == 3 and len(greedy) == 1


@pytest.mark.slow
def test_eval_command_on_a_preset_and_on_a_run(quickstart_run, tmp_path):
    import json

    from conftest import reasonlab

    result = reasonlab("eval", "tiny", "--option", "n=4", "--max-new-tokens", "8", "--protocol", "consensus",
                       "--out", tmp_path / "preset")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "preset" / "eval.json").read_text())
    assert report["protocol"] == "consensus" and {"consensus_accuracy", "format_accuracy"} <= set(report["metrics"])
    assert "format_accuracy" in result.stdout

    run_dir, _ = quickstart_run
    result = reasonlab("eval", run_dir, "--option", "n=4", "--max-new-tokens", "16", "--max-prompt-tokens", "96")
    assert result.returncode == 0, result.stderr[-2000:]
    assert list(run_dir.glob("evals/eval-*/eval.json"))  # the run's last finished stage was evaluated
    bad = reasonlab("eval", "tiny", "--option", "bogus=1")
    assert bad.returncode == 2 and "bogus" in bad.stderr


@pytest.mark.slow
def test_sampled_format_reports_what_the_policy_samples(tmp_path):
    """``sampled_format = N`` adds N samples per item at temperature 0.7; the sampled_* metrics
    are over exactly those samples, with their own n and interval."""
    import json

    from conftest import reasonlab

    result = reasonlab("eval", "tiny", "--option", "n=4", "--max-new-tokens", "8", "--set", "sampled_format=2",
                       "--set", "batch_size=4", "--out", tmp_path / "e")
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "e" / "eval.json").read_text())["metrics"]
    lines = [json.loads(line) for line in (tmp_path / "e" / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 4 + 2 * 4
    sampled = lines[4:]
    assert metrics["sampled_format_accuracy"] == pytest.approx(sum(s["format"] for s in sampled) / 8)
    assert metrics["sampled_n"] == 8 and metrics["n"] == 4
    assert {"sampled_format_accuracy_ci95_low", "sampled_format_accuracy_ci95_high"} <= set(metrics)
    assert len({s["completion"] for s in sampled}) > 1  # really sampled, not four copies of the greedy text
    bad = reasonlab("eval", "tiny", "--set", "sampled_format=-1")
    assert bad.returncode == 2 and "sampled_format" in bad.stderr


def test_item_pass_rates_count_each_items_own_completions():
    from reasonlab_plugins.stage_eval import item_pass_rates

    rows = [{"question": "a"}, {"question": "b"}, {"question": "c"}]
    greedy = [{"correct": 1.0}, {"correct": 0.0}, {"correct": 0.0}]
    extra = [{"correct": c} for c in (1.0, 0.0, 1.0,  # draw 1, items a b c
                                      0.0, 0.0, 1.0)]  # draw 2
    out = item_pass_rates(rows, greedy, extra)
    assert [r["pass_rate"] for r in out] == [2 / 3, 0.0, 2 / 3]
    assert [r["greedy_correct"] for r in out] == [1.0, 0.0, 0.0] and out[0]["question"] == "a"
    assert [r["pass_rate"] for r in item_pass_rates(rows, greedy, [])] == [1.0, 0.0, 0.0]
