"""Plugin discovery: builtins through entry points, --plugins-dir, filtering, duplicates."""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import pytest
from conftest import QUICKSTART, REPO, read_metrics, reasonlab, run_dir_of

from reasonlab.errors import PluginError
from reasonlab.plugins import PluginSystem, get_plugins


def test_every_builtin_module_is_an_entry_point():
    modules = {p.stem for p in (REPO / "plugins").glob("*.py") if not p.stem.startswith("_")}  # _x: helpers
    registered = {ep.value.split(".")[-1] for ep in entry_points(group="reasonlab") if ep.dist.name == "reasonlab"}
    assert modules == registered, f"not in [project.entry-points.reasonlab]: {modules - registered}"


def test_plugins_json_lists_builtins_and_what_they_register():
    result = reasonlab("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["stage_sft"]["registers"] == {"stages": ["sft"]}
    assert rows["stage_grpo"]["registers"] == {"stages": ["grpo"]}
    assert rows["rewards_format"]["registers"]["rewards"] == ["format_strict"]
    assert rows["tracker_wandb"]["registers"] == {"trackers": ["wandb"]}
    builtins = {p.stem for p in (REPO / "plugins").glob("*.py") if not p.stem.startswith("_")}
    assert builtins <= set(rows)
    assert all(rows[name]["distribution"].startswith("reasonlab ") for name in builtins)


def test_duplicate_names_name_both_plugins():
    class A:
        @staticmethod
        def register_rewards(register):
            register("same", lambda p, c, **_: [0.0] * len(c))

    class B:
        @staticmethod
        def register_rewards(register):
            register("same", lambda p, c, **_: [1.0] * len(c))

    from reasonlab import hookimpl

    system = PluginSystem()
    for name, cls in (("plugin_a", A), ("plugin_b", B)):
        cls.register_rewards = hookimpl(cls.register_rewards)
        system.register_plugin(cls, name=name)
    with pytest.raises(PluginError) as info:
        system.registry("rewards")
    assert "plugin_a" in str(info.value) and "plugin_b" in str(info.value) and "'same'" in str(info.value)


def test_load_plugins_env_limits_third_party_not_builtins(monkeypatch):
    monkeypatch.setenv("REASONLAB_LOAD_PLUGINS", "")
    system = get_plugins()
    assert "sft" in system.registry("stages")


def test_broken_plugin_dir_file_is_a_clear_error(tmp_path):
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    result = reasonlab("--plugins-dir", tmp_path, "plugins")
    assert result.returncode == 2
    assert "broken.py" in result.stderr and "not_a_module_anywhere" in result.stderr
    assert "Traceback" not in result.stderr


PLUGIN = '''
from reasonlab import hookimpl

def short_answer_bonus(prompts, completions, **_):
    return [1.0 if len(c) < 200 else 0.0 for c in completions]

@hookimpl
def register_rewards(register):
    register("short_answer_bonus", short_answer_bonus)
'''


@pytest.mark.slow
def test_plugins_dir_reward_used_by_a_recipe(tmp_path):
    plugins = tmp_path / "my_plugins"
    plugins.mkdir()
    (plugins / "bonus.py").write_text(PLUGIN)
    listed = reasonlab("--plugins-dir", plugins, "plugins", "--json")
    assert {"name": "bonus"}.items() <= next(r for r in json.loads(listed.stdout) if r["name"] == "bonus").items()
    rewards = '[{ name = "format_strict" }, { name = "short_answer_bonus", weight = 0.5 }]'
    result = reasonlab("--plugins-dir", plugins, "run", QUICKSTART, "--profile", "tiny", "--no-progress",
                       "--runs-dir", tmp_path / "runs", "stages.sft.steps=20", "stages.grpo.steps=2",
                       f"stages.grpo.rewards={rewards}", env={"WANDB_MODE": "disabled"})
    assert result.returncode == 0, result.stderr[-3000:]
    records = [r for r in read_metrics(run_dir_of(tmp_path / "runs", "quickstart")) if "reward/short_answer_bonus/mean" in r]
    assert len(records) == 2
