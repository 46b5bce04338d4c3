"""Recipes: a TOML file -> profile overlay -> ``key=value`` overrides -> validated ``Recipe``.

Profiles (``[profiles.NAME]``) and overrides use dotted paths; ``stages.<name>.<key>``
addresses a stage by its name. Tables merge key by key, except a data table that names a
different ``source`` and a mesh ``shape``: those replace the old one whole. Every error
names the file and the key path.
"""

from __future__ import annotations

import copy
import difflib
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from reasonlab.errors import PluginError, RecipeError
from reasonlab.schema import PluginRef, RecipeModel, StageSpec


@dataclass(frozen=True)
class ResolvedStage:
    name: str
    kind: str
    config: Any  # the stage plugin's Config instance
    enabled: bool = True


@dataclass(frozen=True)
class Recipe:
    path: Path
    profile: str | None
    model_: RecipeModel
    stages: list[ResolvedStage]
    resolved: dict  # the merged recipe as plain data (written to the run directory)

    @property
    def name(self) -> str:
        return self.model_.recipe.name

    @property
    def info(self):
        return self.model_.recipe

    @property
    def model(self):
        return self.model_.model

    @property
    def tracking(self) -> dict:
        return self.model_.tracking

    @property
    def mesh(self):
        return self.model_.mesh


# -- reading -------------------------------------------------------------
MAX_RECIPE_BYTES = 1 << 20  # a recipe is a page of settings; more is a mistake (or /dev/zero)
MAX_DEPTH = 32  # tables and arrays inside each other


def read_toml(path: Path) -> dict:
    if not path.exists():
        raise RecipeError("recipe file not found", where=str(path), hint="check the path; recipes live in recipes/")
    if not path.is_file():  # a FIFO would block the read forever, a device never end
        raise RecipeError("not a regular file", where=str(path), hint="give the path of a .toml file")
    if path.stat().st_size > MAX_RECIPE_BYTES:
        raise RecipeError(f"{path.stat().st_size} bytes: larger than a recipe can be ({MAX_RECIPE_BYTES})",
                          where=str(path))
    try:
        return _within_depth(_loads(path.read_text(encoding="utf-8")), str(path))
    except UnicodeDecodeError as exc:
        raise RecipeError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", where=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"invalid TOML: {exc}", where=str(path)) from exc
    except OSError as exc:
        raise RecipeError(f"cannot read: {exc.strerror}", where=str(path)) from exc


def _loads(text: str) -> dict:
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError(f"nested more than Python can parse (keep it under {MAX_DEPTH} levels)") from None


def _within_depth(value, where: str, depth: int = 0):
    if depth > MAX_DEPTH:
        raise RecipeError(f"tables or arrays nested more than {MAX_DEPTH} deep", where=where)
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        _within_depth(child, where, depth + 1)
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b=1`` -> ("a.b", 1). Values are TOML (numbers, booleans, arrays); anything else is a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError(f"override {text!r} is not key=value", hint="e.g. stages.sft.steps=10")
    try:
        value = _within_depth(_loads(f"v = {raw}"), f"override {key}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def nest(dotted: str, value: Any) -> dict:
    parts = dotted.split(".")
    if any(not p for p in parts):
        raise RecipeError(f"bad key path {dotted!r}", hint="use dotted names like model.preset")
    out: Any = value
    for part in reversed(parts):
        out = {part: out}
    return out


# Tables that are one value: a mesh shape's axes are sized together, so a profile's shape
# replaces the base's instead of merging into it ({tp = 4} + {fsdp = 1} is not a 1-device mesh).
WHOLE_TABLES = {"shape"}


def overlay(base: dict, patch: dict, where: str) -> dict:
    """Deep-merge ``patch`` into ``base``; a ``stages`` table in the patch addresses stages by name."""
    result = copy.deepcopy(base)
    for key, value in patch.items():
        if key == "stages" and isinstance(value, dict) and isinstance(result.get("stages"), list):
            result["stages"] = _overlay_stages(result["stages"], value, where)
        elif (isinstance(value, dict) and isinstance(result.get(key), dict) and key not in WHOLE_TABLES
              and not _new_source(result[key], value)):
            result[key] = overlay(result[key], value, f"{where}.{key}")
        else:
            result[key] = copy.deepcopy(value)
    return result


def _new_source(base: dict, patch: dict) -> bool:
    """A data table naming a different source replaces the old one whole (its options belong to the old source)."""
    return "source" in patch and patch["source"] != base.get("source")


def _overlay_stages(stages: list, patch: dict, where: str) -> list:
    by_name = {s.get("name"): i for i, s in enumerate(stages) if isinstance(s, dict)}
    stages = list(stages)
    for name, stage_patch in patch.items():
        if name not in by_name:
            close = difflib.get_close_matches(name, [str(n) for n in by_name], n=1)
            raise RecipeError(
                f"addresses stage {name!r}, but the recipe's stages are: {', '.join(map(str, by_name))}",
                where=f"{where}.stages.{name}",
                hint=f"did you mean {close[0]!r}?" if close else "stages are addressed by their name",
            )
        if not isinstance(stage_patch, dict):
            raise RecipeError("must be a table of stage options", where=f"{where}.stages.{name}")
        stages[by_name[name]] = overlay(stages[by_name[name]], stage_patch, f"{where}.stages.{name}")
    return stages


# -- validation ----------------------------------------------------------
def _loc_to_path(loc: tuple, stages: list | None = None) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            if i > 0 and loc[i - 1] == "stages" and stages and part < len(stages):
                name = stages[part].get("name") if isinstance(stages[part], dict) else None
                if isinstance(name, str) and name:
                    out = out[: -len("stages")] + f"stages.{name}"
                    continue
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _fields_at(model_cls: type, loc: tuple) -> list[str]:
    """Field names of the model found by following ``loc`` (for did-you-mean on unknown keys)."""
    current: Any = model_cls
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            current = field.annotation if field else None
        else:
            return []
    current = _unwrap(current)
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _unwrap(tp: Any) -> Any:
    while True:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        origin = typing.get_origin(tp)
        if origin is typing.Annotated or (origin is not None and origin not in (list, dict) and len(args) == 1):
            tp = args[0]
        elif origin is not None and origin not in (list, dict) and args:
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            return models[0] if models else tp
        else:
            return tp


def _validation_messages(exc: ValidationError, model_cls: type, prefix: tuple, stages: list | None) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = _loc_to_path(prefix + loc, stages)
        if err["type"] == "extra_forbidden":
            known = _fields_at(model_cls, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else (f" (known keys: {', '.join(known)})" if known else "")
            lines.append(f"{path}: unknown key{hint}")
        elif err["type"] == "missing":
            lines.append(f"{path}: required key is missing")
        else:
            got = err.get("input")
            shown = f" (got {got!r})" if not isinstance(got, (dict, list)) else ""
            lines.append(f"{path}: {err['msg']}{shown}")
    return lines


def _check_plugin_refs(value: Any, path: str, plugins, problems: list[str]) -> None:
    """Walk a validated model; every ``PluginRef`` field must name a registered plugin."""
    if isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            child = getattr(value, name)
            refs = [m for m in field.metadata if isinstance(m, PluginRef)]
            refs += [m for a in typing.get_args(field.annotation) for m in getattr(a, "__metadata__", ()) if isinstance(m, PluginRef)]
            for ref in refs:
                if isinstance(child, str):
                    registry = plugins.registry(ref.kind)
                    plugin_name = ref.plugin_name(child)
                    if plugin_name not in registry:
                        problems.append(f"{path}.{name}: unknown {ref.kind[:-1]} {plugin_name!r}; {registry.suggest(plugin_name)}")
            _check_plugin_refs(child, f"{path}.{name}", plugins, problems)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            label = f"{path}.{item.name}" if isinstance(item, StageSpec) else f"{path}[{i}]"
            _check_plugin_refs(item, label, plugins, problems)


def _check_evaluator(config, where: str, plugins, problems: list[str]) -> None:
    """A training stage's ``eval_options`` are the evaluating stage's keys: checked here, not
    at the first evaluation, after steps have trained."""
    from reasonlab.stage import evaluator_class

    try:
        stage_cls = evaluator_class(config, plugins)
    except (RecipeError, PluginError) as exc:
        problems.append(f"{where}.eval_kind: {exc.message}")
        return
    if stage_cls is None:
        return
    try:
        evaluator = stage_cls.Config.model_validate({**config.eval_options, "data": config.eval_data})
    except ValidationError as exc:
        problems += _validation_messages(exc, stage_cls.Config, (*where.split("."), "eval_options"), None)
        return
    _check_plugin_refs(evaluator, f"{where}.eval_options", plugins, problems)


def _check_mesh_roles(model, stages, plugins, problems: list[str]) -> None:
    """Mesh roles are the stages' to declare (a stage class's ``mesh_roles``): a stage's own
    ``mesh.roles`` may name only its kind's, the recipe's ``[mesh].roles`` those of any stage."""
    declared = {s.name: tuple(getattr(plugins.registry("stages").get(s.kind), "mesh_roles", ())) for s in stages}
    for s in stages:
        mesh = getattr(s.config, "mesh", None)
        for role in (mesh.roles if mesh is not None else {}):
            if role not in declared[s.name]:
                problems.append(f"stages.{s.name}.mesh.roles.{role}: a {s.kind!r} stage places no model on a "
                                f"{role!r} role; its roles: {', '.join(declared[s.name]) or 'none'}")
    used = sorted({role for roles in declared.values() for role in roles})
    for role in model.mesh.roles:
        if role not in used:
            problems.append(f"mesh.roles.{role}: no stage of this recipe places a model on a {role!r} role; "
                            f"their roles: {', '.join(used) or 'none'}")


def load_recipe(path: str | Path, profile: str | None = None, overrides: tuple[str, ...] = (), plugins=None) -> Recipe:
    """Read, overlay and validate a recipe. Raises ``RecipeError`` listing every problem found."""
    from reasonlab.plugins import get_plugins

    plugins = plugins or get_plugins()
    path = Path(path)
    raw = read_toml(path)
    profiles = raw.pop("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(p, dict) for p in profiles.values()):
        raise RecipeError("[profiles] must hold tables like [profiles.cpu]", where=f"{path}: profiles")
    if profile is not None:
        if profile not in profiles:
            raise RecipeError(
                f"no profile {profile!r}",
                where=f"{path}: profiles",
                hint=f"profiles in this recipe: {', '.join(profiles) or '(none)'}",
            )
        raw = overlay(raw, profiles[profile], f"profiles.{profile}")
    for text in overrides:
        key, value = parse_override(text)
        raw = overlay(raw, nest(key, value), f"override {key}")

    stages_raw = raw.get("stages") if isinstance(raw.get("stages"), list) else None
    try:
        model = RecipeModel.model_validate(raw)
    except ValidationError as exc:
        raise RecipeError("invalid recipe:\n  " + "\n  ".join(_validation_messages(exc, RecipeModel, (), stages_raw)), where=str(path)) from None

    problems: list[str] = []
    _check_plugin_refs(model, "", plugins, problems)
    seen: set[str] = set()
    stages: list[ResolvedStage] = []
    for i, spec in enumerate(model.stages):
        where = f"stages.{spec.name}"
        if spec.name in seen:
            problems.append(f"{where}: two stages are named {spec.name!r}; stage names must be unique")
        seen.add(spec.name)
        try:
            stage_cls = plugins.registry("stages").get(spec.kind)
        except PluginError:
            continue  # already reported by the plugin-reference check
        options = {k: v for k, v in raw["stages"][i].items() if k not in ("name", "kind", "enabled")}
        try:
            config = stage_cls.Config.model_validate(options)
        except ValidationError as exc:
            problems += _validation_messages(exc, stage_cls.Config, ("stages", spec.name), None)
            continue
        _check_plugin_refs(config, where, plugins, problems)
        _check_evaluator(config, where, plugins, problems)
        stages.append(ResolvedStage(spec.name, spec.kind, config, spec.enabled))
    _check_mesh_roles(model, stages, plugins, problems)
    trackers = plugins.registry("trackers")
    for name in model.tracking:
        if name not in trackers:
            problems.append(f"tracking.{name}: unknown tracker {name!r}; {trackers.suggest(name)}")
    if problems:
        raise RecipeError("invalid recipe:\n  " + "\n  ".join(p.lstrip(".") for p in problems), where=str(path))

    resolved = model.model_dump(mode="json", exclude_none=True)
    resolved["stages"] = [
        {"name": s.name, "kind": s.kind, **({} if s.enabled else {"enabled": False}),
         **s.config.model_dump(mode="json", exclude_none=True)} for s in stages
    ]
    return Recipe(path=path, profile=profile, model_=model, stages=stages, resolved=resolved)
