"""Local files and Hugging Face Hub datasets, both through HF ``datasets.load_dataset``.

- ``source = "file:path/to/data.jsonl"`` (also ``.json``, ``.parquet``, ``.csv``), path
  relative to the current directory;
- ``source = "hf:owner/name"`` (``data.options.name`` picks a config), needs the network
  or a populated HF cache.

``data.options.answer_separator`` (e.g. "####" for GSM8K) splits the ``answer`` column
into ``reasoning`` (before) and ``answer`` (after), for either source.
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
    if path.suffix == ".jsonl":
        bad = _find_bad_jsonl_row(path, PEEK_ROWS)
        if bad:
            raise bad


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
    separator = spec.options.get("answer_separator")
    if not separator:
        return rows
    for row in rows:
        text = str(row.get(spec.answer_field, ""))
        if separator in text:
            reasoning, _, answer = text.rpartition(separator)
            row[spec.reasoning_field], row[spec.answer_field] = reasoning.strip(), answer.strip()
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


@hookimpl
def register_datasets(register):
    register("file", load_file)
    register("hf", load_hub)
