"""Does each recipe's cpu profile exercise the reward its source is known for, with a signal
that varies? Runs every stage of each recipe's ``--profile cpu`` on the embedded Gemma-3-270M
(the training stages exactly as the profile sets them; only the first and last evals cut to
``--eval-items`` held-out items, since what they measure is not the question here), then
reads every GRPO stage's reward records: failures, timeouts, and the within-group std per step.

    python studies/cpu_profile_signals.py OUT [--recipe NAME ...] [--eval-items 16]

A reward is *live* in a stage when it never failed and its group std was > 0 at some step.
Writes OUT/signals.md and OUT/signals.json (with the CPU kind and each run's wall time); a
recipe whose run finished is not run again. One run at a time: the 270M needs ~5–10 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
RECIPES = HERE.parent / "recipes"
sys.path.insert(0, str(HERE))
from reasonlab.machine import cpu_kind  # noqa: E402

# the reward each source is known for (docs/recipes.md); the others are format/answer rewards
DISTINCTIVE = {"g_rar": ["rubric_judge"], "pinocchio": ["criteria_judge"], "idea_e": ["tfidf_relevance"],
               "metadata_checkpoint": ["checkpoints"], "format_align_reinforce": ["code_tests"],
               "think_2b": ["think_2b", "think_2b_comprehension", "think_2b_consistency"],
               "quickstart": [], "tunix_grpo_baseline": []}


def eval_overrides(recipe: Path, items: int) -> list[str]:
    """Cut the first and last eval stages (named eval_base / eval) to ``items`` rows."""
    from reasonlab.recipe import load_recipe

    loaded = load_recipe(recipe, "cpu")
    return [f"stages.{s.name}.data.limit={items}" for s in loaded.stages
            if s.kind == "eval" and s.enabled and s.name in ("eval_base", "eval")]


def run(recipe: Path, out: Path, items: int) -> tuple[Path, float]:
    runs = out / "runs" / recipe.stem
    finished = [d for d in runs.glob("*/*") if (d / "state.json").exists()
                and json.loads((d / "state.json").read_text())["status"] == "done"]
    if finished:
        return finished[0], json.loads((finished[0] / "signals_seconds.json").read_text())["seconds"]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reasonlab", "run", str(recipe), "-p", "cpu", *eval_overrides(recipe, items),
                    "--runs-dir", str(runs), "--no-progress"], check=True)
    run_dir = max(runs.glob("*/*"), key=lambda p: p.stat().st_mtime)
    seconds = time.perf_counter() - start
    (run_dir / "signals_seconds.json").write_text(json.dumps({"seconds": seconds}))
    return run_dir, seconds


def signals(run_dir: Path) -> list[dict]:
    """One row per (GRPO stage, reward): steps logged, mean score, mean and max group std, failures."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    table: dict[tuple[str, str], dict] = {}
    for r in records:
        for key, value in r.items():
            if not (key.startswith("reward/") and key.endswith("/group_std")) or key == "reward/total/group_std":
                continue
            name = key.split("/")[1]
            row = table.setdefault((r["stage"], name), {"stage": r["stage"], "reward": name, "stds": [], "means": [],
                                                       "failures": 0.0, "timeouts": 0.0})
            row["stds"].append(value)
            row["means"].append(r.get(f"reward/{name}/mean", 0.0))
            row["failures"] += r.get(f"reward/{name}/failures", 0.0)
            row["timeouts"] += r.get(f"reward/{name}/timeouts", 0.0)
    rows = []
    for row in table.values():
        stds, means = row.pop("stds"), row.pop("means")
        rows.append({**row, "steps": len(stds), "mean": sum(means) / len(means), "mean_group_std": sum(stds) / len(stds),
                     "max_group_std": max(stds), "steps_with_spread": sum(s > 0 for s in stds),
                     "live": max(stds) > 0 and not row["failures"] and not row["timeouts"]})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--recipe", action="append", help="a recipe name (default: all with a distinctive reward)")
    parser.add_argument("--eval-items", type=int, default=16)
    args = parser.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.recipe or [n for n, rewards in DISTINCTIVE.items() if rewards]
    report = {"cpu": cpu_kind(), "eval_items": args.eval_items, "recipes": {}}
    lines = [f"CPU: {cpu_kind()}; `--profile cpu`, evals cut to {args.eval_items} items", "",
             "| recipe | stage | reward | distinctive | steps | mean | mean group std | max group std | steps with spread | failures | live |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        run_dir, seconds = run(RECIPES / f"{name}.toml", args.out, args.eval_items)
        rows = signals(run_dir)
        report["recipes"][name] = {"run": str(run_dir), "seconds": seconds, "rewards": rows,
                                   "distinctive_live": all(any(r["live"] for r in rows if r["reward"] == d)
                                                           for d in DISTINCTIVE[name])}
        for r in rows:
            lines.append(f"| {name} | {r['stage']} | {r['reward']} | {'yes' if r['reward'] in DISTINCTIVE[name] else ''} | "
                         f"{r['steps']} | {r['mean']:.3f} | {r['mean_group_std']:.3f} | {r['max_group_std']:.3f} | "
                         f"{r['steps_with_spread']}/{r['steps']} | {r['failures'] + r['timeouts']:g} | "
                         f"{'yes' if r['live'] else 'NO'} |")
        (args.out / "signals.json").write_text(json.dumps(report, indent=2))
        (args.out / "signals.md").write_text("\n".join(lines) + "\n")
        print(f"{name}: {seconds / 60:.1f} min; distinctive reward live: {report['recipes'][name]['distinctive_live']}",
              flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
