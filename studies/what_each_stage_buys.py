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

Every row is scored on the items of the recipe's eval stages: greedy, the ``sampled_format``
samples per item at temperature 0.7, and — where the recipe has an ``eval_consensus`` stage —
the majority vote over its temperatures. Paired tests take the item as the unit: exact McNemar
for 0/1 scores (greedy, consensus), a paired permutation test for per-item sample rates.
Writes OUT/table.md and OUT/table.json; a finished step is not redone when the command is run
again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from branch import branch  # noqa: E402
from reasonlab.machine import cpu_kind  # noqa: E402


def done(run: Path) -> bool:
    return (run / "state.json").exists() and json.loads((run / "state.json").read_text())["status"] == "done"


def reasonlab(*args) -> None:
    subprocess.run([sys.executable, "-m", "reasonlab", *map(str, args)], check=True)


def from_grpo_on(run: Path) -> list[str]:
    """The GRPO stage and every stage after it (the evals that score the GRPO model)."""
    import tomllib

    names = [stage["name"] for stage in tomllib.loads((run / "recipe.toml").read_text())["stages"]]
    return names[names.index("grpo"):]


def train_variant(out: Path, label: str, settings: list[str]) -> dict[str, float]:
    """SFT -> GRPO again from the same SFT checkpoint, with these GRPO settings (e.g. an algorithm)."""
    run = out / f"sft_{label}"
    if done(run):
        return {}
    start = time.perf_counter()
    if not run.exists():
        branch(out / "sft_only", run, from_grpo_on(out / "sft_only"), settings)
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
            branch(sft_only, with_grpo, from_grpo_on(sft_only), [])
        reasonlab("resume", with_grpo, "--no-progress")
        seconds["GRPO + eval"] = time.perf_counter() - start
    return seconds


@dataclass
class Row:
    """One model's scores on the held-out items, item by item (the unit of every paired test)."""

    prompts: list[str]
    greedy_correct: list[float]
    greedy_format: list[float]
    sampled_correct: list[float]  # per item: the share of its samples that are right
    sampled_format: list[float]
    samples_per_item: int
    consensus_correct: list[float] | None  # the majority vote over temperatures, when evaluated


def read_row(run: Path, eval_stage: str = "eval", consensus_stage: str = "eval_consensus") -> Row:
    stage_dir = run / "stages" / eval_stage
    n = int(json.loads((stage_dir / "eval.json").read_text())["metrics"]["items"])
    rows = [json.loads(line) for line in (stage_dir / "samples.jsonl").read_text().splitlines()]
    greedy, extra = rows[:n], rows[n:]
    k = len(extra) // n
    per_item = [[extra[d * n + i] for d in range(k)] for i in range(n)]  # draws come draw by draw
    consensus = None
    items = run / "stages" / consensus_stage / "items.jsonl"
    if items.exists():
        voted = [json.loads(line) for line in items.read_text().splitlines()]
        consensus = [float(v["consensus_correct"]) for v in voted]
        assert len(consensus) == n, "the consensus eval must score the same items"
    return Row([s["prompt"] for s in greedy], [s["correct"] for s in greedy], [s["format"] for s in greedy],
               [sum(s["correct"] for s in draws) / k if k else 0.0 for draws in per_item],
               [sum(s["format"] for s in draws) / k if k else 0.0 for draws in per_item], k, consensus)


def rate(values) -> str:
    """k/n with its 95 % Wilson interval (0/1 values, one per item)."""
    from reasonlab.stats import wilson

    k, n = int(sum(values)), len(values)
    if not n:
        return "—"
    low, high = wilson(k, n)
    return f"{k}/{n} = {k / n:.3f} ({low:.3f}–{high:.3f})"


def mean_rate(values, per_item: int) -> str:
    """The mean of per-item rates with a 95 % Wilson interval over the *items* (an item's samples
    are not independent, so n is the number of items, not of samples: the conservative choice)."""
    from reasonlab.stats import wilson

    if not per_item:
        return "—"
    mean = sum(values) / len(values)
    low, high = wilson(round(mean * len(values)), len(values))
    return f"{mean:.3f} ({low:.3f}–{high:.3f})"


def paired(a: list[float], b: list[float], rates: bool = False) -> dict:
    """b against a on the same items: McNemar for 0/1 scores, a paired permutation test for rates."""
    from reasonlab.stats import paired_bootstrap, paired_rates

    if rates:
        r = paired_rates(a, b)
        return {"gained": r.better, "lost": r.worse, "difference": r.difference, "bootstrap95": list(r.interval),
                "p": r.p_value, "test": "paired permutation", "significant": r.significant}
    r = paired_bootstrap(a, b)
    return {"gained": r.gained, "lost": r.lost, "difference": r.difference, "bootstrap95": list(r.interval),
            "p": r.p_value, "test": "exact McNemar", "significant": r.significant}


def table(rows: dict[str, Row]) -> tuple[str, dict]:
    names = list(rows)
    k = max(r.samples_per_item for r in rows.values())
    lines = [f"| model | answer acc., greedy (95 % CI) | format, greedy | format, sampled T=0.7 ({k}/item) | "
             f"answer acc., sampled ({k}/item) | answer acc., consensus over temperatures |",
             "|---|---|---|---|---|---|"]
    record = {}
    for name, row in rows.items():
        for other in rows.values():
            assert other.prompts == row.prompts, "rows must be scored on the same items"
        lines.append(f"| {name} | {rate(row.greedy_correct)} | {rate(row.greedy_format)} | "
                     f"{mean_rate(row.sampled_format, row.samples_per_item)} | "
                     f"{mean_rate(row.sampled_correct, row.samples_per_item)} | "
                     f"{rate(row.consensus_correct) if row.consensus_correct else '—'} |")
        n = len(row.prompts)
        record[name] = {"n": n, "samples_per_item": row.samples_per_item,
                        "answer_accuracy": sum(row.greedy_correct) / n, "format_accuracy": sum(row.greedy_format) / n,
                        "sampled_format_accuracy": sum(row.sampled_format) / n if row.samples_per_item else None,
                        "sampled_answer_accuracy": sum(row.sampled_correct) / n if row.samples_per_item else None,
                        "consensus_accuracy": sum(row.consensus_correct) / n if row.consensus_correct else None}
    lines += ["", "| paired (answers, same items) | gained / lost items | difference (95 % bootstrap CI) | p (test) |",
              "|---|---|---|---|"]
    # each row against the one before it; every GRPO row also against SFT only
    pairs = list(zip(names, names[1:]))
    pairs += [("SFT only", b) for b in names[2:] if ("SFT only", b) not in pairs]
    for a, b in pairs:
        kinds = [("greedy", rows[a].greedy_correct, rows[b].greedy_correct, False)]
        if rows[a].samples_per_item and rows[b].samples_per_item:
            kinds.append(("sampled", rows[a].sampled_correct, rows[b].sampled_correct, True))
        if rows[a].consensus_correct and rows[b].consensus_correct:
            kinds.append(("consensus", rows[a].consensus_correct, rows[b].consensus_correct, False))
        for kind, x, y, rates in kinds:
            cmp = paired(x, y, rates)
            record[f"{b} vs {a}, {kind}"] = cmp
            lines.append(f"| {b} vs {a}, {kind} | {cmp['gained']} / {cmp['lost']} | {cmp['difference']:+.3f} "
                         f"({cmp['bootstrap95'][0]:+.3f}…{cmp['bootstrap95'][1]:+.3f}) | "
                         f"{cmp['p']:.3g} ({cmp['test']}){'' if cmp['significant'] else ', not significant'} |")
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
    rows = {"base": read_row(args.out / "sft_only", "eval_base", consensus_stage="eval_base_consensus"),
            "SFT only": read_row(args.out / "sft_only")}
    if done(args.out / "sft_grpo"):
        rows["SFT -> GRPO"] = read_row(args.out / "sft_grpo")
    for label, *settings in args.variant:
        rows[f"SFT -> GRPO ({label}: {', '.join(settings)})"] = read_row(args.out / f"sft_{label}")
    text, record = table(rows)
    header = (f"CPU: {cpu_kind()}; {args.recipe.name} --profile {args.profile}; "
              f"{record['base']['n']} held-out items\n\n")
    (args.out / "table.md").write_text(header + text + "\n")
    (args.out / "table.json").write_text(json.dumps({"cpu": cpu_kind(), "rows": record, "seconds": seconds}, indent=2))
    print(header + text)


if __name__ == "__main__":
    main()
