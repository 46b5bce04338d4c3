"""What each GRPO algorithm costs: seconds per steady-state step of `reasonlab run` with
``algorithm = grpo | dr_grpo | dapo | gspo`` on the same prompts, and the ratio to ``grpo``.

The embedded Gemma-3-270M by default (LoRA rank 8, 2 prompts × 4 rollouts × 64 new tokens,
β as each algorithm sets it: DAPO runs without a reference); ``tiny`` as the third argument
for the tiny random model. A step's time is the interval between the first records logged
for consecutive steps (every algorithm logs its rewards for the step they serve), steps
WARM+1..N. DAPO's dynamic sampling rolls out extra batches where groups tie, so its step
costs what those rollouts cost: the script prints the mean extra batches per step beside
it. Rewards: the strict format reward plus the answer check, so groups can tie and vary.

Run: python benchmarks/grpo_algorithms.py [steps] [rounds] [gemma3-270m|tiny]
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import write_result

from reasonlab.machine import cpu_kind

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 8
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 1
PRESET = sys.argv[3] if len(sys.argv) > 3 else "gemma3-270m"
EMBEDDED = PRESET != "tiny"
WARM = 2
ALGORITHMS = ("grpo", "dr_grpo", "dapo", "gspo")


def recipe(algorithm: str) -> str:
    return f"""
[recipe]
name = "bench_{algorithm}"
[model]
preset = "{PRESET}"
lora = {"{ rank = 8, alpha = 16.0 }" if EMBEDDED else "false"}
[[stages]]
name = "grpo"
kind = "grpo"
algorithm = "{algorithm}"
data = {{ source = "arithmetic", options = {{ n = 256 }} }}
steps = {STEPS}
batch_size = 2
num_generations = 4
learning_rate = {1e-5 if EMBEDDED else 1e-3}
max_prompt_tokens = 96
max_completion_tokens = {64 if EMBEDDED else 32}
rewards = [{{ name = "format_strict" }}, {{ name = "answer_match" }}]
"""


def one_run(algorithm: str) -> tuple[float, float]:
    """(seconds per steady-state step, mean extra rollout batches per step)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{algorithm}.toml"
        path.write_text(recipe(algorithm))
        subprocess.run([sys.executable, "-m", "reasonlab", "run", str(path), "--no-progress", "--runs-dir", tmp],
                       check=True, capture_output=True, env={**os.environ, "WANDB_MODE": "disabled"})
        metrics = next(Path(tmp, f"bench_{algorithm}").iterdir()) / "metrics.jsonl"
        records = [json.loads(line) for line in metrics.read_text().splitlines()]
    first_seen: dict[int, float] = {}
    for r in records:
        if r.get("stage") == "grpo" and r.get("step", 0) >= 1:
            first_seen.setdefault(r["step"], r["time"])
    per_step = (first_seen[STEPS] - first_seen[WARM]) / (STEPS - WARM)
    extra = [r["train/dynamic_sampling/extra_batches"] for r in records if "train/dynamic_sampling/extra_batches" in r]
    return per_step, (statistics.mean(extra) if extra else 0.0)


if __name__ == "__main__":
    runs = {a: [] for a in ALGORITHMS}
    extra = {a: [] for a in ALGORITHMS}
    for _ in range(ROUNDS):  # interleaved, so drift in the machine's speed hits every algorithm alike
        for algorithm in ALGORITHMS:
            seconds, batches = one_run(algorithm)
            runs[algorithm].append(seconds)
            extra[algorithm].append(batches)
    base = statistics.median(runs["grpo"])
    print(f"{PRESET}, {STEPS} steps of 2x4 rollouts, median of {ROUNDS}; CPU: {cpu_kind()}")
    result = {"preset": PRESET, "steps": STEPS, "rounds": ROUNDS, "cpu": cpu_kind(), "algorithms": {}}
    for algorithm in ALGORITHMS:
        median = statistics.median(runs[algorithm])
        print(f"  {algorithm:8s} {median:7.2f} s/step  ratio to grpo {median / base:5.2f}"
              f"  extra rollout batches/step {statistics.mean(extra[algorithm]):.2f}")
        result["algorithms"][algorithm] = {"seconds_per_step": median, "ratio_to_grpo": median / base,
                                           "extra_batches_per_step": statistics.mean(extra[algorithm])}
    write_result(f"grpo_algorithms_{PRESET}", result)
