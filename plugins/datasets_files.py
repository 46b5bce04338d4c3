"""Local files and Hugging Face Hub datasets, both through HF ``datasets.load_dataset``.

- ``source = "file:path/to/data.jsonl"`` (also ``.json``, ``.parquet``, ``.csv``), path
  relative to the current directory;
- ``source = "hf:owner/name"`` (``data.options.name`` picks a config), needs the network
  or a populated HF cache.

Field mapping, for either source (``split_answers``): ``answer_separator`` (e.g. "####"
for GSM8K) splits the answer column into reasoning (before) and answer (after);
``reasoning_tags = ["<think>", "</think>"]`` takes the reasoning from inside the tags and the
answer from after them; ``assistant_content = true`` reads a chat-message answer column
(its last assistant message). So SFT on raw reasoning or preference data still learns the
``<reasoning>…</reasoning><answer>…</answer>`` format. ``show_tests = "test_list"`` appends a
code task's asserts to its question (MBPP's prompt format: the function name is in them).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from reasonlab import hookimpl
from reasonlab.errors import DataError

_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
PEEK_ROWS = 1000  # rows `validate` (and the preflight) read of a JSONL file before anything trains


def _path(arg: str) -> Path:
    if not arg:
        raise DataError("file: source needs a path", hint='e.g. source = "file:data/train.jsonl"')
    return Path(arg)


def check_file(arg: str, spec) -> None:
    """What a run would trip over, found without loading: a missing, special or unreadable
    path, an unsupported type, and in a JSONL file's first rows bad UTF-8, JSON or non-objects."""
    path = _path(arg)
    if not path.exists():
        raise DataError(f"data file {str(path)!r} does not exist", hint="paths are relative to the current directory")
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise DataError(f"data file {str(path)!r} is {kind}", where=str(path), hint="point the source at a data file")
    if not os.access(path, os.R_OK):
        raise DataError(f"data file {str(path)!r} is not readable (permission denied)", where=str(path),
                        hint="check its permissions")
    if path.suffix not in _BUILDERS:
        raise DataError(f"unsupported file type {path.suffix!r}", where=str(path), hint=f"use one of {', '.join(_BUILDERS)}")
    check_mapping(spec)
    if path.suffix == ".jsonl":
        bad = _find_bad_jsonl_row(path, PEEK_ROWS)
        if bad:
            raise bad


def check_mapping(spec) -> None:
    unknown = set(spec.options) - {"name", "answer_separator", "reasoning_tags", "assistant_content", "show_tests"}
    if unknown:
        raise DataError(f"unknown option(s) {', '.join(sorted(unknown))}", where="data.options",
                        hint="known: name, answer_separator, reasoning_tags, assistant_content, show_tests")
    shown = spec.options.get("show_tests")
    if shown is not None and not (isinstance(shown, str) and shown):
        raise DataError(f"data.options.show_tests names the tests column, got {shown!r}",
                        where="data.options.show_tests", hint='e.g. show_tests = "test_list" (MBPP)')
    tags = spec.options.get("reasoning_tags")
    if tags is not None and not (isinstance(tags, list) and len(tags) == 2 and all(isinstance(t, str) and t for t in tags)):
        raise DataError(f"data.options.reasoning_tags must be [opening, closing], got {tags!r}",
                        where="data.options.reasoning_tags", hint='e.g. ["<think>", "</think>"]')
    if not isinstance(spec.options.get("assistant_content", False), bool):
        raise DataError("data.options.assistant_content must be true or false", where="data.options.assistant_content")


def jsonl_columns(arg: str, spec) -> set[str] | None:
    """A JSONL file's columns, from its first row (after ``answer_separator``); None for other types."""
    path = _path(arg)
    if path.suffix != ".jsonl" or not path.is_file():
        return None  # check_file says what is wrong with it
    with open(path, "rb") as fh:
        for raw in fh:
            if raw.strip():
                try:
                    row = json.loads(raw)
                except ValueError:
                    return None
                return set(split_answers([row], spec)[0]) if isinstance(row, dict) else None
    return None


def _find_bad_jsonl_row(path: Path, limit: int | None = None) -> DataError | None:
    """Re-read a JSONL file (its first ``limit`` lines) to name the first row HF could not parse."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if limit is not None and number > limit:
                break
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                return DataError("not UTF-8 text", where=f"{path}:{number}")
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                return DataError(f"invalid JSON: {exc.msg}", where=f"{path}:{number}")
            if not isinstance(row, dict):
                return DataError(f"row is a {type(row).__name__}, not a JSON object", where=f"{path}:{number}")
    return None


def load_file(arg: str, spec) -> list[dict]:
    import datasets

    check_file(arg, spec)
    path = _path(arg)
    if path.suffix == ".jsonl":
        bad = _find_bad_jsonl_row(path)  # clearer than the builder's error, and names the row
        if bad:
            raise bad
    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(_BUILDERS[path.suffix], data_files=str(path), split="train")
    except Exception as exc:
        raise DataError(f"could not read: {type(exc).__name__}: {exc}", where=str(path)) from exc
    return split_answers(ds.to_list(), spec)


def split_answers(rows: list[dict], spec) -> list[dict]:
    """Map a source's fields into ``reasoning_field`` and ``answer_field`` (data options):

    - ``assistant_content = true``: the answer field holds a chat (a list of ``{role, content}``
      messages, e.g. UltraFeedback's ``chosen``): its last assistant message is the answer;
    - ``reasoning_tags = ["<think>", "</think>"]``: the text inside the tags is the reasoning
      and what follows the closing tag the answer (R1-style traces, e.g. Magpie-Reasoning);
    - ``answer_separator = "####"``: before the separator is the reasoning, after it the answer
      (GSM8K).

    A row without reasoning gets an empty one, so SFT's target is still
    ``<reasoning>…</reasoning><answer>…</answer>``.
    """
    options = spec.options
    if options.get("show_tests"):
        rows = show_tests(rows, spec, options["show_tests"])
    separator, tags = options.get("answer_separator"), options.get("reasoning_tags")
    chats = options.get("assistant_content", False)
    if not (separator or tags or chats):
        return rows
    for row in rows:
        value = row.get(spec.answer_field, "")
        if chats and isinstance(value, list):
            replies = [m.get("content", "") for m in value if isinstance(m, dict) and m.get("role") == "assistant"]
            value = replies[-1] if replies else ""
        text = str(value)
        reasoning = None
        if tags:
            opening, closing = tags
            if closing in text:
                reasoning, _, text = text.partition(closing)
                reasoning = reasoning.split(opening, 1)[-1]
        elif separator and separator in text:
            reasoning, _, text = text.rpartition(separator)
        row[spec.answer_field] = text.strip()
        if reasoning is not None:
            row[spec.reasoning_field] = reasoning.strip()
        else:
            row.setdefault(spec.reasoning_field, "")
    return rows


def show_tests(rows: list[dict], spec, column: str) -> list[dict]:
    """MBPP's own prompt (Austin et al., 2021): the task, then "Your code should pass these
    tests:" and its asserts, so the prompt names the function the tests call."""
    for index, row in enumerate(rows):
        tests = row.get(column)
        if not isinstance(tests, list) or not tests:
            raise DataError(f"row {index} has no list of tests in column {column!r}", where="data.options.show_tests",
                            hint="name the column that holds each row's assert statements")
        row[spec.question_field] = (f"{row.get(spec.question_field, '')}\nYour code should pass these tests:\n"
                                    + "\n".join(map(str, tests)))
    return rows


def load_hub(arg: str, spec) -> list[dict]:
    import datasets

    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(arg, spec.options.get("name"), split=spec.split)
    except Exception as exc:
        raise DataError(
            f"could not load {arg!r} split {spec.split!r} from the Hugging Face Hub: {type(exc).__name__}: {exc}",
            hint='without network access, save it as JSONL and use source = "file:PATH"',
        ) from exc
    return split_answers(ds.to_list(), spec)


load_file.check = check_file
load_file.columns = jsonl_columns
load_hub.check = lambda arg, spec: check_mapping(spec)


@hookimpl
def register_datasets(register):
    register("file", load_file)
    register("hf", load_hub)
