"""Checks ``validate`` runs beyond the schema: the data each stage names is reachable."""

from __future__ import annotations

from pydantic import BaseModel

from reasonlab.errors import ReasonlabError
from reasonlab.data import DataContext, call_loader, needs_run
from reasonlab.schema import DataSpec


def _data_specs(value, path=""):
    if isinstance(value, DataSpec):
        yield path, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _data_specs(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _data_specs(item, f"{path}[{i}]")


def check_data(recipe, plugins) -> None:
    """Call each dataset loader's ``check(arg, spec)`` (if it has one) without loading data."""
    from reasonlab.errors import DataError

    datasets = plugins.registry("datasets")
    for stage in recipe.stages:
        if not stage.enabled:
            continue
        for path, spec in _data_specs(stage.config):
            name, _, arg = spec.source.partition(":")
            check = getattr(datasets.get(name), "check", None)
            if check is None:
                continue
            try:
                call_loader(check, arg, spec, DataContext(plugins))
            except DataError as exc:
                exc.where = f"{recipe.path}: stages.{stage.name}.{path}" + (f" ({exc.where})" if exc.where else "")
                raise


def check_stage_sources(recipe, plugins) -> None:
    """A source that reads an earlier stage's output (its loader has ``reads_stage(arg) ->
    name``, e.g. "stage:NAME", also inside "curriculum:stage:NAME") must name an enabled stage
    that runs before it and whose kind writes rows (``writes_rows = True``): else the run
    would train the stages before it and then stop."""
    from reasonlab.errors import RecipeError

    datasets, kinds = plugins.registry("datasets"), plugins.registry("stages")
    before: dict[str, str] = {}  # enabled stages so far -> kind
    for stage in recipe.stages:
        for path, spec in _data_specs(stage.config) if stage.enabled else ():
            parts = spec.source.split(":")
            for i, part in enumerate(parts):
                reads = getattr(datasets.get(part), "reads_stage", None) if part in datasets else None
                if reads is None:
                    continue
                name = reads(":".join(parts[i + 1:]))
                where = f"{recipe.path}: stages.{stage.name}.{path}.source"
                if name not in before:
                    later = any(s.name == name for s in recipe.stages)
                    raise RecipeError(f"{spec.source!r} reads stage {name!r}, which "
                                      + ("does not run before this stage" if later else "is not in the recipe"),
                                      where=where, hint=f"stages before {stage.name!r}: {', '.join(before) or 'none'}")
                if not getattr(kinds.get(before[name]), "writes_rows", False):
                    raise RecipeError(f"stage {name!r} (kind {before[name]!r}) writes no rows for a later stage",
                                      where=where, hint="read a stage whose kind writes rows (distill, rubrics, eval)")
                break
        if stage.enabled:
            before[stage.name] = stage.kind


def check_stages(recipe, plugins) -> None:
    """Each stage kind's own ``check(config, recipe, plugins)`` (a classmethod, optional): the
    settings a stage can judge only against the whole recipe (the model, the other stages),
    refused here instead of when the stage starts, after earlier stages have trained."""
    check_stage_sources(recipe, plugins)
    stages = plugins.registry("stages")
    for stage in recipe.stages:
        check = getattr(stages.get(stage.kind), "check", None) if stage.enabled else None
        if check is None:
            continue
        try:
            check(stage.config, recipe, plugins)
        except ReasonlabError as exc:
            exc.where = f"{recipe.path}: stages.{stage.name}" + (f".{exc.where}" if exc.where else "")
            raise


def _reward_specs(config):
    """(key path, RewardSpec) for every reward a stage's options name: ``RewardSpec`` lists
    and plain ``PluginRef("rewards")`` names (e.g. an eval stage's ``answer_reward``)."""
    from reasonlab.schema import PluginRef, RewardSpec

    for name, info in type(config).model_fields.items():
        value = getattr(config, name)
        if isinstance(value, RewardSpec):
            yield name, value
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, RewardSpec):
                    yield f"{name}[{i}]", item
        elif isinstance(value, str) and any(isinstance(m, PluginRef) and m.kind == "rewards" for m in info.metadata):
            # a "<x>_reward" key takes its options from "<x>_options" (an eval's answer_reward / answer_options)
            options = getattr(config, name.removesuffix("_reward") + "_options", None) if name.endswith("_reward") else None
            yield name, RewardSpec(name=value, options=options if isinstance(options, dict) else {})


def check_rewards(recipe, plugins, columns_of=None, ready_for=()) -> None:
    """Every reward a stage uses takes the options the recipe gives it and finds the columns
    it reads in the stage's data. ``columns_of(stage, spec)`` gives a stage's columns (default:
    what the source declares without reading; a source that cannot say is checked when read).
    For the stages named in ``ready_for`` each reward's ``preflight(options)`` runs too (e.g.
    the sandbox a code reward needs)."""
    from reasonlab.data import declared_columns
    from reasonlab.rewards import check_reward_columns, check_reward_options, check_reward_refs, contract_of

    rewards = plugins.registry("rewards")
    for stage in recipe.stages:
        if not stage.enabled:
            continue
        data = getattr(stage.config, "data", None)
        columns = None
        if isinstance(data, DataSpec):
            columns = columns_of(stage, data) if columns_of else declared_columns(data, plugins)
        for path, spec in _reward_specs(stage.config):
            where = f"{recipe.path}: stages.{stage.name}.{path}"
            entry = rewards.entries.get(spec.name)
            contract = contract_of(rewards.get(spec.name), entry.info if entry else None)
            check_reward_options(spec, contract, where)
            check_reward_refs(spec, contract, entry.info if entry else {}, plugins, where)
            if columns is not None:
                check_reward_columns(spec, contract, columns, where, data.source)
            ready = getattr(rewards.get(spec.name), "preflight", None) if stage.name in ready_for else None
            if ready is not None:
                try:
                    ready(dict(spec.options))
                except ReasonlabError as exc:
                    exc.where = f"stages.{stage.name}.{path}"
                    raise


def preflight(recipe, plugins, stages=None, run_dir=None) -> None:
    """Before anything trains: read each stage's rows (those of ``stages``, default every
    enabled stage whose data does not come from an earlier stage of the run) and check its
    rewards against the columns the rows really have."""
    from reasonlab.data import load_rows

    check_stages(recipe, plugins)
    wanted = None if stages is None else {s.name for s in stages}
    read: dict[str, set[str] | None] = {}
    for stage in recipe.stages:
        data = getattr(stage.config, "data", None)
        if not stage.enabled or not isinstance(data, DataSpec):
            continue
        if wanted is not None and stage.name not in wanted:
            continue
        if wanted is None and needs_run(data.source, plugins):
            continue  # its rows exist once the stage that writes them has run
        try:
            rows = load_rows(data, plugins, run_dir)
        except ReasonlabError as exc:
            exc.where = f"stages.{stage.name}.data" + (f" ({exc.where})" if exc.where else "")
            raise
        read[stage.name] = set(rows[0])

    def columns_of(stage, spec):
        return read.get(stage.name)

    check_rewards(recipe, plugins, columns_of,
                  ready_for={s.name for s in recipe.stages if s.enabled and (wanted is None or s.name in wanted)})
