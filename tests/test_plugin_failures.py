"""Plugins of every kind fail as clearly as rewards do: a broken package never stops the CLI's
light commands, an exception in a hook or a tracker names the plugin and leaves the run
resumable, and loss options reach SFT losses."""

from __future__ import annotations

import json
import textwrap

import pytest
from conftest import TINY_SFT, reasonlab, run_dir_of, tiny_recipe

SFT_ONLY = tiny_recipe("failing", TINY_SFT)


def broken_package(root):
    """An installed distribution whose reasonlab entry point cannot be imported."""
    dist = root / "reasonlab_broken-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: reasonlab-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[reasonlab]\nbroken_rewards = reasonlab_broken_missing_module\n")
    return {"PYTHONPATH": str(root)}


def test_a_broken_plugin_package_never_stops_help_version_or_plugins(tmp_path):
    env = broken_package(tmp_path)
    for args in (["--help"], ["--version"]):
        result = reasonlab(*args, env=env)
        assert result.returncode == 0, result.stderr
        assert "broken_rewards" in result.stderr and "ModuleNotFoundError" in result.stderr
    listing = reasonlab("plugins", env=env)
    assert listing.returncode == 0 and "broken_rewards  BROKEN" in listing.stdout
    rows = json.loads(reasonlab("plugins", "--json", env=env).stdout)
    assert {"name": "broken_rewards"}.items() <= next(r for r in rows if r["name"] == "broken_rewards").items()


def test_an_unknown_reward_hints_at_the_broken_package(tmp_path):
    env = broken_package(tmp_path / "site")
    recipe = tmp_path / "r.toml"
    recipe.write_text(SFT_ONLY.replace('kind = "sft"', 'kind = "grpo"').replace(
        "max_completion_tokens = 64", 'max_completion_tokens = 8\nrewards = [{ name = "from_the_broken_package" }]'))
    result = reasonlab("validate", recipe, env=env)
    assert result.returncode == 2 and "reasonlab_broken_missing_module" in result.stderr


HOOK_PLUGIN = '''
from reasonlab import hookimpl


@hookimpl
def on_stage_end(run, stage, result):
    raise RuntimeError("the dashboard is down")
'''

TRACKER_PLUGIN = '''
from reasonlab import hookimpl


class Flaky:
    def __init__(self, options, run):
        pass

    def start_stage(self, stage, kind):
        pass

    def log(self, metrics, step):
        raise OSError("disk full")

    def end_stage(self, summary):
        pass

    def close(self):
        pass


@hookimpl
def register_trackers(register):
    register("flaky", Flaky)
'''


@pytest.mark.slow
@pytest.mark.parametrize("plugin, recipe_extra, names", [
    (HOOK_PLUGIN, "", ["plugin 'watcher' failed in its on_stage_end hook", "RuntimeError: the dashboard is down"]),
    (TRACKER_PLUGIN, "\n[tracking.flaky]\n", ["tracker Flaky failed in log()", "OSError: disk full"]),
])
def test_a_failing_hook_or_tracker_names_itself_and_leaves_the_run_resumable(tmp_path, plugin, recipe_extra, names):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "watcher.py").write_text(textwrap.dedent(plugin))
    recipe = tmp_path / "failing.toml"
    recipe.write_text(SFT_ONLY + recipe_extra)
    runs = tmp_path / "runs"
    result = reasonlab("--plugins-dir", plugins, "run", recipe, "--no-progress", "--runs-dir", runs)
    assert result.returncode == 2, result.stderr[-3000:]
    for text in names:
        assert text in result.stderr
    assert f"{plugins / 'watcher.py'}:" in result.stderr and "Traceback" not in result.stderr
    state = json.loads((run_dir_of(runs, "failing") / "state.json").read_text())
    assert state["status"] == "failed" and state["resumable"] is True


def test_sft_loss_options_reach_the_loss_and_unknown_ones_are_refused():
    from reasonlab.errors import RecipeError
    from reasonlab_plugins.stage_sft import with_options

    def loss(model, input_tokens, input_mask, positions, attention_mask, label_smoothing=0.0):
        return label_smoothing

    assert with_options(loss, {"label_smoothing": 0.1}, "stages.sft")(None, None, None, None, None) == 0.1
    with pytest.raises(RecipeError, match="label_smothing"):
        with_options(loss, {"label_smothing": 0.1}, "stages.sft")
