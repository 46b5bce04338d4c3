"""reasoning-gym tasks as a data source and their verifiers as rewards (offline: the
package generates its items)."""

from __future__ import annotations

import pytest
import reasoning_gym

from reasonlab.plugins import get_plugins
from reasonlab.schema import DataSpec

TASKS = ["gsm_symbolic", "basic_arithmetic"]


def rows(task, split="train", **options):
    spec = DataSpec(source=f"reasoning_gym:{task}", split=split, options=options)
    return get_plugins().registry("datasets").get("reasoning_gym")(task, spec)


def columns(batch):
    return {key: [row[key] for row in batch] for key in batch[0]}


@pytest.mark.parametrize("task", TASKS)
def test_rewards_equal_the_tasks_own_score_answer(task):
    batch = rows(task, n=6, seed=3)
    assert len(batch) == 6 and {"question", "answer", "reasoning", "metadata"} <= set(batch[0])
    rewards = get_plugins().registry("rewards")
    wrong = "<reasoning>guess</reasoning><answer>123456789</answer>"
    completions = [f"<reasoning>work</reasoning><answer>{r['answer']}</answer>" for r in batch] + [wrong] * 6
    cols = {k: v + v for k, v in columns(batch).items()}
    got = rewards.get("reasoning_gym")(["q"] * 12, completions, **cols)
    verifier = reasoning_gym.get_score_answer_fn(task)
    for row, completion, score in zip(batch + batch, completions, got):
        dataset = reasoning_gym.create_dataset(task, seed=row["rg_seed"], size=6)
        entry = dataset[row["rg_index"]]
        assert entry["question"] == row["question"]
        answer = completion.split("<answer>")[1].split("</answer>")[0]
        assert score == verifier(answer, entry)
    assert got[:6] == [1.0] * 6 and max(got[6:]) < 1.0
    correct = rewards.get("reasoning_gym_correct")(["q"] * 12, completions, **cols)
    assert correct == [1.0] * 6 + [0.0] * 6


def test_gsm_symbolic_splits_never_share_a_template():
    train, test = rows("gsm_symbolic", n=300, seed=1), rows("gsm_symbolic", split="test", n=100, seed=1)
    train_templates, test_templates = {r["template"] for r in train}, {r["template"] for r in test}
    assert train_templates.isdisjoint(test_templates)
    assert len(test_templates) >= 10 and len(train_templates) >= 40
    assert {r["question"] for r in train}.isdisjoint(r["question"] for r in test)
    assert all(r["reasoning"] for r in train)  # a worked GSM8K-style solution to learn from


def test_other_tasks_split_by_question():
    train, test = rows("basic_arithmetic", n=200, seed=2), rows("basic_arithmetic", split="test", n=50, seed=2)
    assert {r["question"] for r in train}.isdisjoint(r["question"] for r in test)


def test_bad_task_names_and_options_are_data_errors():
    from reasonlab.errors import DataError

    loader = get_plugins().registry("datasets").get("reasoning_gym")
    with pytest.raises(DataError, match="did you mean 'gsm_symbolic'"):
        loader.check("gsm_symbolik", DataSpec(source="reasoning_gym:gsm_symbolik"))
    with pytest.raises(DataError, match="options.n"):
        loader.check("gsm_symbolic", DataSpec(source="reasoning_gym:gsm_symbolic", options={"n": "abc"}))
    with pytest.raises(DataError, match="refused its options"):
        rows("basic_arithmetic", n=4, not_a_knob=3)
