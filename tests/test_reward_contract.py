"""The reward contract (docs/plugins.md, "Rewards"): declared columns and options checked by
``validate`` and before training, None / bool results, failures that stop the run with the
reason, per-call timeouts, and whether the signal is alive (group std, zero-variance groups)."""

from __future__ import annotations

import json
import math
import textwrap
import time

import pytest
from conftest import REPO, read_metrics, reasonlab, run_dir_of, tiny_recipe

from reasonlab.plugins import get_plugins
from reasonlab.rewards import CompositeReward, RewardError, contract_of
from reasonlab.schema import RewardSpec


def registry_with(**fns):
    registry = get_plugins().registry("rewards")
    for name, fn in fns.items():
        info = fn.pop("info") if isinstance(fn, dict) else {}
        registry.add(name, fn["fn"] if isinstance(fn, dict) else fn, "test", **info)
    return registry


# -- declared options and columns ---------------------------------------------------------------

def test_options_come_from_the_signature_and_columns_from_the_registration():
    rewards = get_plugins().registry("rewards")
    entry = rewards.entries["answer_match"]
    contract = contract_of(entry.obj, entry.info)
    assert set(contract.options) == {"tolerance", "answer_column"}
    assert contract.required_columns({}) == ["answer"]
    assert contract.required_columns({"answer_column": "gold"}) == ["gold"]
    tfidf = rewards.entries["tfidf_relevance"]
    assert contract_of(tfidf.obj, tfidf.info).required_columns({}) == []  # context_column None: no column
    assert contract_of(lambda prompts, completions, **kw: [], {}).options is None  # only **kwargs: unknown


TINY_GRPO = tiny_recipe("contract", '''
[[stages]]
name = "grpo"
kind = "grpo"
data = {{ source = "arithmetic", options = {{ n = 16 }} }}
steps = {steps}
batch_size = 2
num_generations = 2
learning_rate = 1e-3
max_prompt_tokens = 96
max_completion_tokens = 8
rewards = [{rewards}]
{extra}
''')


def write_recipe(tmp_path, rewards, steps=2, extra=""):
    path = tmp_path / "contract.toml"
    path.write_text(TINY_GRPO.format(rewards=rewards, steps=steps, extra=extra))
    return path


def recipe_on_file(tmp_path, rewards, rows, data_extra=""):
    """The contract recipe reading ``rows`` from a JSONL file instead of the generator."""
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    recipe = write_recipe(tmp_path, rewards).read_text().replace(
        'source = "arithmetic", options = { n = 16 }', f'source = "file:{data}"{data_extra}')
    (tmp_path / "contract.toml").write_text(recipe)
    return tmp_path / "contract.toml"


def test_validate_rejects_a_reward_whose_column_the_data_lacks(tmp_path):
    recipe = write_recipe(tmp_path, '{ name = "format_strict" }, { name = "code_tests" }')
    result = reasonlab("validate", recipe)
    assert result.returncode == 2
    assert "stages.grpo.rewards[1]" in result.stderr and "'tests'" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_rejects_an_unknown_reward_option_with_a_suggestion(tmp_path):
    recipe = write_recipe(tmp_path, '{ name = "answer_match", options = { tolerence = 0.1 } }')
    result = reasonlab("validate", recipe)
    assert result.returncode == 2
    assert "stages.grpo.rewards[0].options.tolerence" in result.stderr
    assert "did you mean 'tolerance'" in result.stderr


def test_validate_rejects_an_unknown_judge(tmp_path):
    recipe = write_recipe(tmp_path, '{ name = "criteria_judge", options = { judge = "lokal" } }')
    result = reasonlab("validate", recipe)
    assert result.returncode == 2 and "options.judge" in result.stderr and "'local'" in result.stderr


def test_g_rar_grpo_without_its_rubrics_stage_is_rejected(tmp_path):
    """The rubric judge needs a `rubric` column: G-RaR's base gets it from its rubrics stage;
    GSM8K's own rows (what the base trained on before that stage existed) have none."""
    recipe = REPO / "recipes" / "g_rar.toml"
    assert reasonlab("validate", recipe).returncode == 0  # the base and both profiles
    text = recipe.read_text()
    rubrics = 'data = { source = "stage:rubrics", columns = ["question", "answer", "reasoning", "rubric"] }'
    assert rubrics in text
    bare = tmp_path / "g_rar.toml"
    bare.write_text(text.replace(rubrics, 'data = { source = "hf:openai/gsm8k", split = "train", '
                                          'columns = ["question", "answer", "reasoning"] }'))
    result = reasonlab("validate", bare)
    assert result.returncode == 2
    assert "stages.grpo.rewards[2]" in result.stderr and "'rubric'" in result.stderr


def test_validate_reads_a_jsonl_files_columns_for_its_rewards(tmp_path):
    """A local JSONL file's columns are read from its first row: no ``data.columns`` needed."""
    recipe = recipe_on_file(tmp_path, '{ name = "answer_match" }, { name = "checkpoints" }',
                            [{"question": "1+1?", "answer": "2"}])
    result = reasonlab("validate", recipe)
    assert result.returncode == 2 and "stages.grpo.rewards[1]" in result.stderr, result.stderr
    assert "'checkpoints'" in result.stderr and "it has answer, question" in result.stderr


def test_declared_data_columns_are_checked_against_the_rows(tmp_path):
    recipe = recipe_on_file(tmp_path, '{ name = "answer_match" }', [{"question": "1+1?", "answer": "2"}],
                            ', columns = ["question", "rubric"]')
    result = reasonlab("run", recipe, "--no-progress", "--runs-dir", tmp_path / "runs")
    assert result.returncode == 2 and "'rubric'" in result.stderr and "row 0 lacks" in result.stderr


def test_preflight_stops_before_any_stage_trains(tmp_path):
    """A column only the rows can tell about (a file source): caught before the model loads."""
    recipe = recipe_on_file(tmp_path, '{ name = "checkpoints" }',
                            [{"question": f"{i}+1?", "answer": str(i + 1)} for i in range(4)])
    start = time.perf_counter()
    result = reasonlab("run", recipe, "--no-progress", "--runs-dir", tmp_path / "runs")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "'checkpoints'" in result.stderr and "stages.grpo.rewards[0]" in result.stderr
    assert time.perf_counter() - start < 30  # no model was loaded, nothing compiled
    state = json.loads((run_dir_of(tmp_path / "runs", "contract") / "state.json").read_text())
    assert state["stages"]["grpo"]["status"] == "pending"


# -- what a reward returns --------------------------------------------------------------------

def test_none_means_does_not_apply_and_bools_count_as_numbers():
    registry = registry_with(sometimes=lambda p, c, **_: [None, 1.0, None], flag=lambda p, c, **_: [True, False, True])
    logged = []
    composite = CompositeReward([RewardSpec(name="sometimes", weight=2.0), RewardSpec(name="flag", weight=1.0)],
                                registry, on_metrics=logged.append)
    assert composite(["q"] * 3, ["a", "b", "c"]) == [1.0, 2.0, 1.0]
    assert logged[0]["reward/sometimes/not_applicable"] == 2 and logged[0]["reward/sometimes/mean"] == 1.0
    assert logged[0]["reward/sometimes/failures"] == 0 and logged[0]["reward/flag/mean"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("result, message", [
    (lambda n: [1.0] * (n - 1), "returned 1 scores for 2 completions"),
    (lambda n: [float("nan")] * n, "NaN"),
    (lambda n: ["high"] * n, "a score is a str"),
    (lambda n: None, "NoneType"),
])
def test_malformed_results_are_failures_that_stop_by_default(result, message, tmp_path):
    registry = registry_with(bad=lambda p, c, **_: result(len(c)))
    composite = CompositeReward([RewardSpec(name="bad")], registry, errors_path=tmp_path / "errors.jsonl")
    with pytest.raises(RewardError, match=message):
        composite(["q", "q"], ["a", "b"])
    assert json.loads((tmp_path / "errors.jsonl").read_text().splitlines()[0])["reward"] == "bad"


def test_an_exception_names_the_plugin_file_and_line_and_keeps_the_traceback(tmp_path):
    def judge_down(prompts, completions, **_):
        raise ConnectionError("judge refused the connection")  # line recorded below

    line = judge_down.__code__.co_firstlineno + 1
    composite = CompositeReward([RewardSpec(name="down")], registry_with(down=judge_down),
                                errors_path=tmp_path / "errors.jsonl", where="stages.grpo.rewards")
    with pytest.raises(RewardError) as info:
        composite(["q"], ["a"])
    text = str(info.value)
    assert "ConnectionError: judge refused the connection" in text
    assert f"{__file__}:{line}" in text and "stages.grpo.rewards" in text
    record = json.loads((tmp_path / "errors.jsonl").read_text())
    assert record["where"] == f"{__file__}:{line}" and "Traceback" in record["traceback"]


def test_partial_failures_stop_once_the_window_rate_is_exceeded():
    calls = iter(range(100))

    def flaky(prompts, completions, **_):
        i = next(calls)
        return [math.nan if (i + k) % 4 == 0 else 1.0 for k in range(len(completions))]

    composite = CompositeReward([RewardSpec(name="flaky")], registry_with(flaky=flaky), failure_window=3,
                                max_failure_rate=0.2)
    composite(["q"] * 4, ["a"] * 4)
    composite(["q"] * 4, ["a"] * 4)  # 25 % failures, window not full yet
    with pytest.raises(RewardError, match="over the last 3 calls"):
        composite(["q"] * 4, ["a"] * 4)
    tolerant = CompositeReward([RewardSpec(name="flaky")], registry_with(), failure_window=3, max_failure_rate=0.5)
    for _ in range(6):
        tolerant(["q"] * 4, ["a"] * 4)  # 25 % < 50 %: trains on


def test_fallback_mode_warns_once_then_reports_the_rate():
    def boom(p, c, **_):
        raise RuntimeError("dead")

    warnings = []
    composite = CompositeReward([RewardSpec(name="boom")], registry_with(boom=boom), failures="fallback",
                                fallback=-1.0, failure_window=2, warn=warnings.append)
    for _ in range(4):
        assert composite(["q"], ["a"]) == [-1.0]
    assert sum("RuntimeError: dead" in w for w in warnings) == 1
    assert any("4 failures" in w for w in warnings)
    assert composite.summary()[0]["failures"] == 4


def test_fail_fast_stops_at_the_first_failed_completion():
    registry = registry_with(one_nan=lambda p, c, **_: [1.0, math.nan, 1.0, 1.0])
    with pytest.raises(RewardError, match="fail_fast"):
        CompositeReward([RewardSpec(name="one_nan")], registry, fail_fast=True)(["q"] * 4, ["a"] * 4)
    CompositeReward([RewardSpec(name="one_nan")], registry)(["q"] * 4, ["a"] * 4)  # 25 %: the default trains on


def test_a_reward_past_its_timeout_is_cut_off_and_counted():
    def hangs(p, c, **_):
        time.sleep(30)
        return [1.0] * len(c)

    logged = []
    composite = CompositeReward([RewardSpec(name="hangs", timeout=0.3), RewardSpec(name="format_strict")],
                                registry_with(hangs=hangs), on_metrics=logged.append, fallback=0.0)
    start = time.perf_counter()
    assert composite(["q"], ["<reasoning>x</reasoning><answer>1</answer>"]) == [1.0]
    assert time.perf_counter() - start < 2
    assert logged[0]["reward/hangs/timeouts"] == 1.0
    assert composite.summary()[0]["timeouts"] == 1


def test_the_step_deadline_caps_every_reward_whatever_its_own_timeout():
    def slow(p, c, **_):
        time.sleep(30)
        return [1.0] * len(c)

    logged = []
    composite = CompositeReward([RewardSpec(name="slow", timeout=600), RewardSpec(name="slower")],
                                registry_with(slow=slow, slower=slow), on_metrics=logged.append,
                                failures="fallback", deadline=0.5)
    start = time.perf_counter()
    assert composite(["q"], ["a"]) == [0.0]
    assert time.perf_counter() - start < 2  # both cut at the deadline: they run side by side
    assert logged[0]["reward/slow/timeouts"] == logged[0]["reward/slower/timeouts"] == 1.0


def test_judge_rewards_register_a_shorter_timeout():
    rewards = get_plugins().registry("rewards")
    judge = rewards.entries["rubric_judge"]
    assert contract_of(judge.obj, judge.info).timeout < contract_of(rewards.get("format_strict")).timeout


# -- is the signal alive? -----------------------------------------------------------------------

def test_group_std_and_zero_variance_groups_equal_a_hand_count():
    scripted = [1.0, 1.0, 1.0, 1.0,  0.0, 1.0, 0.0, 1.0,  0.0, 0.0, 0.0, 0.0]  # three groups of four
    logged = []
    composite = CompositeReward([RewardSpec(name="scripted")], registry_with(scripted=lambda p, c, **_: scripted),
                                group_size=4, on_metrics=logged.append)
    composite(["q"] * 12, ["a"] * 12)
    assert logged[0]["reward/zero_variance_groups"] == pytest.approx(2 / 3)
    assert logged[0]["reward/scripted/group_std"] == pytest.approx((0 + 0.5 + 0) / 3)
    assert logged[0]["reward/total/group_std"] == pytest.approx(0.5 / 3)


PLUGIN = '''
from reasonlab import hookimpl


def raises_always(prompts, completions, **_):
    raise ValueError("the judge said no")


@hookimpl
def register_rewards(register):
    register("raises_always", raises_always)
'''


@pytest.mark.slow
def test_a_reward_failing_everywhere_stops_a_run_in_its_first_step(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "dead.py").write_text(textwrap.dedent(PLUGIN))
    recipe = write_recipe(tmp_path, '{ name = "format_strict" }, { name = "raises_always" }', steps=3)
    runs = tmp_path / "runs"
    result = reasonlab("--plugins-dir", plugins, "run", recipe, "--no-progress", "--runs-dir", runs)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "ValueError: the judge said no" in result.stderr
    assert f"{plugins / 'dead.py'}:6" in result.stderr
    assert "Traceback" not in result.stderr
    run_dir = run_dir_of(runs, "contract")
    errors = [json.loads(line) for line in (run_dir / "stages/grpo/reward_errors.jsonl").read_text().splitlines()]
    assert errors[0]["reward"] == "raises_always" and "Traceback" in errors[0]["traceback"]
    assert not any("train/actor/loss" in r for r in read_metrics(run_dir))  # no step trained on it


def test_a_reward_that_takes_context_gets_the_runs_and_its_options_exclude_it():
    """Rewards reach plugins and run-long objects through the context the core passes, not globals."""
    from reasonlab.rewards import RewardContext, contract_of

    seen = []

    def uses_context(prompts, completions, scale: float = 1.0, context=None, **_):
        seen.append(context)
        context.shared["calls"] = context.shared.get("calls", 0) + 1
        return [scale * len(c) for c in completions]

    assert set(contract_of(uses_context).options) == {"scale"}  # `context` is not a recipe option
    context = RewardContext(get_plugins(), shared={})
    composite = CompositeReward([RewardSpec(name="ctx", options={"scale": 2.0})], registry_with(ctx=uses_context),
                                context=context)
    assert composite(["q", "q"], ["ab", "abc"]) == [4.0, 6.0]
    composite(["q"], ["a"])
    assert seen == [context, context] and context.shared["calls"] == 2
    plain = CompositeReward([RewardSpec(name="format_strict")], get_plugins().registry("rewards"), context=context)
    assert plain(["q"], ["<reasoning>r</reasoning><answer>1</answer>"]) == [1.0]  # rewards without it: unchanged


def test_judges_live_in_the_runs_context():
    from reasonlab.rewards import RewardContext
    from reasonlab_plugins.rewards_judge import get_judge

    a, b = RewardContext(get_plugins(), shared={}), RewardContext(get_plugins(), shared={})
    options = {"base_url": "http://127.0.0.1:9/v1", "model": "m", "cache": False}
    assert get_judge("openai", options, a) is get_judge("openai", options, a)  # one per run, kept across steps
    assert get_judge("openai", options, a) is not get_judge("openai", options, b)  # not shared between runs
    assert a.shared["judges"]
