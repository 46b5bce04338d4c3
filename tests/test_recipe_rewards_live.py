"""Every reward a shipped recipe's GRPO stages rely on scores its own data and varies.

A tiny random model rarely writes a right answer or a closed tag, so in the tiny runs
(tests/test_recipes.py) an answer or format reward can sit at 0 for the whole run and prove
nothing. Here each recipe's tiny and cpu profiles are loaded as `reasonlab run` loads them;
for every enabled GRPO stage, the stage's own data rows (its data source, fields and options)
are scored by the stage's own reward list (names and options) through ``CompositeReward``, on
completions made from each row: the row's reasoning and gold answer in the tags, the same with
a wrong answer, and plain text without tags. Every reward must score without failure and give
different values across them. Judge rewards are scored too, by the tiny profiles' local tiny
judge (probability scoring); the cpu profiles' judge is the 270M, a minute or two to load and
score, so there they are left to docs/results.md's cpu profile runs (studies/cpu_profile_signals.py).
"""

from __future__ import annotations

import pytest
from conftest import REPO

from reasonlab.data import load_rows
from reasonlab.plugins import get_plugins
from reasonlab.recipe import load_recipe
from reasonlab.rewards import CompositeReward

RECIPES = ["quickstart", "g_rar", "pinocchio", "idea_e", "metadata_checkpoint", "format_align_reinforce",
           "think_2b", "tunix_grpo_baseline"]
ROWS_PER_STAGE = 6
# what an earlier stage of the same run writes (find_hard's items, the rubric stage's rubrics):
# no rows exist before the run, so those stages are covered by the tiny runs only
FROM_AN_EARLIER_STAGE = "stage:"


def grpo_stages():
    for name in RECIPES:
        for profile in ("tiny", "cpu"):
            recipe = load_recipe(REPO / "recipes" / f"{name}.toml", profile)
            for stage in recipe.stages:
                if stage.kind == "grpo" and stage.enabled:
                    yield pytest.param(name, profile, stage.name, id=f"{name}-{profile}-{stage.name}")


def is_judge(registry, name: str) -> bool:
    return "judges" in (registry.entries[name].info.get("refs") or {}).values()


def completions_for(row: dict, spec) -> list[str]:
    reasoning = row.get(spec.reasoning_field) or " ".join(row.get("checkpoints") or []) or "I work it out."
    answer = str(row.get(spec.answer_field, ""))
    return [f"<reasoning>{reasoning}</reasoning><answer>{answer}</answer>",
            f"<reasoning>{reasoning}</reasoning><answer>-98765</answer>",
            "I am not sure what the question asks."]


@pytest.mark.parametrize("recipe,profile,stage_name", list(grpo_stages()))
def test_each_reward_scores_the_stages_own_data_and_varies(recipe, profile, stage_name):
    plugins = get_plugins()
    loaded = load_recipe(REPO / "recipes" / f"{recipe}.toml", profile)
    stage = next(s for s in loaded.stages if s.name == stage_name)
    cfg = stage.config
    if cfg.data.source.startswith(FROM_AN_EARLIER_STAGE):
        pytest.skip(f"{cfg.data.source} is written by an earlier stage of the run")
    registry = plugins.registry("rewards")
    assert cfg.rewards, f"{recipe}/{stage_name}: no rewards"
    specs = [spec for spec in cfg.rewards if profile == "tiny" or not is_judge(registry, spec.name)]
    rows = load_rows(cfg.data, plugins)[:ROWS_PER_STAGE]
    assert rows, f"{recipe}/{stage_name}: {cfg.data.source} gave no rows"
    prompts, completions, columns = [], [], {key: [] for key in rows[0]}
    for row in rows:
        for completion in completions_for(row, cfg.data):
            prompts.append(str(row.get(cfg.data.question_field, "")))
            completions.append(completion)
            for key in columns:
                columns[key].append(row.get(key))
    reward = CompositeReward(specs, registry, group_size=3, where=f"stages.{stage_name}.rewards")
    for outcome in reward.score(prompts, completions, **columns):
        assert outcome.error is None and not outcome.timed_out and not outcome.failures, (
            f"{recipe}/{stage_name}: {outcome.name} failed: {outcome.error!r}")
        values = outcome.applicable
        assert values, f"{recipe}/{stage_name}: {outcome.name} applied to no completion"
        assert len(set(values)) > 1, f"{recipe}/{stage_name}: {outcome.name} gave {values[0]} to every completion"
