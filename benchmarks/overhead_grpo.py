"""reasonlab's GRPO overhead over raw Tunix: the same GRPO steps, once via `reasonlab run` and
once via a plain script building Tunix's RLCluster + GRPOLearner itself.

On the tiny model (default, full fine-tuning) or the embedded Gemma-3-270M (third argument
``gemma3-270m``: LoRA rank 8, 64 new tokens, the reference sharing the frozen backbone on
both sides). The plain script uses Tunix's own GRPO loss; reasonlab's lean loss
(reasonlab.logprobs) computes the same values with less work, so on the embedded model the
ratio measures that too, not only the framework's overhead.

Both sides time a step the same way: the interval between consecutive reward calls (one
per step, right after the rollout). Steady state = steps WARM+1..N; ROUNDS interleaved
runs of each, medians. Target <= 1.03.
Run: python benchmarks/overhead_grpo.py [steps] [rounds] [tiny|gemma3-270m]
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import compare_interleaved, load_bundle

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
PRESET = sys.argv[3] if len(sys.argv) > 3 else "tiny"
EMBEDDED = PRESET != "tiny"
WARM = 2 if EMBEDDED else 5
BATCH, GENERATIONS, PROMPT_TOKENS = 2, 4, 96
NEW_TOKENS = 64 if EMBEDDED else 32
LEARNING_RATE = 1e-5 if EMBEDDED else 1e-3
RECIPE = f"""
[recipe]
name = "overhead_grpo"
compilation_cache = false
[model]
preset = "{PRESET}"
lora = {"{ rank = 8, alpha = 16.0 }" if EMBEDDED else "false"}
[[stages]]
name = "grpo"
kind = "grpo"
data = {{ source = "arithmetic", options = {{ n = 256 }} }}
steps = {STEPS}
batch_size = {BATCH}
num_generations = {GENERATIONS}
learning_rate = {LEARNING_RATE}
max_prompt_tokens = {PROMPT_TOKENS}
max_completion_tokens = {NEW_TOKENS}
rewards = [{{ name = "format_strict" }}]
reference = "{"base" if EMBEDDED else "initial"}"
"""


def per_step(stamps: list[float]) -> float:
    return (stamps[STEPS - 1] - stamps[WARM - 1]) / (STEPS - WARM)


def through_reasonlab() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp) / "overhead_grpo.toml"
        recipe.write_text(RECIPE)
        subprocess.run([sys.executable, "-m", "reasonlab", "run", str(recipe), "--no-progress", "--runs-dir", tmp],
                       check=True, capture_output=True, env={**os.environ, "WANDB_MODE": "disabled"})
        metrics = next(Path(tmp, "overhead_grpo").iterdir()) / "metrics.jsonl"
        stamps = [r["time"] for r in map(json.loads, metrics.read_text().splitlines()) if "reward/total/mean" in r]
    return per_step(stamps)


def through_tunix() -> float:
    import grain
    import optax
    from flax import nnx
    from tunix.rl import rl_cluster as rl_cluster_lib
    from tunix.rl.grpo import grpo_learner
    from tunix.rl.rollout import base_rollout

    from reasonlab.data import DEFAULT_TEMPLATE
    from reasonlab.modeling import single_device_mesh
    from reasonlab_plugins.datasets_arithmetic import generate
    from reasonlab_plugins.rewards_format import format_strict

    bundle = load_bundle(PRESET)
    # LoRA: the reference is the frozen backbone, shared (as the recipe's reference = "base")
    reference = bundle.base if EMBEDDED else nnx.clone(bundle.model)
    rows = [{"prompts": DEFAULT_TEMPLATE.format(question=r["question"])} for r in generate(n=256)]
    order = np.random.default_rng(0).permutation(len(rows)).tolist() * 2
    stamps: list[float] = []

    def reward(prompts, completions, **_):
        stamps.append(time.time())
        return format_strict(prompts, completions)

    mesh = single_device_mesh()
    checkpoints = tempfile.mkdtemp()
    import orbax.checkpoint as ocp
    from tunix.sft import metrics_logger

    cluster = rl_cluster_lib.RLCluster(
        actor=bundle.model, reference=reference, tokenizer=bundle.tokenizer,
        cluster_config=rl_cluster_lib.ClusterConfig(
            role_to_mesh={rl_cluster_lib.Role.ACTOR: mesh, rl_cluster_lib.Role.REFERENCE: mesh,
                          rl_cluster_lib.Role.ROLLOUT: mesh},
            rollout_engine="vanilla", offload_to_cpu=False,
            training_config=rl_cluster_lib.RLTrainingConfig(
                actor_optimizer=optax.chain(optax.clip_by_global_norm(0.1), optax.adamw(LEARNING_RATE, b1=0.9, b2=0.99,
                                                                                       weight_decay=0.1)),
                eval_every_n_steps=STEPS + 1, max_steps=STEPS, checkpoint_root_directory=checkpoints,
                checkpointing_options=ocp.CheckpointManagerOptions(save_interval_steps=STEPS, max_to_keep=1),
                metrics_logging_options=metrics_logger.MetricsLoggerOptions(log_dir=tempfile.mkdtemp()),
            ),
            rollout_config=base_rollout.RolloutConfig(
                max_tokens_to_generate=NEW_TOKENS, max_prompt_length=PROMPT_TOKENS,
                kv_cache_size=PROMPT_TOKENS + NEW_TOKENS + 8, temperature=0.7, top_k=50, top_p=0.9,
                eos_tokens=bundle.stop_ids, seed=0)))
    learner = grpo_learner.GRPOLearner(
        rl_cluster=cluster, reward_fns=[reward],
        algo_config=grpo_learner.GRPOConfig(num_generations=GENERATIONS, num_iterations=1, beta=0.04, epsilon=0.2))
    data = grain.MapDataset.source([rows[i] for i in order[: STEPS * BATCH]]).batch(BATCH)
    with mesh:
        learner.train(data)
    return per_step(stamps)


if __name__ == "__main__":
    os.environ.setdefault("WANDB_MODE", "disabled")
    compare_interleaved(f"overhead_grpo_{PRESET}",
                        f"{PRESET} GRPO, {STEPS} steps of {BATCH}x{GENERATIONS} rollouts x {NEW_TOKENS} tokens",
                        through_reasonlab, through_tunix, ROUNDS, STEPS)
