"""Data plugins that reorder or mix another source's rows (``source = "PLUGIN:inner source"``).

``curriculum:<source>`` (IDEA-E): rows ordered easy to hard by ``difficulty_field``
(default "difficulty"), or by a measured ``pass_rate`` column (high to low) when
``by = "pass_rate"``; ties keep a seeded shuffle. Set ``order = "as_is"`` on the data
spec so the stage keeps the order.

``review:<source>`` (2B-think's "active review"): session ``session`` (1, 2, …) trains on
its ``new_per_session`` new rows plus replayed rows from earlier sessions at
``review_ratio`` old per new (1.0 = the README's 1:1, 2.0 = the code's 1:2). Which rows
are old is fixed by the session number, so a later session (a later stage, or a run
resumed tomorrow) always knows; each stage also records the rows it used in its folder.
``new_rows = [start, end]`` and ``review_rows = [start, end]`` name the row ranges
outright instead (the 2B-think team's session 2 retrains rows 500–999 with 500 replayed
from rows 0–499); ``review_ratio = 0`` replays nothing.

Inner-source options go in ``inner_options``.
"""

from __future__ import annotations

import random

from reasonlab import hookimpl


def _inner(arg: str, spec, context):
    from reasonlab.data import load_rows

    inner = spec.model_copy(update={"source": arg, "options": dict(spec.options.get("inner_options", {})),
                                    "limit": None})
    return load_rows(inner, context.plugins, context.run_dir)


def curriculum(arg: str, spec, context) -> list[dict]:
    rows = _inner(arg, spec, context)
    by_pass_rate = spec.options.get("by", "difficulty") == "pass_rate"
    field = "pass_rate" if by_pass_rate else spec.options.get("difficulty_field", "difficulty")
    _check_levels(rows, field, arg, levels=not by_pass_rate)  # all failed alike is a measurement, not a mistake
    random.Random(spec.options.get("seed", 0)).shuffle(rows)
    return sorted(rows, key=lambda r: -r[field] if by_pass_rate else r[field])


def _check_levels(rows: list[dict], field: str, arg: str, levels: bool = True) -> None:
    """A curriculum needs a numeric difficulty on every row and at least two levels: else it
    would train in a shuffled order while the recipe says easy to hard."""
    from reasonlab.errors import DataError

    for index, row in enumerate(rows):
        value = row.get(field)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(f"curriculum:{arg}: row {index} has no numeric {field!r} (got {value!r})",
                            where="data.options.difficulty_field",
                            hint="name the column that holds each row's difficulty, or use by = \"pass_rate\"")
    if levels and len({row[field] for row in rows}) == 1:
        raise DataError(f"curriculum:{arg}: every row has the same {field} ({rows[0][field]!r} on {len(rows)} rows), "
                        "so there is no easy-to-hard order", where="data.options",
                        hint="use a source with several difficulty levels, or drop the curriculum")


def review(arg: str, spec, context) -> list[dict]:
    rows = _inner(arg, spec, context)
    session = int(spec.options.get("session", 1))
    per = int(spec.options.get("new_per_session", 64))
    start, end = spec.options.get("new_rows", ((session - 1) * per, session * per))
    low, high = spec.options.get("review_rows", (0, start))
    new, old = rows[start:end], rows[low:high]
    if len(new) < end - start:
        from reasonlab.errors import DataError

        raise DataError(f"rows {start}–{end - 1} asked for, but the inner source has {len(rows)}",
                        where="data.options", hint="lower new_rows / session, or use a larger source")
    rng = random.Random(spec.options.get("seed", 0) * 1000 + session)
    replay = rng.sample(old, min(len(old), round(len(new) * float(spec.options.get("review_ratio", 1.0)))))
    mixed = [{**r, "review": False} for r in new] + [{**r, "review": True} for r in replay]
    rng.shuffle(mixed)
    return mixed


def _check(known):
    def check(arg, spec):
        from reasonlab.errors import DataError

        if not arg:
            raise DataError("needs an inner source", hint='e.g. source = "curriculum:arithmetic"')
        unknown = set(spec.options) - known
        if unknown:
            raise DataError(f"unknown option(s) {', '.join(sorted(unknown))}", hint=f"known: {', '.join(sorted(known))}")
        for key in ("new_rows", "review_rows"):
            value = spec.options.get(key)
            if value is not None and not (isinstance(value, list) and len(value) == 2
                                          and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                                          and 0 <= value[0] < value[1]):
                raise DataError(f"data.options.{key} must be [start, end] with 0 <= start < end, got {value!r}",
                                where=f"data.options.{key}")

    return check


def _inner_columns(extra=()):
    def columns(arg, spec, context):
        from reasonlab.data import declared_columns

        inner = spec.model_copy(update={"source": arg, "options": dict(spec.options.get("inner_options", {})),
                                        "limit": None, "columns": None})
        found = declared_columns(inner, context.plugins)
        return None if found is None else found | set(extra)

    return columns


curriculum.check = _check({"difficulty_field", "by", "seed", "inner_options"})
# what a stage records in its rows.jsonl beside each question: the order this source made
curriculum.recorded_columns = lambda spec: [
    "pass_rate" if spec.options.get("by") == "pass_rate" else spec.options.get("difficulty_field", "difficulty")]
review.recorded_columns = lambda spec: ["review"]
curriculum.columns = _inner_columns()
review.columns = _inner_columns(["review"])
review.check = _check({"session", "new_per_session", "new_rows", "review_rows", "review_ratio", "seed",
                       "inner_options"})


@hookimpl
def register_datasets(register):
    register("curriculum", curriculum)
    register("review", review)
