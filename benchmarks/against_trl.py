"""One GRPO step on the embedded Gemma-3-270M: reasonlab (Tunix/JAX) against TRL (PyTorch), same CPU.

Same prompts (generated arithmetic problems in reasonlab's prompt template, ~64 tokens),
2 prompts x 4 generations x 64 new tokens, LoRA rank 8, beta 0.04, bf16, 4 steps; the
first step (compilation / warm-up) is left out of the steady-state mean. Each side runs
in its own process, one after the other, under /usr/bin/time for its peak RSS.

TRL and torch live in the optional extra ``trl`` (never the main install):
    python -m venv .venv-trl && .venv-trl/bin/pip install -e ".[trl]"
    python benchmarks/against_trl.py --trl-python .venv-trl/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import write_result

RECIPE = """
[recipe]
name = "grpo_step_bench"
seed = 0
compilation_cache = false          # a cold start, as TRL has

[model]
preset = "gemma3-270m"
lora = {{ rank = {rank}, alpha = {alpha} }}

[[stages]]
name = "grpo"
kind = "grpo"
data = {{ source = "file:{prompts}" }}
steps = {steps}
batch_size = {prompts_per_step}
num_generations = {generations}
beta = {beta}
learning_rate = 1e-5
temperature = 0.7
top_k = 50
top_p = 0.9
max_prompt_tokens = 96
max_completion_tokens = {new_tokens}
reference = "{reference}"
rewards = [{{ name = "format_strict" }}]
"""


def timed(command: list[str], cwd: Path | None = None) -> tuple[subprocess.CompletedProcess, float]:
    result = subprocess.run(["/usr/bin/time", "-f", "MAXRSS_KB %M", *command], capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        sys.exit(f"{command[0]} failed:\n{result.stderr[-3000:]}")
    rss_kb = int(next(line for line in result.stderr.splitlines() if line.startswith("MAXRSS_KB")).split()[1])
    return result, rss_kb / 1e6


def reasonlab_side(args, tmp: Path, questions: Path) -> dict:
    recipe = tmp / "grpo_step_bench.toml"
    recipe.write_text(RECIPE.format(rank=args.lora_rank, alpha=2.0 * args.lora_rank, prompts=questions,
                                    steps=args.steps, prompts_per_step=2, generations=4, beta=0.04, new_tokens=64,
                                    reference=args.reference))
    runs = tmp / "runs"
    _, peak = timed([sys.executable, "-m", "reasonlab", "run", str(recipe), "--no-progress", "--runs-dir", str(runs)])
    run_dir = sorted(runs.glob("*/*"))[-1]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # Tunix logs a step's train metrics late (asynchronously), so a step is timed from one
    # rollout's end to the next: rollout + rewards + reference + update. The first interval
    # holds the train step's compilation and is left out.
    rollouts = [r for r in records if "perf/rollout_seconds" in r]
    ends = [r["time"] for r in rollouts]
    steps = [b - a for a, b in zip(ends[1:], ends[2:])]
    rollouts = rollouts[1:]
    return {"framework": "reasonlab / Tunix 0.1.7 / JAX 0.10.2", "step_seconds": steps,
            "steady_step_seconds": sum(steps) / len(steps),
            "generate_seconds": [r["perf/rollout_seconds"] for r in rollouts],
            "generate_tokens_per_second": sum(r["perf/rollout_tokens_per_second"] for r in rollouts) / len(rollouts),
            "peak_rss_gb": peak, "run_dir": str(run_dir)}


def trl_side(args, tmp: Path, prompts: Path, tokenizer: Path) -> dict:
    out = tmp / "trl.json"
    _, peak = timed([args.trl_python, str(Path(__file__).with_name("trl_grpo_step.py")), "--prompts", str(prompts),
                     "--tokenizer", str(tokenizer), "--out", str(out), "--steps", str(args.steps),
                     "--lora-rank", str(args.lora_rank)])
    return {**json.loads(out.read_text()), "peak_rss_gb": peak}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trl-python", default=sys.executable, help="a Python with the [trl] extra installed")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--reference", choices=["base", "initial"], default="base",
                        help="GRPO reference: the shared frozen backbone (as TRL+PEFT) or a copy")
    parser.add_argument("--only", choices=["reasonlab", "trl"])
    args = parser.parse_args()

    from reasonlab.data import render_prompt
    from reasonlab.schema import DataSpec
    from reasonlab_plugins.datasets_arithmetic import generate
    from reasonlab_plugins.models_gemma import cache_dir, convert, gguf_file

    if not (cache_dir() / "tokenizer.model").exists():
        convert(gguf_file(), cache_dir())
    spec = DataSpec(source="arithmetic")
    rows = generate(n=64, seed=11)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        questions, prompts = tmp / "questions.jsonl", tmp / "prompts.jsonl"
        questions.write_text("".join(json.dumps({"question": r["question"]}) + "\n" for r in rows))
        prompts.write_text("".join(json.dumps({"prompt": render_prompt(r, spec)}) + "\n" for r in rows))
        sides = {}
        if args.only != "trl":
            sides["reasonlab"] = reasonlab_side(args, tmp, questions)
        if args.only != "reasonlab":
            sides["trl"] = trl_side(args, tmp, prompts, cache_dir() / "tokenizer.model")
    for name, side in sides.items():
        print(f"{name:10s} {side['framework']}: {side['steady_step_seconds']:6.1f} s/step (steady), "
              f"generation {side['generate_tokens_per_second']:6.1f} new tokens/s, peak RSS {side['peak_rss_gb']:.2f} GB")
    result = {"settings": {"prompts_per_step": 2, "generations": 4, "new_tokens": 64, "lora_rank": args.lora_rank,
                           "beta": 0.04, "dtype": "bfloat16", "steps": args.steps, "reference": args.reference},
              **sides}
    if len(sides) == 2:
        speed = sides["trl"]["steady_step_seconds"] / sides["reasonlab"]["steady_step_seconds"]
        memory = sides["reasonlab"]["peak_rss_gb"] / sides["trl"]["peak_rss_gb"]
        print(f"speed: reasonlab is {speed:.2f}x TRL's (target >= 1.5x); "
              f"memory: reasonlab peak is {memory:.2f}x TRL's (target <= 1.0)")
        result |= {"speed_ratio": speed, "memory_ratio": memory}
    write_result("against_trl", result)


if __name__ == "__main__":
    main()
