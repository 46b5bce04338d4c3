"""Bad input everywhere gets a located error; secrets never reach the run directory."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import tomli_w
from conftest import QUICKSTART, reasonlab, run_dir_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reasonlab.data import load_rows, require_columns
from reasonlab.errors import ReasonlabError
from reasonlab.plugins import get_plugins
from reasonlab.recipe import load_recipe
from reasonlab.schema import DataSpec

BASE = tomllib.loads((Path(__file__).parent / "test_recipe_errors.py").read_text().split('GOOD = """')[1].split('"""')[0])

values = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=8),
                   st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


def paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from paths(v, prefix + (i,))


ALL_PATHS = [p for p in paths(BASE) if p]


def mutate(tree, path, action, value):
    target = tree
    for part in path[:-1]:
        target = target[part]
    last = path[-1]
    if action == "delete":
        del target[last]
    elif action == "replace":
        target[last] = value
    elif isinstance(target, dict):
        target[f"{last}_typo"] = value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(ALL_PATHS), action=st.sampled_from(["delete", "replace", "add"]), value=values)
def test_malformed_recipes_never_escape_as_tracebacks(tmp_path, path, action, value):
    tree = json.loads(json.dumps(BASE))
    mutate(tree, path, action, value)
    try:
        text = tomli_w.dumps(_strip_none(tree))
    except (TypeError, ValueError):
        return  # not expressible in TOML
    recipe = tmp_path / "r.toml"
    recipe.write_text(text)
    try:
        load_recipe(recipe)
    except ReasonlabError as exc:
        assert exc.where and str(recipe) in exc.where
        # the key path is named: in `where` ("file: profiles") or on each listed problem ("stages.sft.steps: ...")
        assert exc.where != str(recipe) or re.search(r"^\s*\S+: ", exc.message, re.M), str(exc)


def _strip_none(tree):
    if isinstance(tree, dict):
        return {k: _strip_none(v) for k, v in tree.items() if v is not None}
    if isinstance(tree, list):
        return [_strip_none(v) for v in tree if v is not None]
    return tree


rows = st.lists(st.one_of(
    st.dictionaries(st.sampled_from(["question", "answer", "reasoning", "x"]), st.one_of(st.text(max_size=5), st.integers()),
                    max_size=4),
    st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2), st.none()), min_size=0, max_size=6)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=rows, corrupt=st.booleans())
def test_malformed_dataset_rows_are_located(tmp_path, content, corrupt):
    path = tmp_path / "d.jsonl"
    data = "\n".join(json.dumps(r) for r in content).encode()
    if corrupt:
        data += b'\n{"question": "\xff\xfe"}'
    path.write_bytes(data)
    spec = DataSpec(source=f"file:{path}")
    try:
        require_columns(load_rows(spec, get_plugins()), ["question", "answer", "reasoning"], spec)
    except ReasonlabError as exc:
        located = (exc.where or "") + str(exc)
        assert "d.jsonl" in located
        assert "row" in str(exc) or ":" in (exc.where or "") or "no rows" in str(exc)


def test_resume_refuses_foreign_or_incompatible_folders(tmp_path):
    result = reasonlab("resume", tmp_path)
    assert result.returncode == 2 and "not a reasonlab run directory" in result.stderr
    (tmp_path / "recipe.toml").write_text("[recipe]\nname='x'\n")
    (tmp_path / "state.json").write_text(json.dumps({"format": 99, "stages": {}}))
    result = reasonlab("resume", tmp_path)
    assert result.returncode == 2 and "format 99" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "state.json").write_text("{half")
    result = reasonlab("resume", tmp_path)
    assert result.returncode == 2 and "unreadable" in result.stderr


@pytest.mark.slow
def test_secrets_stay_out_of_the_run_directory(tmp_path):
    from judge_server import JudgeServer

    secrets = {"OPENAI_API_KEY": "sk-fake-env-4242", "WANDB_API_KEY": "wandbfake" + "0" * 31, "HF_TOKEN": "hf_fakeToken99"}
    inline = "sk-inline-7777"
    with JudgeServer(lambda m: '{"accuracy": 5, "logic": 5, "format": 5, "hallucination": false}') as server:
        rewards = ('[{ name = "format_strict" }, { name = "criteria_judge", options = { judge_options = { base_url = "'
                   + server.url + '", api_key = "' + inline + '", cache = false } } }]')
        result = reasonlab("run", QUICKSTART, "--profile", "tiny", "--no-progress", "--runs-dir", tmp_path,
                           "stages.sft.steps=5", "stages.grpo.steps=1", f"stages.grpo.rewards={rewards}",
                           "stages.grpo.checkpoint_every=1", env={**secrets, "WANDB_MODE": "offline"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert server.requests[0]["auth"] == "Bearer sk-fake-env-4242"  # the key was used...
    run_dir = run_dir_of(tmp_path, "quickstart")
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files)
    for path in files:  # ...and is nowhere on disk, nor is the inline one
        data = path.read_bytes()
        for secret in [*secrets.values(), inline]:
            assert secret.encode() not in data, f"{secret} leaked into {path}"
    assert "***redacted***" in (run_dir / "recipe.toml").read_text()
