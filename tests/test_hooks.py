"""Every hook is documented with its exact signature and exercised by a test."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest
from conftest import QUICKSTART, REPO, reasonlab

from reasonlab import hookspecs

HOOKS = sorted(name for name, fn in vars(hookspecs).items()
               if inspect.isfunction(fn) and hasattr(fn, "reasonlab_spec"))
DOCS = (REPO / "docs" / "plugins.md").read_text()


def test_hookspecs_found():
    assert "register_rewards" in HOOKS and "on_run_end" in HOOKS and len(HOOKS) == 13


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_signature(hook):
    signature = f"{hook}({', '.join(inspect.signature(getattr(hookspecs, hook)).parameters)})"
    assert f"### `{signature}`" in DOCS, f"docs/plugins.md lacks a '### `{signature}`' section"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    tests = "".join(p.read_text() for p in (REPO / "tests").glob("test_*.py") if p.name != "test_hooks.py")
    this = Path(__file__).read_text().rsplit("# -- hook exercises ----", 1)[-1]
    assert re.search(rf"\b{hook}\b", tests + this), f"no test mentions {hook}"


# -- hook exercises --------------------------------------------------------
BUILTIN_REGISTRATIONS = {
    "register_stages": ("stages", "stage_sft", "sft"),
    "register_rewards": ("rewards", "rewards_format", "format_strict"),
    "register_losses": ("losses", "losses_ce", "cross_entropy"),
    "register_datasets": ("datasets", "datasets_files", "file"),
    "register_models": ("models", "models_tiny", "tiny"),
    "register_trackers": ("trackers", "tracker_wandb", "wandb"),
}


@pytest.mark.parametrize("hook", sorted(BUILTIN_REGISTRATIONS))
def test_registration_hook_fills_its_registry(hook):
    from reasonlab.plugins import get_plugins

    kind, plugin, name = BUILTIN_REGISTRATIONS[hook]
    system = get_plugins()
    assert hook in {h.name for h in system.pm.get_hookcallers(system.pm.get_plugin(plugin))}
    assert system.registry(kind).entries[name].plugin == plugin


RECORDER = '''
import json, os
import click
from reasonlab import hookimpl

LOG = os.environ["HOOK_LOG"]

def _write(**record):
    with open(LOG, "a") as fh:
        fh.write(json.dumps(record) + "\\n")

@hookimpl
def on_run_start(run):
    _write(hook="on_run_start", recipe=run.recipe)

@hookimpl
def on_stage_start(run, stage):
    _write(hook="on_stage_start", stage=stage.name)

@hookimpl
def on_metrics(run, stage, step, metrics):
    _write(hook="on_metrics", stage=stage.name, step=step, keys=sorted(metrics))

@hookimpl
def on_stage_end(run, stage, result):
    _write(hook="on_stage_end", stage=stage.name, metrics=result.metrics)

@hookimpl
def on_run_end(run, summary):
    _write(hook="on_run_end", stages=sorted(summary))

class EchoJudge:
    def __init__(self, options):
        self.options = options

@hookimpl
def register_judges(register):
    register("echo_judge", EchoJudge)
'''


@pytest.mark.slow
def test_lifecycle_hooks_fire_in_order(tmp_path):
    plugins = tmp_path / "p"
    plugins.mkdir()
    (plugins / "recorder.py").write_text(RECORDER)
    log = tmp_path / "hooks.jsonl"
    result = reasonlab("--plugins-dir", plugins, "run", QUICKSTART, "--profile", "tiny", "--no-progress",
                       "--runs-dir", tmp_path / "runs", "stages.sft.steps=3", "stages.grpo.steps=1",
                       env={"HOOK_LOG": str(log), "WANDB_MODE": "disabled"})
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    order = [r["hook"] for r in records if r["hook"] != "on_metrics"]
    assert order == ["on_run_start", *["on_stage_start", "on_stage_end"] * 4, "on_run_end"]
    starts = [r["stage"] for r in records if r["hook"] == "on_stage_start"]
    assert starts == ["eval_base", "sft", "grpo", "eval"]
    metrics = [r for r in records if r["hook"] == "on_metrics"]
    assert {r["stage"] for r in metrics} == {"eval_base", "sft", "grpo", "eval"}
    assert any("train/loss" in r["keys"] for r in metrics)
    assert records[-1]["stages"] == ["eval", "eval_base", "grpo", "sft"]


def test_register_judges_and_commands(tmp_path):
    plugins = tmp_path / "p"
    plugins.mkdir()
    (plugins / "recorder.py").write_text(RECORDER)
    listed = reasonlab("--plugins-dir", plugins, "plugins", "--json", env={"HOOK_LOG": str(tmp_path / "x")})
    row = next(r for r in json.loads(listed.stdout) if r["name"] == "recorder")
    assert row["registers"] == {"judges": ["echo_judge"]}


def test_register_commands_adds_a_cli_command():
    import click

    from reasonlab import hookimpl
    from reasonlab.cli import cli, main
    from reasonlab.plugins import get_plugins

    class Commands:
        @staticmethod
        @hookimpl
        def register_commands(cli):
            @cli.command(name="hello-plugin")
            def hello():
                click.echo("hello from a plugin")

    get_plugins().register_plugin(Commands, name="commands")
    try:
        main(["hello-plugin"])
    finally:
        cli.commands.pop("hello-plugin", None)
