"""What each stage buys: base model, SFT only, and SFT -> GRPO from the same SFT checkpoint,
evaluated on the same held-out items, with intervals and paired tests between the rows.

    python studies/what_each_stage_buys.py OUT [--recipe recipes/quickstart.toml] [--profile cpu]
        [--variant LABEL STAGE.KEY=VALUE ...]

1. ``reasonlab run RECIPE -p PROFILE stages.grpo.enabled=false``: the base eval, SFT, and
   the final eval stage on the SFT model (the "SFT only" row);
2. a branch of that run (``studies/branch.py``) with GRPO and the final eval switched on,
   through ``reasonlab resume``: the same SFT checkpoint, GRPO added (the "SFT -> GRPO" row);
3. with ``--variant LABEL STAGE.KEY=VALUE ...``, one more such branch per variant with those
   settings (e.g. ``--variant dapo grpo.algorithm=dapo``), a row each.

Every row is scored on the items of the recipe's eval stages (greedy, plus the
``sampled_format`` samples at temperature 0.7). Writes OUT/table.md and OUT/table.json;
a finished step is not redone when the command is run again.
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
sys.path.insert(0, str(HERE))
from branch import branch  # noqa: E402
from grpo_teaches import cpu_kind  # noqa: E402


def done(run: Path) -> bool:
    return (run / "state.json").exists() and json.loads((run / "state.json").read_text())["status"] == "done"


def reasonlab(*args) -> None:
    subprocess.run([sys.executable, "-m", "reasonlab", *map(str, args)], check=True)


def train_variant(out: Path, label: str, settings: list[str]) -> dict[str, float]:
    """SFT -> GRPO again from the same SFT checkpoint, with these GRPO settings (e.g. an algorithm)."""
    run = out / f"sft_{label}"
    if done(run):
        return {}
    start = time.perf_counter()
    if not run.exists():
        branch(out / "sft_only", run, ["grpo", "eval"], settings)
    reasonlab("resume", run, "--no-progress")
    return {f"GRPO ({label}) + eval": time.perf_counter() - start}


def train(recipe: Path, profile: str, out: Path, with_default_grpo: bool = True) -> dict[str, float]:
    seconds = {}
    sft_only, with_grpo = out / "sft_only", out / "sft_grpo"
    if not done(sft_only):
        start = time.perf_counter()
        runs = out / "runs"
        reasonlab("run", recipe, "-p", profile, "stages.grpo.enabled=false", "--runs-dir", runs, "--no-progress")
        max(runs.glob("*/*"), key=lambda p: p.stat().st_mtime).rename(sft_only)
        seconds["base eval + SFT + SFT eval"] = time.perf_counter() - start
    if with_default_grpo and not done(with_grpo):
        start = time.perf_counter()
        if not with_grpo.exists():
            branch(sft_only, with_grpo, ["grpo", "eval"], [])
        reasonlab("resume", with_grpo, "--no-progress")
        seconds["GRPO + eval"] = time.perf_counter() - start
    return seconds


def samples(stage_dir: Path) -> tuple[list[dict], list[dict]]:
    """(greedy samples, sampled ones) of an eval stage, in item order."""
    items = int(json.loads((stage_dir / "eval.json").read_text())["metrics"]["items"])
    rows = [json.loads(line) for line in (stage_dir / "samples.jsonl").read_text().splitlines()]
    return rows[:items], rows[items:]


def rate(values) -> str:
    from reasonlab.stats import wilson

    k, n = int(sum(values)), len(values)
    if not n:
        return "—"
    low, high = wilson(k, n)
    return f"{k}/{n} = {k / n:.3f} ({low:.3f}–{high:.3f})"


def paired(a: list[dict], b: list[dict]) -> dict:
    from reasonlab.stats import paired_bootstrap

    assert [s["prompt"] for s in a] == [s["prompt"] for s in b], "rows must be scored on the same items"
    result = paired_bootstrap([s["correct"] for s in a], [s["correct"] for s in b])
    return {"gained": result.gained, "lost": result.lost, "difference": result.difference,
            "bootstrap95": list(result.interval), "mcnemar_p": result.p_value, "significant": result.significant}


def table(rows: dict[str, tuple[list[dict], list[dict]]]) -> tuple[str, dict]:
    names = list(rows)
    lines = ["| model | answer acc., greedy (95 % CI) | format, greedy | format, sampled T=0.7 | answer acc., sampled |",
             "|---|---|---|---|---|"]
    record = {}
    for name, (greedy, sampled) in rows.items():
        lines.append(f"| {name} | {rate([s['correct'] for s in greedy])} | {rate([s['format'] for s in greedy])} | "
                     f"{rate([s['format'] for s in sampled])} | {rate([s['correct'] for s in sampled])} |")
        record[name] = {"n": len(greedy), "sampled_n": len(sampled),
                        "answer_accuracy": sum(s["correct"] for s in greedy) / len(greedy),
                        "format_accuracy": sum(s["format"] for s in greedy) / len(greedy),
                        "sampled_format_accuracy": (sum(s["format"] for s in sampled) / len(sampled)) if sampled else None,
                        "truncation_rate": sum(s.get("truncated", 0) for s in greedy) / len(greedy)}
    lines += ["", "| paired (answers) | gained / lost | difference (95 % bootstrap CI) | exact McNemar p |",
              "|---|---|---|---|"]
    # each row against the one before it; every GRPO row also against SFT only
    pairs = list(zip(names, names[1:]))
    pairs += [("SFT only", b) for b in names[2:] if ("SFT only", b) not in pairs]
    for a, b in pairs:
        for kind, index in (("greedy", 0), ("sampled", 1)):
            if kind == "sampled" and not (rows[a][1] and rows[b][1]):
                continue
            cmp = paired(rows[a][index], rows[b][index])
            record[f"{b} vs {a}" + ("" if kind == "greedy" else ", sampled")] = cmp
            lines.append(f"| {b} vs {a}, {kind} | {cmp['gained']} / {cmp['lost']} | {cmp['difference']:+.3f} "
                         f"({cmp['bootstrap95'][0]:+.3f}…{cmp['bootstrap95'][1]:+.3f}) | "
                         f"{cmp['mcnemar_p']:.3g}{'' if cmp['significant'] else ' (not significant)'} |")
    return "\n".join(lines), record


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--recipe", type=Path, default=HERE.parent / "recipes" / "quickstart.toml")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--variant", nargs="+", action="append", default=[], metavar=("LABEL", "STAGE.KEY=VALUE"),
                        help="one more row: GRPO from the same SFT checkpoint with these settings, e.g. "
                             "--variant dapo grpo.algorithm=dapo (repeatable)")
    parser.add_argument("--skip-grpo", action="store_true",
                        help="no row for the recipe's own GRPO settings (only the variants); rerun without "
                             "it later to add that row")
    args = parser.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    args.out.mkdir(parents=True, exist_ok=True)
    seconds = train(args.recipe, args.profile, args.out, with_default_grpo=not args.skip_grpo)
    for label, *settings in args.variant:
        seconds.update(train_variant(args.out, label, settings))
    rows = {"base": samples(args.out / "sft_only" / "stages" / "eval_base"),
            "SFT only": samples(args.out / "sft_only" / "stages" / "eval")}
    if done(args.out / "sft_grpo"):
        rows["SFT -> GRPO"] = samples(args.out / "sft_grpo" / "stages" / "eval")
    for label, *settings in args.variant:
        rows[f"SFT -> GRPO ({label}: {', '.join(settings)})"] = samples(args.out / f"sft_{label}" / "stages" / "eval")
    text, record = table(rows)
    header = (f"CPU: {cpu_kind()}; {args.recipe.name} --profile {args.profile}; "
              f"{record['base']['n']} held-out items\n\n")
    (args.out / "table.md").write_text(header + text + "\n")
    (args.out / "table.json").write_text(json.dumps({"cpu": cpu_kind(), "rows": record, "seconds": seconds}, indent=2))
    print(header + text)


if __name__ == "__main__":
    main()
