"""Turning dataset rows into prompts and targets, and the length budget."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasonlab.errors import DataError
from reasonlab.format import format_target
from reasonlab.schema import DataSpec

DEFAULT_TEMPLATE = (
    "Answer the question. First think step by step inside <reasoning></reasoning>, "
    "then give only the final answer inside <answer></answer>.\n"
    "Question: {question}\n"
)


@dataclass(frozen=True)
class DataContext:
    """What the core hands a dataset loader that asks for it (a ``context`` parameter):
    the plugin system (to load an inner source) and the run directory (None outside a run,
    e.g. in ``validate``)."""

    plugins: Any
    run_dir: Path | None = None


def call_loader(fn, arg: str, spec: DataSpec, context: DataContext):
    """``fn(arg, spec)``, plus ``context=`` when ``fn`` takes it (loaders written without it keep working)."""
    from reasonlab.plugins import takes_context

    return fn(arg, spec, context=context) if takes_context(fn) else fn(arg, spec)


def load_rows(spec: DataSpec, plugins, run_dir: Path | None = None) -> list[dict]:
    """Rows from the dataset plugin named by ``spec.source`` ("name:arg")."""
    name, _, arg = spec.source.partition(":")
    loader = plugins.registry("datasets").get(name)
    context = DataContext(plugins, run_dir)
    check = getattr(loader, "check", None)
    if check is not None:  # the same checks `validate` runs (unknown options, missing files)
        call_loader(check, arg, spec, context)
    rows = call_loader(loader, arg, spec, context)
    if not rows:
        raise DataError(f"dataset {spec.source!r} (split {spec.split!r}) has no rows", hint="check the source and split")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"row {i} is a {type(row).__name__}, not an object", where=spec.source)
    if spec.columns is not None:
        missing = [c for c in spec.columns if c not in rows[0]]
        if missing:
            raise DataError(f"data.columns declares {', '.join(map(repr, missing))}, which row 0 lacks "
                            f"(it has {', '.join(map(repr, rows[0]))})", where=spec.source,
                            hint="declare the columns the source really has, or leave data.columns out")
    return rows[: spec.limit] if spec.limit else rows


def needs_run(source: str, plugins) -> bool:
    """Whether a source (or a source it wraps, "curriculum:stage:x") reads the run's own outputs."""
    datasets = plugins.registry("datasets")
    return any(part in datasets and getattr(datasets.get(part), "needs_run", False) for part in source.split(":"))


def declared_columns(spec: DataSpec, plugins) -> set[str] | None:
    """The columns ``spec``'s rows will have, if known without reading them: the recipe's
    ``data.columns``, else the loader's ``columns(arg, spec)`` (None: unknown until read)."""
    if spec.columns is not None:
        return set(spec.columns)
    name, _, arg = spec.source.partition(":")
    columns = getattr(plugins.registry("datasets").get(name), "columns", None)
    if columns is None:
        return None
    found = call_loader(columns, arg, spec, DataContext(plugins))
    return None if found is None else set(found)


def require_columns(rows: list[dict], columns: list[str], spec: DataSpec) -> None:
    for i, row in enumerate(rows):
        missing = [c for c in columns if c not in row]
        if missing:
            raise DataError(
                f"row {i} lacks column(s) {', '.join(map(repr, missing))}; it has {', '.join(map(repr, row))}",
                where=spec.source,
                hint="map the columns with data.question_field / answer_field / reasoning_field / completion_field",
            )


def check_options(spec: DataSpec, known: dict[str, tuple[int, int] | type]) -> None:
    """For generator plugins: every option is known; an integer option is an int (not a bool,
    not a string) within its (low, high); a ``bool`` option is a bool."""
    unknown = set(spec.options) - set(known)
    if unknown:
        raise DataError(f"unknown option(s) {', '.join(sorted(unknown))}", where="data.options",
                        hint=f"known: {', '.join(known)}")
    for key, rule in known.items():
        if key not in spec.options:
            continue
        value = spec.options[key]
        if rule is bool:
            if not isinstance(value, bool):
                raise DataError(f"data.options.{key} must be true or false, got {value!r}", where=f"data.options.{key}")
            continue
        low, high = rule
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise DataError(f"data.options.{key} must be an integer from {low} to {high}, got {value!r}",
                            where=f"data.options.{key}")


def require_rows(rows: list, n: int, spec: DataSpec, why: str = "") -> list:
    """A generator that could make fewer distinct rows than ``n`` says so instead of returning fewer."""
    if len(rows) < n:
        raise DataError(f"{spec.source!r} has only {len(rows)} distinct {spec.split} rows{why}; n = {n} asks for more",
                        where="data.options.n", hint=f"set n to at most {len(rows)}")
    return rows


def render_prompt(row: dict, spec: DataSpec, chat_template=None) -> str:
    """The row's prompt: ``template`` filled in, inside the model's chat template when it has
    one (``spec.chat = False`` keeps plain text), with ``system_prompt`` where the template puts
    it (plain text: before the question). ``chat_template`` is a ``reasonlab.chat.ChatTemplate``
    or a format string with ``{user}``."""
    from reasonlab.chat import ChatTemplate

    template = spec.template or DEFAULT_TEMPLATE
    text = template.format(question=row[spec.question_field])
    if spec.chat is True and not chat_template:
        raise DataError("data.chat = true, but this model has no chat template", where="data.chat",
                        hint="an instruction-tuned (-it) preset has one; leave chat out for a base model")
    if chat_template and spec.chat is not False:
        chat = chat_template if isinstance(chat_template, ChatTemplate) else ChatTemplate.turns(chat_template)
        return chat.render(text, spec.system_prompt)
    return f"{spec.system_prompt}\n\n{text}" if spec.system_prompt else text


def render_target(row: dict, spec: DataSpec) -> str:
    if spec.completion_field:
        return str(row[spec.completion_field])
    return format_target(str(row[spec.reasoning_field]), str(row[spec.answer_field]))


@dataclass
class Budgeted:
    kept: list
    dropped: int


def apply_length_budget(items: list, lengths: list[tuple[int, ...]], limits: tuple[int, ...]) -> Budgeted:
    """Keep items whose every length fits its limit. Over-long items are dropped, never truncated."""
    kept = [item for item, lens in zip(items, lengths) if all(n <= lim for n, lim in zip(lens, limits))]
    return Budgeted(kept, len(items) - len(kept))
