"""Meshes on simulated multi-device CPUs: sharded training equals one device, split
meshes, mesh errors, and two processes joined by jax.distributed (issue #11).

XLA_FLAGS must be set before JAX starts, so every run is a subprocess.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from conftest import REPO, read_metrics, reasonlab, run_dir_of

RECIPE = REPO / "tests" / "recipes" / "mesh_tiny.toml"

# An on_stage_end hook, loaded with --plugins-dir like any third-party plugin: records
# where every weight of the trained model lives.
PROBE = '''
import json

import jax
from flax import nnx

from reasonlab import hookimpl


@hookimpl
def on_stage_end(run, stage, result):
    state = nnx.state(result.model.model)
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        out[jax.tree_util.keystr(path)] = {
            "devices": sorted(d.id for d in leaf.sharding.device_set),
            "spec": str(getattr(leaf.sharding, "spec", "")),
            "replicated": leaf.sharding.is_fully_replicated,
            "shape": list(leaf.shape),
            "shard_shape": list(leaf.addressable_shards[0].data.shape),
        }
    (run.dir / f"shardings-{stage.name}.json").write_text(json.dumps(out))
'''


def devices(n: int) -> dict:
    return {"XLA_FLAGS": f"--xla_force_host_platform_device_count={n}", "JAX_PLATFORMS": "cpu"}


def run_tiny(tmp_path: Path, n_devices: int, *overrides: str, name: str = "runs") -> Path:
    plugins = tmp_path / "probe"
    plugins.mkdir(exist_ok=True)
    (plugins / "mesh_probe.py").write_text(PROBE)
    runs = tmp_path / name
    result = reasonlab("--plugins-dir", plugins, "run", RECIPE, "--no-progress", "--runs-dir", runs, *overrides,
                       env=devices(n_devices))
    assert result.returncode == 0, result.stderr[-4000:]
    return run_dir_of(runs, "mesh_tiny")


def losses(run_dir: Path, stage: str, key: str = "train/loss") -> list[float]:
    return [r[key] for r in read_metrics(run_dir) if r["stage"] == stage and key in r]


def shardings(run_dir: Path, stage: str) -> dict:
    return json.loads((run_dir / f"shardings-{stage}.json").read_text())


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    return run_tiny(tmp_path_factory.mktemp("one"), 1)


def assert_sharded(weights: dict, n_devices: int) -> None:
    embedding = next(v for k, v in weights.items() if "input_embedding" in k)
    assert embedding["devices"] == list(range(n_devices))
    assert not embedding["replicated"]
    assert embedding["shard_shape"] != embedding["shape"]  # each device holds a piece, not a copy
    split = [k for k, v in weights.items() if not v["replicated"]]
    assert len(split) >= len(weights) // 2, f"only {len(split)} of {len(weights)} weights are sharded"


def test_fsdp_tp_on_four_devices_matches_one_device(tmp_path, single_device):
    run = run_tiny(tmp_path, 4, "mesh.shape={fsdp=2,tp=2}")
    for stage in ("sft", "grpo"):
        weights = shardings(run, stage)
        assert_sharded(weights, 4)
        assert any("'fsdp'" in v["spec"] and "'tp'" in v["spec"] for v in weights.values())
    assert shardings(single_device, "sft")[next(iter(shardings(single_device, "sft")))]["devices"] == [0]
    assert losses(run, "sft") == pytest.approx(losses(single_device, "sft"), rel=1e-4)
    for key in ("train/actor/grad_norm", "train/completions/mean_length", "train/actor/loss"):
        sharded, single = losses(run, "grpo", key), losses(single_device, "grpo", key)
        assert len(sharded) >= 2
        assert sharded == pytest.approx(single, rel=1e-3, abs=1e-6), key
    # equal completion lengths: sampling on the sharded model drew the same rollouts


def test_fsdp_tp_on_eight_devices_sft(tmp_path, single_device):
    run = run_tiny(tmp_path, 8, "mesh.shape={fsdp=4,tp=2}", "stages.grpo.enabled=false")
    assert_sharded(shardings(run, "sft"), 8)
    assert losses(run, "sft") == pytest.approx(losses(single_device, "sft"), rel=1e-4)


def test_split_mesh_rollout_on_its_own_devices(tmp_path):
    """Actor and reference on devices 0-1, rollout on 2-3 (Tunix syncs weights across)."""
    run = run_tiny(tmp_path, 4, "stages.sft.enabled=false", "mesh.devices=[0,1]",
                   "mesh.roles={rollout={devices=[2,3]}, reference={devices=[0,1]}}")
    actor = shardings(run, "grpo")
    assert {tuple(v["devices"]) for v in actor.values()} == {(0, 1)}
    norms = losses(run, "grpo", "train/actor/grad_norm")
    assert len(norms) == 2 and all(0 < n < 1e3 for n in norms)  # two real updates, finite
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "done"


@pytest.mark.parametrize("overrides, message", [
    (["mesh.shape={fsdp=3}"], "mesh shape fsdp=3 x tp=1 needs 3 devices, not the 4 device(s)"),
    (["mesh.devices=[0,7]"], "device indices [7] do not exist"),
    (["stages.grpo.mesh={roles={rollout={shape={tp=4},devices=[2,3]}}}"], "needs 4 devices, not the 2 listed"),
])
def test_mesh_that_does_not_fit_is_a_clear_error(tmp_path, overrides, message):
    result = reasonlab("run", RECIPE, "--no-progress", "--runs-dir", tmp_path, *overrides, env=devices(4))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "XLA_FLAGS" in result.stderr  # says how to get more devices on CPU
    assert not (tmp_path / "mesh_tiny").exists()  # stopped before creating a run directory


def test_a_profile_replaces_a_mesh_shape_whole():
    from reasonlab.recipe import load_recipe

    def grpo_mesh(*profile):
        return next(s for s in load_recipe(REPO / "recipes" / "g_rar.toml", *profile).stages if s.name == "grpo").config.mesh

    base, cpu = grpo_mesh(), grpo_mesh("cpu")
    assert base.roles["judge"].shape == {"tp": 4} and base.devices == [0, 1, 2, 3]
    assert cpu.shape == {"fsdp": 1} and cpu.roles["judge"].shape == {"fsdp": 1}  # not {tp: 4, fsdp: 1}


def test_unknown_role_is_a_recipe_error():
    """Roles are declared by the stage kinds (``mesh_roles``), not by the core."""
    result = reasonlab("show", RECIPE, "mesh.roles={learner={devices=[0]}}")  # show takes overrides
    assert result.returncode == 2
    assert "mesh.roles.learner: no stage of this recipe places a model on a 'learner' role" in result.stderr
    result = reasonlab("show", RECIPE, "stages.sft.mesh={roles={rollout={devices=[0]}}}")
    assert result.returncode == 2
    assert "stages.sft.mesh.roles.rollout: a 'sft' stage places no model on a 'rollout' role" in result.stderr


def test_missing_rollout_engine_is_a_clear_error(tmp_path):
    result = reasonlab("run", RECIPE, "--no-progress", "--runs-dir", tmp_path, "stages.sft.enabled=false",
                       'stages.grpo.rollout_engine="vllm"')
    assert result.returncode == 2
    assert "needs the 'vllm' package" in result.stderr and "Traceback" not in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_with_jax_distributed(tmp_path, single_device):
    """Two local processes, one CPU device each, run SFT and GRPO together."""
    import os
    import subprocess
    import sys

    runs = tmp_path / "runs"
    port = _free_port()
    procs = []
    for index in range(2):
        env = {**os.environ, "WANDB_MODE": "offline", "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "",
               "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2",
               "JAX_PROCESS_ID": str(index)}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "reasonlab", "run", str(RECIPE), "--no-progress", "--runs-dir", str(runs)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-4000:]
    run = run_dir_of(runs, "mesh_tiny")  # exactly one run directory
    assert "run directory:" in outputs[0][1] and "run directory:" not in outputs[1][1]
    assert json.loads((run / "environment.json").read_text())["processes"] == 2
    assert json.loads((run / "state.json").read_text())["status"] == "done"
    steps = [r["step"] for r in read_metrics(run) if r["stage"] == "sft" and "train/loss" in r]
    assert steps == [1, 2, 3, 4]  # logged once, by process 0
    # each process fed half of every global batch: the same steps as one device with the whole batch
    assert losses(run, "sft") == pytest.approx(losses(single_device, "sft"), rel=1e-4)
    for key in ("train/actor/grad_norm", "train/completions/mean_length"):  # the same GRPO steps and rollouts
        assert losses(run, "grpo", key) == pytest.approx(losses(single_device, "grpo", key), rel=1e-4), key
    assert (run / "stages" / "sft" / "final").is_dir()
    assert any((run / "stages" / "sft" / "checkpoints").iterdir())


JUDGE_PLACEMENT = '''
import json

import jax
from flax import nnx

from reasonlab.mesh import StageMeshes, build_mesh
from reasonlab.plugins import get_plugins
from reasonlab.rewards import RewardContext
from reasonlab.schema import DeviceSlice
from reasonlab_plugins.judges_local import LocalJudge

main = build_mesh(DeviceSlice(devices=[0, 1]), "mesh")
judge_mesh = build_mesh(DeviceSlice(devices=[2, 3], shape={"tp": 2}), "mesh.roles.judge")
context = RewardContext(get_plugins(), StageMeshes(main, {"judge": judge_mesh}))  # what a stage hands its rewards
judge = LocalJudge({"preset": "tiny", "max_tokens": 4, "max_prompt_tokens": 64, "batch_size": 2}, context=context)
replies = judge.complete_many([[{"role": "user", "content": "Score this answer from 1 to 10."}]] * 3)
leaves = jax.tree.leaves(nnx.state(judge._bundle.model))
print(json.dumps({"devices": sorted({d.id for leaf in leaves for d in leaf.sharding.device_set}),
                  "sharded": sum(not leaf.sharding.is_fully_replicated for leaf in leaves),
                  "replies": [r is not None for r in replies]}))
'''


def test_local_judge_loads_on_its_own_slice(tmp_path):
    import os
    import subprocess
    import sys

    script = tmp_path / "judge_placement.py"
    script.write_text(JUDGE_PLACEMENT)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, **devices(4)})
    assert result.returncode == 0, result.stderr[-4000:]
    placed = json.loads(result.stdout.strip().splitlines()[-1])
    assert placed["devices"] == [2, 3]  # the judge's half, none of the learner's devices
    assert placed["sharded"] > 0  # tensor-parallel over its two devices
    assert placed["replies"] == [True, True, True]


def test_g_rar_split_mesh_judge_on_its_own_devices(tmp_path):
    """G-RaR's layout at tiny scale: policy/reference on devices 0-1, the rubric judge on 2-3."""
    runs = tmp_path / "runs"
    result = reasonlab("run", REPO / "recipes" / "g_rar.toml", "--profile", "tiny", "--no-progress",
                       "--runs-dir", runs, "stages.eval_base.enabled=false", "stages.eval.enabled=false",
                       "stages.grpo.mesh={devices=[0,1],shape={fsdp=2},roles={judge={devices=[2,3],shape={tp=2}}}}",
                       env=devices(4))
    assert result.returncode == 0, result.stderr[-4000:]
    records = read_metrics(run_dir_of(runs, "g_rar"))
    judged = [r for r in records if r["stage"] == "grpo" and "reward/rubric_judge/seconds" in r]
    assert len(judged) == 2  # the judge scored both steps' rollouts
    assert len(losses(run_dir_of(runs, "g_rar"), "grpo", "train/actor/grad_norm")) == 2


@pytest.mark.parametrize("family", ["qwen3", "llama3"])
def test_a_qwen_or_llama_checkpoint_shards_and_trains_as_on_one_device(tmp_path, family):
    """The Qwen and Llama presets on a 2 × 2 mesh: weights split over the four devices, SFT losses
    and GRPO updates equal one device's (Qwen3 on the lean log-prob path, Llama 3 on Tunix's,
    both with the checkpoint's rope routed through plugins/_rope.py)."""
    from test_presets_hf import FAMILIES, write_checkpoint

    write_checkpoint(tmp_path / "ckpt", family)
    model = (f"model.preset={FAMILIES[family][0]}", f"model.path={tmp_path / 'ckpt'}", "model.dtype=float32",
             "stages.sft.max_prompt_tokens=512", "stages.grpo.max_prompt_tokens=512")
    one = run_tiny(tmp_path, 1, *model, name="one")
    run = run_tiny(tmp_path, 4, *model, "mesh.shape={fsdp=2,tp=2}", name="four")
    assert_sharded(shardings(run, "grpo"), 4)
    assert losses(run, "sft") == pytest.approx(losses(one, "sft"), rel=1e-4)
    for key in ("train/actor/grad_norm", "train/completions/mean_length", "train/actor/loss"):
        sharded, single = losses(run, "grpo", key), losses(one, "grpo", key)
        assert len(sharded) >= 2 and sharded == pytest.approx(single, rel=1e-3, abs=1e-6), key
