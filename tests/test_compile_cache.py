"""The compilation cache's prefetch (reasonlab/compile_cache.py): a run records the large programs
each stage read, the next run of the recipe loads a stage's programs in the background as the stage
begins, and JAX takes one only when it is the very program it asks for.

Each check runs in a subprocess: JAX's persistent-cache folder is process-wide, and in-process
tests must not write into a temporary one.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap

from jax._src.lib import xla_client

from conftest import REPO, reasonlab, run_dir_of

# argv: cache folder, then STAGE=SCALE pairs; each stage compiles one program whose constant is SCALE.
PROGRAM = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from reasonlab import compile_cache

    compile_cache.PREFETCH_MIN_BYTES = 0  # the test's programs are small
    compile_cache.enable(sys.argv[1], prefetch_as="recipe.default")

    def program(scale):
        def step(x):
            for _ in range(20):
                x = jnp.tanh(x @ x.T) * scale + x
            return x.sum()
        return jax.jit(step)

    values = {}
    for pair in sys.argv[2:]:
        stage, scale = pair.split("=")
        compile_cache.begin_stage(stage)
        values[stage] = float(program(float(scale))(np.ones((8, 8), np.float32)))  # no other program compiles
    print(json.dumps({"values": values, "claimed": compile_cache.finish_prefetch()}))
""")


def run_program(cache, *stages: str) -> dict:
    result = subprocess.run([sys.executable, "-c", PROGRAM, str(cache), *(stages or ["train=0.5"])],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def manifest(cache) -> list[dict]:
    return json.loads((cache / "prefetch" / "recipe.default.json").read_text())["programs"]


def test_second_run_takes_its_programs_from_the_prefetch(tmp_path):
    cold = run_program(tmp_path, "sft=0.5", "grpo=0.25")
    assert [(p["stage"], p["module"]) for p in manifest(tmp_path)] == [("sft", "jit_step"), ("grpo", "jit_step")]
    assert cold["claimed"] == []  # nothing to prefetch the first time

    warm = run_program(tmp_path, "sft=0.5", "grpo=0.25")
    assert warm == {"values": cold["values"], "claimed": ["jit_step", "jit_step"]}


def test_a_program_two_stages_read_is_prefetched_for_both(tmp_path):
    run_program(tmp_path, "eval_base=0.5", "eval=0.5")  # e.g. the same sampler before and after training
    assert [p["stage"] for p in manifest(tmp_path)] == ["eval_base", "eval"]
    assert run_program(tmp_path, "eval_base=0.5", "eval=0.5")["claimed"] == ["jit_step", "jit_step"]


def test_a_stage_gets_only_its_own_programs(tmp_path):
    run_program(tmp_path, "sft=0.5", "grpo=0.25")
    swapped = run_program(tmp_path, "sft=0.25", "grpo=0.5")  # each stage asks for the other's program
    assert swapped["claimed"] == []  # the other stage's prefetch was dropped when its stage ended


def test_a_changed_program_misses_the_prefetch_and_compiles(tmp_path):
    run_program(tmp_path, "train=0.5")
    changed = run_program(tmp_path, "train=0.25")  # another constant: another program and cache key
    assert changed["claimed"] == []
    assert changed["values"] == run_program(tmp_path / "fresh", "train=0.25")["values"]
    assert len(manifest(tmp_path)) == 1  # rewritten with what the last run used
    assert run_program(tmp_path, "train=0.25")["claimed"] == ["jit_step"]


def test_a_resumed_run_keeps_the_skipped_stages_programs(tmp_path):
    run_program(tmp_path, "sft=0.5", "grpo=0.25")
    run_program(tmp_path, "grpo=0.25")  # sft finished in an earlier session
    assert [p["stage"] for p in manifest(tmp_path)] == ["grpo", "sft"]
    assert run_program(tmp_path, "sft=0.5", "grpo=0.25")["claimed"] == ["jit_step", "jit_step"]


def test_prefetch_is_used_only_for_identical_compile_options(tmp_path):
    expected = run_program(tmp_path)["values"]
    recorded = manifest(tmp_path)[0]
    other_options = base64.b64encode(xla_client.CompileOptions().SerializeAsString()).decode()
    for field, other in (("options", other_options), ("devices", [99])):  # not the program JAX will ask for
        (tmp_path / "prefetch" / "recipe.default.json").write_text(json.dumps({"programs": [{**recorded, field: other}]}))
        again = run_program(tmp_path)
        assert again == {"values": expected, "claimed": []}, field


def test_unreadable_manifest_means_no_prefetch(tmp_path):
    expected = run_program(tmp_path)["values"]
    (tmp_path / "prefetch" / "recipe.default.json").write_text("{not json")
    assert run_program(tmp_path) == {"values": expected, "claimed": []}
    assert manifest(tmp_path)  # written anew


def test_a_recipe_run_records_and_then_prefetches_its_train_step(tmp_path):
    """Through the runner: the second run of a recipe hands JAX its train step from the prefetch."""
    recipe = REPO / "tests" / "recipes" / "mesh_tiny.toml"
    cache = tmp_path / "xla"
    args = ("run", recipe, "--no-progress", "stages.sft.enabled=false", "stages.grpo.steps=1",
            f'recipe.compilation_cache="{cache}"')
    for runs in ("cold", "warm"):
        result = reasonlab(*args, "--runs-dir", tmp_path / runs, env={"JAX_PLATFORMS": "cpu"})
        assert result.returncode == 0, result.stderr[-3000:]
    recorded = json.loads((cache / "prefetch" / "mesh_tiny.default.json").read_text())["programs"]
    assert ("grpo", "jit__train_step") in [(p["stage"], p["module"]) for p in recorded]
    cold = json.loads((run_dir_of(tmp_path / "cold", "mesh_tiny") / "state.json").read_text())
    warm = json.loads((run_dir_of(tmp_path / "warm", "mesh_tiny") / "state.json").read_text())
    assert "compilation_cache" not in cold
    assert "jit__train_step" in warm["compilation_cache"]["prefetched"]
