"""Checks ``validate`` runs beyond the schema: the data each stage names is reachable."""

from __future__ import annotations

from pydantic import BaseModel

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
                check(arg, spec)
            except DataError as exc:
                exc.where = f"{recipe.path}: stages.{stage.name}.{path}" + (f" ({exc.where})" if exc.where else "")
                raise
