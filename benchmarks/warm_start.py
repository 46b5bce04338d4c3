"""Warm start: how much sooner a second run of a recipe reaches its first GRPO step, thanks to
JAX's persistent compilation cache (``recipe.compilation_cache``). Target: >= 2x sooner.

Both runs use a fresh cache folder (first run: cold, second: warm) and the same recipe; the
time is from launching ``reasonlab run`` to the end of the first GRPO step (rollout, rewards,
reference, update): the start of the second step's rollout. (Tunix logs a step's train
metrics later, asynchronously, so their records do not mark the step's end.)

On a shared 2-core VM one pair varies by +-10 %, so ``--rounds N`` repeats the cold/warm pair
(each round with a fresh cache) and judges the median ratio.

Run: python benchmarks/warm_start.py [--profile tiny|cpu] [--recipe recipes/quickstart.toml] [--rounds N] [OVERRIDES]
(the cpu profile loads the embedded Gemma-3-270M: ~10 GB, ~3 minutes per round)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import write_result

REPO = Path(__file__).resolve().parents[1]


def time_to_first_grpo_step(recipe: Path, profile: str, cache: Path, runs: Path, grpo_stage: str,
                            extra: list[str]) -> float:
    start = time.time()
    overrides = [f'recipe.compilation_cache="{cache}"', f"stages.{grpo_stage}.steps=2", *extra]
    subprocess.run([sys.executable, "-m", "reasonlab", "run", str(recipe), "--profile", profile, "--no-progress",
                    "--runs-dir", str(runs), *overrides], check=True, capture_output=True)
    run_dir = sorted((runs).glob("*/*"))[-1]
    rollouts = [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
                if r["stage"] == grpo_stage and "perf/rollout_seconds" in r]
    if len(rollouts) >= 2:
        return rollouts[1]["time"] - rollouts[1]["perf/rollout_seconds"] - start
    raise SystemExit(f"fewer than two GRPO rollouts in {run_dir}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "quickstart.toml"))
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--grpo-stage", default="grpo")
    parser.add_argument("--rounds", type=int, default=1, help="cold/warm pairs, each with a fresh cache")
    parser.add_argument("overrides", nargs="*", help="recipe overrides for both runs, e.g. stages.eval.enabled=false")
    args = parser.parse_args()
    pairs = []
    for round_index in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            cache, runs = Path(tmp) / "xla", Path(tmp) / "runs"
            cold = time_to_first_grpo_step(Path(args.recipe), args.profile, cache, runs / "cold", args.grpo_stage,
                                           args.overrides)
            warm = time_to_first_grpo_step(Path(args.recipe), args.profile, cache, runs / "warm", args.grpo_stage,
                                           args.overrides)
            size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
        pairs.append({"cold_seconds": cold, "warm_seconds": warm, "ratio": cold / warm, "cache_bytes": size})
        print(f"round {round_index + 1}: first GRPO step after launch: cold cache {cold:.1f} s, warm cache "
              f"{warm:.1f} s -> {cold / warm:.2f}x sooner; cache {size / 1e6:.1f} MB", flush=True)
    ratio = statistics.median(pair["ratio"] for pair in pairs)
    cold = statistics.median(pair["cold_seconds"] for pair in pairs)
    warm = statistics.median(pair["warm_seconds"] for pair in pairs)
    print(f"median of {len(pairs)}: cold {cold:.1f} s, warm {warm:.1f} s, ratio {ratio:.2f}x "
          f"({'OK' if ratio >= 2 else 'UNDER'} target 2x)")
    write_result(f"warm_start_{args.profile}", {"recipe": args.recipe, "profile": args.profile, "cold_seconds": cold,
                                                "warm_seconds": warm, "ratio": ratio, "rounds": pairs})


if __name__ == "__main__":
    main()
