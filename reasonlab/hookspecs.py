"""The hooks a reasonlab plugin may implement.

Registration hooks receive a ``register`` callable: ``register(name, obj, **info)``.
Lifecycle hooks are called by the runner; their return values are ignored.
Every hook here is documented in docs/plugins.md and exercised by a test
(tests/test_hook_docs.py keeps both true).
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("reasonlab")
hookimpl = pluggy.HookimplMarker("reasonlab")


@hookspec
def register_stages(register):
    """Register stage kinds: ``register(kind, stage_class)``.

    ``stage_class`` has a pydantic ``Config`` (its recipe options) and
    ``run(ctx) -> StageResult``; see ``reasonlab.stage``. An optional classmethod
    ``check(config, recipe, plugins)`` refuses settings before anything trains.
    """


@hookspec
def register_rewards(register):
    """Register rewards: ``register(name, fn, columns=[...], timeout=seconds, refs={...})``.

    ``fn(prompts, completions, **columns_and_options) -> list`` scores a batch (numbers,
    bools, or None for "does not apply"); it may be ``async``. Its keyword parameters are
    its options; ``columns`` are the dataset columns it reads (``"{option}"`` names an
    option holding a column name). The contract: ``reasonlab.rewards``, docs/plugins.md.
    """


@hookspec
def register_losses(register):
    """Register training losses: ``register(name, loss)``, looked up by stages."""


@hookspec
def register_judges(register):
    """Register judge backends: ``register(name, judge_factory)``, used by judge rewards."""


@hookspec
def register_datasets(register):
    """Register dataset loaders: ``register(name, loader)``.

    ``loader(arg, spec) -> list[dict]`` serves ``data.source = "name:arg"``.
    It may carry ``loader.check(arg, spec)`` that ``validate`` calls without loading.
    A loader, check or ``columns`` that takes a ``context`` parameter gets a
    ``reasonlab.data.DataContext`` (``plugins``, ``run_dir``); ``loader.needs_run = True``
    says its rows exist only once the run has written them; ``loader.recorded_columns(spec)``
    names columns a stage records in its ``rows.jsonl`` beside each question.
    """


@hookspec
def register_models(register):
    """Register model presets: ``register(name, load, export=None)``.

    ``load(spec) -> ModelBundle`` (or ``load(spec, context)``, with ``reasonlab.modeling.ModelContext``).
    ``export(bundle, out, lora, format="hf", quant=None)`` writes a trained bundle for
    ``reasonlab export``: ``lora`` is the recipe's ``LoraSpec`` (None for a full fine-tune),
    ``format`` is ``"hf"`` or ``"gguf"``; raise ``ModelError`` for a format it cannot write.
    """


@hookspec
def register_trackers(register):
    """Register experiment trackers: ``register(name, tracker_class)``.

    A recipe enables one with ``[tracking.NAME]``; see ``reasonlab.tracking.Tracker``.
    """


@hookspec
def register_commands(cli):
    """Add commands to the ``reasonlab`` CLI: ``cli`` is the click group."""


@hookspec
def on_run_start(run):
    """Called once a run directory exists, before the first stage."""


@hookspec
def on_stage_start(run, stage):
    """Called before a stage runs; ``stage`` is its resolved ``StageSpec``."""


@hookspec
def on_metrics(run, stage, step, metrics):
    """Called for every metrics record a stage logs (``metrics`` is a flat dict)."""


@hookspec
def on_stage_end(run, stage, result):
    """Called after a stage finished and its output was checkpointed."""


@hookspec
def on_run_end(run, summary):
    """Called after the last stage with the run's summary dict."""
