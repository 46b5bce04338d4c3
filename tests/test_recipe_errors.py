"""Malformed recipes: each gives its own clear message naming file and key path, exit 2, no traceback."""

from __future__ import annotations

import textwrap

import pytest

from reasonlab.cli import main

GOOD = """
[recipe]
name = "t"
[model]
preset = "tiny"
[[stages]]
name = "sft"
kind = "sft"
data = { source = "arithmetic" }
steps = 2
[[stages]]
name = "grpo"
kind = "grpo"
data = { source = "arithmetic" }
steps = 2
rewards = [{ name = "format_strict" }]
[profiles.small]
stages.sft.steps = 1
"""

CASES = {
    "toml_syntax": (GOOD.replace('name = "t"', 'name = "t'), ["invalid TOML", "line"]),
    "missing_model": (GOOD.replace('[model]\npreset = "tiny"\n', ""), ["model: required key is missing"]),
    "unknown_top_key": (GOOD + "\n[trainer]\nx = 1\n", ["trainer: unknown key"]),
    "unknown_stage_key_typo": (GOOD.replace("steps = 2\n[[stages]]", "stepz = 2\n[[stages]]"),
                               ["stages.sft.stepz: unknown key", "did you mean 'steps'"]),
    "wrong_type": (GOOD.replace("steps = 2\n[[stages]]", 'steps = "many"\n[[stages]]'), ["stages.sft.steps", "integer"]),
    "negative_steps": (GOOD.replace("steps = 2\n[[stages]]", "steps = -3\n[[stages]]"), ["stages.sft.steps", "greater than 0"]),
    "unknown_stage_kind": (GOOD.replace('kind = "sft"', 'kind = "sfft"'), ["stages.sft.kind", "unknown stage 'sfft'", "did you mean 'sft'"]),
    "unknown_reward": (GOOD.replace('"format_strict"', '"format_strct"'),
                       ["stages.grpo.rewards[0].name", "unknown reward 'format_strct'", "did you mean 'format_strict'"]),
    "unknown_model": (GOOD.replace('preset = "tiny"', 'preset = "tinyy"'), ["model.preset", "unknown model 'tinyy'", "did you mean 'tiny'"]),
    "unknown_dataset": (GOOD.replace('data = { source = "arithmetic" }\nsteps = 2\n[[', 'data = { source = "arithmetc" }\nsteps = 2\n[['),
                        ["stages.sft.data.source", "unknown dataset 'arithmetc'"]),
    "duplicate_stage_names": (GOOD.replace('name = "grpo"', 'name = "sft"'), ["two stages are named 'sft'"]),
    "no_stages": (GOOD.split("[[stages]]")[0], ["stages: required key is missing"]),
    "bad_recipe_name": (GOOD.replace('name = "t"', 'name = "has space"'), ["recipe.name", "pattern"]),
    "missing_rewards": (GOOD.replace('rewards = [{ name = "format_strict" }]\n', ""), ["stages.grpo.rewards: required key is missing"]),
    "unknown_tracker": (GOOD + '\n[tracking]\nwandbb = { project = "x" }\n', ["tracking.wandbb", "did you mean 'wandb'"]),
    "eval_every_without_eval_data": (GOOD.replace("steps = 2\n[[stages]]", "steps = 2\neval_every = 1\n[[stages]]"),
                                     ["stages.sft", "eval_every and eval_data go together", "set eval_data"]),
    "eval_options_unknown_key": (GOOD.replace("steps = 2\n[[stages]]", 'steps = 2\neval_every = 1\neval_data = { source = "arithmetic" }\n'
                                              'eval_options = { answer_rewrd = "answer_match" }\n[[stages]]'),
                                 ["stages.sft.eval_options.answer_rewrd: unknown key", "did you mean 'answer_reward'"]),
    "eval_options_unknown_reward": (GOOD.replace("steps = 2\n[[stages]]", 'steps = 2\neval_every = 1\neval_data = { source = "arithmetic" }\n'
                                                 'eval_options = { answer_reward = "answer_mach" }\n[[stages]]'),
                                    ["stages.sft.eval_options.answer_reward", "unknown reward 'answer_mach'"]),
    "reward_weight_type": (GOOD.replace('{ name = "format_strict" }', '{ name = "format_strict", weight = "high" }'),
                           ["stages.grpo.rewards[0].weight"]),
}
# stage settings that only the whole recipe can judge: refused by `validate`, before anything trains
PREFERENCE = '\n[[stages]]\nname = "po"\nkind = "preference"\nsteps = 1\ndata = { source = "arithmetic", options = { pairs = true } }\n'
DISTILL = '\n[[stages]]\nname = "teach"\nkind = "distill"\ndata = { source = "arithmetic" }\n'
STAGE_SETTINGS = {
    "grpo_reference_base_without_lora": (GOOD.replace("steps = 2\nrewards", 'steps = 2\nreference = "base"\nrewards'),
                                         ["stages.grpo.reference", "this model has no LoRA"]),
    "rollout_engine_not_installed": (GOOD.replace("steps = 2\nrewards", 'steps = 2\nrollout_engine = "sglang_jax"\nrewards'),
                                     ["stages.grpo.rollout_engine", "'sgl_jax' package"]),
    "preference_stage_with_a_non_preference_loss": (GOOD + PREFERENCE + 'loss = "cross_entropy"\n',
                                                    ["stages.po.loss", "not a preference loss"]),
    "self_ranked_pairs_without_rewards": (GOOD + PREFERENCE + 'pairs = "self"\n', ["stages.po.rewards", "ranks samples"]),
    "labelled_completions_with_a_paired_loss": (GOOD + PREFERENCE + 'pairs = "labelled"\n',
                                                ["stages.po.pairs", "needs pairs", "kto"]),
    "desirable_per_batch_with_a_paired_loss": (GOOD + PREFERENCE + 'desirable_per_batch = 2\n',
                                               ["stages.po.desirable_per_batch", "unpaired losses"]),
    "stage_source_naming_no_stage": (GOOD.replace('data = { source = "arithmetic" }\nsteps = 2\nrewards',
                                                  'data = { source = "stage:evl" }\nsteps = 2\nrewards'),
                                     ["stages.grpo.data.source", "reads stage 'evl', which is not in the recipe"]),
    "stage_source_naming_a_later_stage": (GOOD.replace('data = { source = "arithmetic" }\nsteps = 2\n[[',
                                                       'data = { source = "stage:grpo" }\nsteps = 2\n[['),
                                          ["stages.sft.data.source", "'grpo', which does not run before this stage"]),
    "stage_source_naming_a_training_stage": (GOOD.replace('data = { source = "arithmetic" }\nsteps = 2\nrewards',
                                                          'data = { source = "curriculum:stage:sft" }\nsteps = 2\nrewards'),
                                             ["stages.grpo.data.source", "stage 'sft' (kind 'sft') writes no rows"]),
    "distill_teacher_judge_unknown": (GOOD + DISTILL + 'teacher_judge = "opnai"\n',
                                      ["stages.teach.teacher_judge", "did you mean 'openai'"]),
}
CASES.update(STAGE_SETTINGS)


def test_a_batch_that_does_not_split_over_the_processes_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JAX_NUM_PROCESSES", "3")  # what a multi-process launch sets for every process
    path = tmp_path / "r.toml"
    path.write_text(GOOD.replace("steps = 2\n[[stages]]", "steps = 2\nbatch_size = 4\n[[stages]]"))
    code, output = run_cli(["validate", str(path)], capsys)
    assert code == 2 and "stages.sft.batch_size" in output and "does not split over 3 processes" in output


def run_cli(args, capsys) -> tuple[int, str]:
    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_recipe(case, tmp_path, capsys):
    text, expected = CASES[case]
    path = tmp_path / f"{case}.toml"
    path.write_text(textwrap.dedent(text))
    code, output = run_cli(["validate", str(path)], capsys)
    assert code == 2, output
    assert "Traceback" not in output
    assert str(path) in output
    for fragment in expected:
        assert fragment in output, f"{fragment!r} not in:\n{output}"


def test_messages_are_distinct(tmp_path, capsys):
    outputs = set()
    for case, (text, _) in CASES.items():
        path = tmp_path / "r.toml"
        path.write_text(textwrap.dedent(text))
        outputs.add(run_cli(["validate", str(path)], capsys)[1])
    assert len(outputs) == len(CASES)


def test_unknown_profile_and_stage_address(tmp_path, capsys):
    path = tmp_path / "r.toml"
    path.write_text(GOOD)
    code, output = run_cli(["show", str(path), "--profile", "gpu"], capsys)
    assert code == 2 and "no profile 'gpu'" in output and "small" in output
    code, output = run_cli(["show", str(path), "stages.sfx.steps=3"], capsys)
    assert code == 2 and "stages.sfx" in output and "did you mean 'sft'" in output


def test_missing_file_and_missing_data(tmp_path, capsys):
    code, output = run_cli(["validate", str(tmp_path / "nope.toml")], capsys)
    assert code == 2 and "recipe file not found" in output
    path = tmp_path / "r.toml"
    path.write_text(GOOD.replace('source = "arithmetic" }\nsteps = 2\n[[', 'source = "file:missing.jsonl" }\nsteps = 2\n[['))
    code, output = run_cli(["validate", str(path)], capsys)
    assert code == 2 and "missing.jsonl" in output and "does not exist" in output and "stages.sft.data" in output


def test_overrides_and_profiles_resolve(tmp_path, capsys):
    import tomllib

    path = tmp_path / "r.toml"
    path.write_text(GOOD)
    code, output = run_cli(["show", str(path), "--profile", "small", "stages.grpo.beta=0.1", "recipe.seed=7"], capsys)
    assert code == 0
    resolved = tomllib.loads(output)
    assert resolved["stages"][0]["steps"] == 1 and resolved["stages"][1]["beta"] == 0.1 and resolved["recipe"]["seed"] == 7


@pytest.mark.parametrize("make", ["fifo", "device", "deep", "huge"])
def test_special_files_and_absurd_recipes_are_clear_errors(tmp_path, make):
    import os
    import subprocess
    import sys

    path = tmp_path / "r.toml"
    if make == "fifo":
        os.mkfifo(path)
    elif make == "device":
        path = "/dev/zero"
    elif make == "deep":
        path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    else:
        path.write_text("# " + "x" * (2 << 20) + "\n")
    result = subprocess.run([sys.executable, "-m", "reasonlab", "validate", str(path)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(path) in result.stderr


@pytest.mark.parametrize("case", sorted(STAGE_SETTINGS))
def test_stage_settings_are_refused_before_jax_is_imported(case, tmp_path):
    import subprocess
    import sys

    path = tmp_path / f"{case}.toml"
    path.write_text(STAGE_SETTINGS[case][0])
    probe = ("import sys\nfrom reasonlab.cli import main\ntry:\n    main(['validate', %r])\nexcept SystemExit as exc:\n"
             "    code = exc.code\nheavy = [m for m in ('jax', 'flax', 'tunix', 'orbax') if m in sys.modules]\n"
             "print(code, heavy)\n" % str(path))
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "2 []", result.stdout + result.stderr
