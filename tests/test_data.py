"""Dataset plugins (generated, local files through HF datasets) and the length budget."""

from __future__ import annotations

import json

import pytest

from reasonlab.data import apply_length_budget, load_rows, render_prompt, render_target
from reasonlab.errors import DataError
from reasonlab.plugins import get_plugins
from reasonlab.schema import DataSpec
from reasonlab_plugins.datasets_arithmetic import generate


def test_arithmetic_is_deterministic_and_splits_are_disjoint():
    train, test = generate(n=300, seed=3), generate(n=100, seed=3, split="test")
    assert train == generate(n=300, seed=3)
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    row = train[0]
    assert set(row) >= {"question", "reasoning", "answer", "checkpoints"}
    # the checkpoints really compute the answer
    assert row["checkpoints"][-1].endswith(f"= {row['answer']}")


def test_jsonl_and_parquet_through_hf_datasets(tmp_path):
    import datasets

    rows = [{"question": f"q{i}", "answer": str(i), "reasoning": "r"} for i in range(5)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "d.parquet"))
    plugins = get_plugins()
    for name in ("d.jsonl", "d.parquet"):
        loaded = load_rows(DataSpec(source=f"file:{tmp_path / name}"), plugins)
        assert loaded == rows
    assert len(load_rows(DataSpec(source=f"file:{tmp_path / 'd.jsonl'}", limit=2), plugins)) == 2


@pytest.mark.parametrize("content,fragment", [
    ('{"question": "a"}\n{"question": \n', ":2"),
    ('{"question": "a"}\n[1, 2]\n', "not a JSON object"),
    (b'{"question": "\xff"}\n', "not UTF-8"),
])
def test_bad_rows_are_named(tmp_path, content, fragment):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError) as info:
        load_rows(DataSpec(source=f"file:{path}"), get_plugins())
    assert fragment in str(info.value) and "bad.jsonl" in str(info.value)


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(DataError):
        load_rows(DataSpec(source=f"file:{path}"), get_plugins())


def test_length_budget_drops_and_counts():
    result = apply_length_budget(["a", "b", "c"], [(3, 9), (3, 3), (12, 1)], (10, 5))
    assert result.kept == ["b"] and result.dropped == 2


def test_prompt_and_target_rendering():
    spec = DataSpec(source="arithmetic")
    row = {"question": "2+2?", "reasoning": "2 + 2 = 4", "answer": "4"}
    assert "Question: 2+2?" in render_prompt(row, spec) and "<reasoning>" in render_prompt(row, spec)
    assert render_target(row, spec) == "<reasoning>2 + 2 = 4</reasoning><answer>4</answer>"


def test_review_takes_the_row_ranges_it_is_given():
    """2B-think's session 2: rows 500–999 again with 500 replayed from rows 0–499 (here 4–7 and 0–3)."""
    import pytest

    from reasonlab.data import load_rows
    from reasonlab.errors import DataError
    from reasonlab.plugins import get_plugins
    from reasonlab.schema import DataSpec
    from reasonlab_plugins.datasets_arithmetic import generate

    inner = [r["question"] for r in generate(n=16)]
    spec = DataSpec(source="review:arithmetic", options={"new_rows": [4, 8], "review_rows": [0, 4],
                                                        "review_ratio": 1.0, "inner_options": {"n": 16}})
    rows = load_rows(spec, get_plugins())
    assert sorted(r["question"] for r in rows if not r["review"]) == sorted(inner[4:8])
    assert sorted(r["question"] for r in rows if r["review"]) == sorted(inner[0:4])
    none = load_rows(spec.model_copy(update={"options": {**spec.options, "review_ratio": 0.0}}), get_plugins())
    assert not any(r["review"] for r in none) and len(none) == 4
    for bad in ([8, 4], [0], "0-4", [0, 40]):
        with pytest.raises(DataError, match="new_rows|rows"):
            load_rows(spec.model_copy(update={"options": {**spec.options, "new_rows": bad}}), get_plugins())


def test_prompts_use_the_models_chat_turns_when_it_has_them():
    import pytest

    from reasonlab.data import render_prompt
    from reasonlab.errors import DataError
    from reasonlab.schema import DataSpec
    from reasonlab_plugins.models_checkpoint import GEMMA_CHAT

    row = {"question": "2+2?"}
    spec = DataSpec(source="arithmetic", template="{question}", system_prompt="Think, then answer.")
    assert render_prompt(row, spec) == "Think, then answer.\n\n2+2?"                       # a base model: plain
    assert render_prompt(row, spec, GEMMA_CHAT) == (
        "<start_of_turn>user\nThink, then answer.\n\n2+2?<end_of_turn>\n<start_of_turn>model\n")
    assert render_prompt(row, spec.model_copy(update={"chat": False}), GEMMA_CHAT) == "Think, then answer.\n\n2+2?"
    with pytest.raises(DataError, match="no chat template"):
        render_prompt(row, spec.model_copy(update={"chat": True}))


def test_source_fields_map_into_the_tag_format(tmp_path):
    """Format-Align-Reinforce's SFT data: an R1 trace (Magpie) and a chat reply (UltraFeedback)
    become <reasoning>…</reasoning><answer>…</answer> targets."""
    import json

    from reasonlab.data import load_rows, render_target
    from reasonlab.plugins import get_plugins
    from reasonlab.schema import DataSpec

    magpie = tmp_path / "magpie.jsonl"
    magpie.write_text(json.dumps({"instruction": "2+2?", "response": "<think>\nTwo and two make four.\n</think>\n\nIt is 4."}) + "\n")
    spec = DataSpec(source=f"file:{magpie}", question_field="instruction", answer_field="response",
                    options={"reasoning_tags": ["<think>", "</think>"]})
    row = load_rows(spec, get_plugins())[0]
    assert render_target(row, spec) == "<reasoning>Two and two make four.</reasoning><answer>It is 4.</answer>"

    feedback = tmp_path / "feedback.jsonl"
    chat = [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi!"}]
    feedback.write_text(json.dumps({"prompt": "Say hi", "chosen": chat}) + "\n")
    spec = DataSpec(source=f"file:{feedback}", question_field="prompt", answer_field="chosen",
                    options={"assistant_content": True})
    row = load_rows(spec, get_plugins())[0]
    assert render_target(row, spec) == "<reasoning></reasoning><answer>Hi!</answer>"


def test_idea_e_dilemmas_hold_out_whole_scenarios_and_have_difficulty_levels():
    """IDEA-E's set: >= 300 train / >= 100 test items, no test scenario in training, levels 1-3
    that follow from each case (1 + its complications)."""
    from reasonlab_plugins.datasets_bundled import idea_e_dilemmas

    train, test = idea_e_dilemmas(n=400), idea_e_dilemmas(n=200, split="test")
    assert len(train) == 400 and len(test) == 200
    assert not {r["scenario"] for r in train} & {r["scenario"] for r in test}
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    assert len({r["scenario"] for r in test}) == 6 and len({r["scenario"] for r in train}) == 18
    for rows in (train, test):
        assert {r["difficulty"] for r in rows} == {1, 2, 3}
        for r in rows:  # each complication is one more sentence of the question and one more principle
            assert r["difficulty"] == len(r["context"].split("; ")) - 1
            assert all(f"{s}:" in r["reasoning"] for s in ("Identify", "Determine", "Explore", "Act", "Evaluate"))


def test_curriculum_orders_by_difficulty_and_refuses_a_flat_or_missing_one(tmp_path):
    import json

    import pytest

    from reasonlab.data import load_rows
    from reasonlab.errors import DataError
    from reasonlab.plugins import get_plugins
    from reasonlab.schema import DataSpec

    spec = DataSpec(source="curriculum:idea_e_dilemmas", order="as_is", options={"inner_options": {"n": 60}})
    levels = [r["difficulty"] for r in load_rows(spec, get_plugins())]
    assert levels == sorted(levels) and set(levels) == {1, 2, 3}

    flat, missing = tmp_path / "flat.jsonl", tmp_path / "missing.jsonl"
    flat.write_text("".join(json.dumps({"question": f"q{i}", "answer": "a", "difficulty": 2}) + "\n" for i in range(4)))
    missing.write_text("".join(json.dumps({"question": f"q{i}", "answer": "a", **({"difficulty": i} if i else {})}) + "\n"
                               for i in range(4)))
    with pytest.raises(DataError, match="same difficulty"):
        load_rows(DataSpec(source=f"curriculum:file:{flat}"), get_plugins())
    with pytest.raises(DataError, match="row 0 has no numeric 'difficulty'"):
        load_rows(DataSpec(source=f"curriculum:file:{missing}"), get_plugins())


def test_stage_source_keeps_the_items_an_eval_stage_failed(tmp_path):
    import json

    import pytest

    from reasonlab.data import load_rows
    from reasonlab.errors import DataError
    from reasonlab.plugins import get_plugins
    from reasonlab.schema import DataSpec

    stage = tmp_path / "stages" / "find_hard"
    stage.mkdir(parents=True)
    (stage / "items.jsonl").write_text("".join(
        json.dumps({"question": q, "answer": "1", "pass_rate": p}) + "\n" for q, p in [("a", 0.0), ("b", 0.4), ("c", 1.0)]))
    def questions(**options):
        spec = DataSpec(source="stage:find_hard", options=options)
        return [r["question"] for r in load_rows(spec, get_plugins(), run_dir=tmp_path)]

    assert questions() == ["a", "b", "c"] and questions(max_pass_rate=0.4) == ["a", "b"]
    assert questions(max_pass_rate=0.0) == ["a"]
    (stage / "items.jsonl").write_text(json.dumps({"question": "c", "answer": "1", "pass_rate": 1.0}) + "\n")
    with pytest.raises(DataError, match="none of the 1 items"):
        questions(max_pass_rate=0.5)
    for bad in (1.5, "0.2", True):
        with pytest.raises(DataError, match="max_pass_rate must be"):
            questions(max_pass_rate=bad)
    with pytest.raises(DataError, match="no output of stage 'other'"):
        load_rows(DataSpec(source="stage:other"), get_plugins(), run_dir=tmp_path)


def test_show_tests_puts_mbpps_asserts_in_the_prompt(tmp_path):
    """MBPP's prompt names the function only in its tests: show_tests appends them (Austin et al., 2021)."""
    import json

    import pytest

    from reasonlab.data import load_rows
    from reasonlab.errors import DataError
    from reasonlab.plugins import get_plugins
    from reasonlab.schema import DataSpec

    data = tmp_path / "mbpp.jsonl"
    data.write_text(json.dumps({"text": "Write a function to find the shared elements of two lists.", "code": "...",
                                "test_list": ["assert similar_elements((3, 4), (4, 5)) == (4,)"]}) + "\n")
    spec = DataSpec(source=f"file:{data}", question_field="text", answer_field="code", options={"show_tests": "test_list"})
    [row] = load_rows(spec, get_plugins())
    assert row["text"] == ("Write a function to find the shared elements of two lists.\n"
                           "Your code should pass these tests:\nassert similar_elements((3, 4), (4, 5)) == (4,)")
    with pytest.raises(DataError, match="row 0 has no list of tests in column 'tests'"):
        load_rows(spec.model_copy(update={"options": {"show_tests": "tests"}}), get_plugins())
