"""One GRPO step on the embedded Gemma-3-270M: reasonlab (Tunix/JAX) against TRL (PyTorch), same CPU.

Same prompts (generated arithmetic problems in reasonlab's prompt template, ~64 tokens),
2 prompts x 4 generations x 64 new tokens, LoRA rank 8, beta 0.04, 5 steps; the first
step (compilation / warm-up) is left out of the steady-state mean. Each side runs in the
dtype this CPU runs it fastest in unless told (``--reasonlab-dtype``, ``--trl-dtype``).
Each side runs in its own process, one after the other, under /usr/bin/time for its peak RSS.

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
dtype = "{dtype}"
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


def reasonlab_side(args, tmp: Path, questions: Path, prompts_per_step: int = 2, generations: int = 4,
                   new_tokens: int = 64) -> dict:
    recipe = tmp / "grpo_step_bench.toml"
    recipe.write_text(RECIPE.format(rank=args.lora_rank, alpha=2.0 * args.lora_rank, prompts=questions,
                                    steps=args.steps, prompts_per_step=prompts_per_step, generations=generations,
                                    beta=0.04, new_tokens=new_tokens, reference=args.reference,
                                    dtype=args.reasonlab_dtype))
    runs = Path(tempfile.mkdtemp(prefix="runs-", dir=tmp))  # one run in it: the scaling script calls this often
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
    return {"framework": "reasonlab / Tunix 0.1.7 / JAX 0.10.2", "dtype": args.reasonlab_dtype,
            "step_seconds": steps, "steady_step_seconds": sum(steps) / len(steps),
            "generate_seconds": [r["perf/rollout_seconds"] for r in rollouts],
            "generate_tokens_per_second": sum(r["perf/rollout_tokens_per_second"] for r in rollouts) / len(rollouts),
            "peak_rss_gb": peak, "run_dir": str(run_dir)}


def trl_side(args, tmp: Path, prompts: Path, tokenizer: Path, prompts_per_step: int = 2, generations: int = 4,
             new_tokens: int = 64) -> dict:
    out = tmp / "trl.json"
    _, peak = timed([args.trl_python, str(Path(__file__).with_name("trl_grpo_step.py")), "--prompts", str(prompts),
                     "--tokenizer", str(tokenizer), "--out", str(out), "--steps", str(args.steps),
                     "--lora-rank", str(args.lora_rank), "--dtype", args.trl_dtype,
                     "--prompts-per-step", str(prompts_per_step), "--generations", str(generations),
                     "--new-tokens", str(new_tokens)])
    return {**json.loads(out.read_text()), "dtype": args.trl_dtype, "peak_rss_gb": peak}


def write_prompts(tmp: Path) -> tuple[Path, Path, Path]:
    """The same 64 generated arithmetic problems as reasonlab's questions and as TRL's rendered
    prompts, and the SentencePiece tokenizer both sides use."""
    from reasonlab.data import render_prompt
    from reasonlab.schema import DataSpec
    from reasonlab_plugins.datasets_arithmetic import generate
    from reasonlab_plugins.models_gemma import cache_dir, convert, gguf_file

    if not (cache_dir() / "tokenizer.model").exists():
        convert(gguf_file(), cache_dir())
    spec = DataSpec(source="arithmetic")
    rows = generate(n=64, seed=11)
    questions, prompts = tmp / "questions.jsonl", tmp / "prompts.jsonl"
    questions.write_text("".join(json.dumps({"question": r["question"]}) + "\n" for r in rows))
    prompts.write_text("".join(json.dumps({"prompt": render_prompt(r, spec)}) + "\n" for r in rows))
    return questions, prompts, cache_dir() / "tokenizer.model"


def add_side_arguments(parser: argparse.ArgumentParser) -> None:
    """Settings both benchmark scripts share. Each side's dtype defaults to the one this CPU
    runs it fastest in (``auto``): comparing a peer in its slow dtype is not a fair figure."""
    parser.add_argument("--trl-python", default=sys.executable, help="a Python with the [trl] extra installed")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--reference", choices=["base", "initial"], default="base",
                        help="GRPO reference: the shared frozen backbone (as TRL+PEFT) or a copy")
    parser.add_argument("--reasonlab-dtype", choices=["auto", "bfloat16", "float32"], default="auto")
    parser.add_argument("--trl-dtype", choices=["auto", "bfloat16", "float32"], default="auto",
                        help="auto: bfloat16 where the CPU has native bf16 dots (AVX-512 BF16/AMX), else float32 "
                             "(torch's bf16 backward on AVX2 was 10x slower, benchmarks/README.md)")


def resolve_dtypes(args) -> None:
    from reasonlab.machine import cpu_flags, resolve_dtype

    args.reasonlab_dtype = resolve_dtype(args.reasonlab_dtype)
    if args.trl_dtype == "auto":
        native = {"avx512_bf16", "amx_bf16"} & cpu_flags()
        args.trl_dtype = "bfloat16" if native else "float32"


def main() -> None:
    parser = argparse.ArgumentParser()
    add_side_arguments(parser)
    parser.add_argument("--only", choices=["reasonlab", "trl"])
    args = parser.parse_args()
    resolve_dtypes(args)

    from reasonlab.machine import cpu_kind

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        questions, prompts, tokenizer = write_prompts(tmp)
        sides = {}
        if args.only != "trl":
            sides["reasonlab"] = reasonlab_side(args, tmp, questions)
        if args.only != "reasonlab":
            sides["trl"] = trl_side(args, tmp, prompts, tokenizer)
    print(f"CPU: {cpu_kind()}")
    for name, side in sides.items():
        print(f"{name:10s} {side['framework']} ({side['dtype']}): {side['steady_step_seconds']:6.1f} s/step (steady), "
              f"generation {side['generate_tokens_per_second']:6.1f} new tokens/s, peak RSS {side['peak_rss_gb']:.2f} GB")
    result = {"cpu": cpu_kind(),
              "settings": {"prompts_per_step": 2, "generations": 4, "new_tokens": 64, "lora_rank": args.lora_rank,
                           "beta": 0.04, "steps": args.steps, "reference": args.reference},
              **sides}
    if len(sides) == 2:
        speed = sides["trl"]["steady_step_seconds"] / sides["reasonlab"]["steady_step_seconds"]
        memory = sides["reasonlab"]["peak_rss_gb"] / sides["trl"]["peak_rss_gb"]
        print(f"speed: reasonlab is {speed:.2f}x TRL's (target >= 2.5x); "
              f"memory: reasonlab peak is {memory:.2f}x TRL's (target <= 0.8)")
        result |= {"speed_ratio": speed, "memory_ratio": memory}
    write_result("against_trl", result)


if __name__ == "__main__":
    main()
