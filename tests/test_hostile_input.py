"""Hostile recipes, overrides and data files, generated (hypothesis): every one is refused by
the CLI with exit 2, a message naming the file and the key path or row, no traceback, no
hang (a timeout per case), and nothing written anywhere."""

from __future__ import annotations

import math
import os
import re

import pytest
from conftest import reasonlab
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow  # one CLI process per example

HEADER = '[recipe]\nname = "hostile"\n\n[model]\npreset = "tiny"\n\n'


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    return repr(value)


def stage(data: str, extra: str = "", kind: str = "sft") -> str:
    steps = "steps = 2\n" if kind == "sft" else ""
    return f'[[stages]]\nname = "s"\nkind = "{kind}"\ndata = {data}\n{steps}{extra}'


BAD_NUMBERS = [math.nan, math.inf, -math.inf, "5", -1, [1]]
generator_options = st.one_of(
    st.tuples(st.sampled_from(["arithmetic", "dilemmas", "code_tasks", "open_questions"]),
              st.sampled_from(["n", "seed"]), st.sampled_from([0, -3, 10**9, "abc", 1.5, True, math.nan])
              ).filter(lambda c: not (c[1] == "seed" and c[2] in (0, 10**9))),
    st.tuples(st.just("arithmetic"), st.just("max_operand"), st.sampled_from([1, 0, -2, "x", False, 2.5])),
    st.tuples(st.just("arithmetic"), st.just("max_ops"), st.sampled_from([0, 4, -2, "x", True])),
    st.tuples(st.just("arithmetic"), st.just("pairs"), st.sampled_from(["yes", 1, 0.5])),
    st.tuples(st.sampled_from(["arithmetic", "dilemmas"]), st.sampled_from(["bogus", "n_rows"]), st.just(3)),
)


@st.composite
def hostile(draw):
    """(kind, recipe text, what the error must name)"""
    kind = draw(st.sampled_from(["generator", "impossible", "number", "file", "template", "nesting"]))
    if kind == "generator":
        source, key, value = draw(generator_options)
        return kind, HEADER + stage(f'{{ source = "{source}", options = {{ {key} = {toml_value(value)} }} }}'), \
            rf"stages\.s\.data.*{key}|data\.options"
    if kind == "impossible":
        data = draw(st.sampled_from([
            '{ source = "arithmetic", options = { n = 100000, max_operand = 2, max_ops = 1 } }',
            '{ source = "dilemmas", options = { n = 31 } }',
            '{ source = "open_questions", split = "test", options = { n = 8 } }',
            '{ source = "code_tasks", split = "test", options = { n = 50 } }']))
        return kind, HEADER + stage(data), r"stages\.s\.data.*has only \d+ distinct"
    if kind == "number":
        key = draw(st.sampled_from(["steps", "learning_rate", "batch_size", "warmup_ratio", "enabled",
                                    "max_completion_tokens"]))
        value = draw(st.sampled_from(BAD_NUMBERS))
        extra = f"{key} = {toml_value(value)}\n"
        text = HEADER + stage('{ source = "arithmetic" }', extra).replace("steps = 2\nsteps", "steps")
        return kind, text, rf"stages\.s\.{key}"
    if kind == "file":
        name = draw(st.sampled_from(["dir.jsonl", "fifo.jsonl", "/dev/zero", "missing.jsonl", "data.txt",
                                     "utf8.jsonl", "json.jsonl", "list.jsonl"]))
        return kind, HEADER + stage(f'{{ source = "file:{name}" }}'), r"stages\.s\.data|\.jsonl:\d+"
    if kind == "template":
        field = draw(st.sampled_from(["{foo}", "{0}", "{}", "{question.__class__}", "{question", "}"]))
        return kind, HEADER + stage(f'{{ source = "arithmetic", template = "Q: {field}" }}'), r"stages\.s\.data\.template"
    depth = draw(st.integers(40, 200))
    nested = "{ a = " * depth + "1" + " }" * depth
    return kind, HEADER + stage(f'{{ source = "arithmetic", options = {nested} }}'), r"nest|deep"


def make_files(folder):
    (folder / "dir.jsonl").mkdir()
    os.mkfifo(folder / "fifo.jsonl")
    (folder / "data.txt").write_text('{"question": "q", "answer": "1"}\n')
    (folder / "utf8.jsonl").write_bytes(b'{"question": "q", "answer": "1"}\n{"question": "\xff\xfe"}\n')
    (folder / "json.jsonl").write_text('{"question": "q", "answer": "1"}\n{"question": \n')
    (folder / "list.jsonl").write_text('{"question": "q", "answer": "1"}\n[1, 2]\n')


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=hostile())
def test_hostile_recipes_and_data_are_refused_with_where_and_exit_2(tmp_path_factory, case):
    kind, text, names = case
    folder = tmp_path_factory.mktemp("hostile")
    make_files(folder)
    recipe = folder / "hostile.toml"
    recipe.write_text(text)
    before = sorted(p.name for p in folder.iterdir())
    for command in (("validate", recipe), ("show", recipe)):
        result = reasonlab(*command, cwd=folder, timeout=60)
        if command[0] == "show" and kind in ("impossible", "file", "generator"):
            continue  # show resolves the recipe only; data is validate's (and the run's) to read
        assert result.returncode == 2, (command, text, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        assert "hostile.toml" in result.stderr, result.stderr
        assert re.search(names, result.stderr), (names, result.stderr)
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written


@pytest.mark.parametrize("override", [
    "stages.sft.steps=nan", "stages.sft.learning_rate=inf", "stages.sft.enabled=\"no\"",
    "stages.sft.data.options=" + "{ a = " * 60 + "1" + " }" * 60, "stages.sft.data.options.n=-1",
])
def test_hostile_overrides_are_refused(tmp_path, override):
    from conftest import QUICKSTART

    result = reasonlab("run", QUICKSTART, "--profile", "tiny", override, "--runs-dir", tmp_path / "runs",
                       cwd=tmp_path, timeout=120, env={"WANDB_MODE": "disabled"})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr
    assert "stages.sft" in result.stderr or "nest" in result.stderr, result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("checkpoints"))


def test_an_impossible_generator_stops_the_run_before_training(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(HEADER.replace('preset = "tiny"', 'preset = "tiny"\nlora = false') + stage(
        '{ source = "arithmetic", options = { n = 100000, max_operand = 2, max_ops = 1 } }',
        "batch_size = 4\nmax_prompt_tokens = 96\nmax_completion_tokens = 64\n"))
    result = reasonlab("run", recipe, "--no-progress", "--runs-dir", tmp_path / "runs", timeout=120,
                       env={"WANDB_MODE": "disabled"})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "has only" in result.stderr and "set n to at most" in result.stderr and "Traceback" not in result.stderr
    assert not any((tmp_path / "runs").rglob("checkpoints"))  # refused before anything trained
