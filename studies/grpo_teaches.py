"""Does our GRPO teach? Train GRPO variants from one SFT checkpoint and compare each with
SFT alone on the same held-out items (paired: gained/lost items, exact McNemar p).

    python studies/grpo_teaches.py SFT_RUN OUT [--variant NAME ...] [--items 200]

SFT_RUN is a finished run of a recipe whose GRPO stage was switched off (e.g.
``reasonlab run recipes/quickstart.toml -p cpu stages.grpo.enabled=false
stages.eval.enabled=false stages.eval_base.enabled=false``). Each variant is a branch of it
(``studies/branch.py``) whose GRPO stage runs with the variant's settings, through
``reasonlab resume`` — or, for ``plain_tunix``, through ``studies/plain_tunix_grpo.py``.
Every model is evaluated greedily with ``reasonlab eval`` on the same items; the table
goes to OUT/table.md and OUT/table.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from reasonlab.machine import cpu_kind

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from branch import branch  # noqa: E402

# name -> settings of the GRPO stage (STAGE.KEY=TOML literal); "plain_tunix" trains with Tunix alone
VARIANTS = {
    "k1": ['grpo.kl_estimator="k1"'],  # Tunix 0.1.7's default KL estimator (reasonlab's default before the fix)
    "k3": ['grpo.kl_estimator="k3"'],
    "beta0": ["grpo.beta=0.0"],
    "lr0": ["grpo.learning_rate=1e-12"],  # everything but the update: rollouts, sharing, saving, restoring
    "plain_tunix": [],
    "plain_tunix_k3": [],
    "plain_tunix_beta0": [],
}


def evaluate(target: Path, out: Path, items: int) -> list[dict]:
    if not (out / "samples.jsonl").exists():
        subprocess.run([sys.executable, "-m", "reasonlab", "eval", str(target), "--option", f"n={items}",
                        "--option", "seed=7", "--max-new-tokens", "64", "--max-prompt-tokens", "96",
                        "--out", str(out)], check=True)
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()][:items]


def train(sft_run: Path, name: str, dest: Path) -> float:
    start = time.perf_counter()
    if name.startswith("plain_tunix"):
        extra = {"plain_tunix": ["--kl", "k1"], "plain_tunix_k3": ["--kl", "k3"], "plain_tunix_beta0": ["--beta", "0"]}[name]
        subprocess.run([sys.executable, str(HERE / "plain_tunix_grpo.py"), str(sft_run), str(dest), *extra], check=True)
    else:
        branch(sft_run, dest, ["grpo"], VARIANTS[name])
        subprocess.run([sys.executable, "-m", "reasonlab", "resume", str(dest), "--no-progress"], check=True)
    return time.perf_counter() - start


def table(rows: dict[str, list[dict]], reference: str) -> tuple[str, list[dict]]:
    from reasonlab.stats import paired_bootstrap, wilson

    base = [s["correct"] for s in rows[reference]]
    lines = ["| model | answer acc. (95 % CI) | format | vs SFT: gained / lost | difference (95 % CI) | McNemar p |",
             "|---|---|---|---|---|---|"]
    records = []
    for name, samples in rows.items():
        correct = [s["correct"] for s in samples]
        k, n = int(sum(correct)), len(correct)
        low, high = wilson(k, n)
        fmt = sum(s["format"] for s in samples) / n
        record = {"model": name, "n": n, "correct": k, "answer_accuracy": k / n, "wilson95": [low, high],
                  "format_accuracy": fmt}
        if name == reference:
            lines.append(f"| {name} | {k}/{n} = {k / n:.3f} ({low:.3f}–{high:.3f}) | {fmt:.2f} | — | — | — |")
        else:
            cmp = paired_bootstrap(base, correct)
            record.update(gained=cmp.gained, lost=cmp.lost, difference=cmp.difference,
                          bootstrap95=list(cmp.interval), mcnemar_p=cmp.p_value,
                          identical_completions=sum(a["completion"] == b["completion"]
                                                    for a, b in zip(rows[reference], samples)))
            lines.append(f"| {name} | {k}/{n} = {k / n:.3f} ({low:.3f}–{high:.3f}) | {fmt:.2f} | "
                         f"{cmp.gained} / {cmp.lost} | {cmp.difference:+.3f} ({cmp.interval[0]:+.3f}…"
                         f"{cmp.interval[1]:+.3f}) | {cmp.p_value:.3g}{'' if cmp.significant else ' (n.s.)'} |")
        records.append(record)
    return "\n".join(lines), records


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sft_run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    parser.add_argument("--items", type=int, default=200)
    args = parser.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = {"sft": evaluate(args.sft_run, args.out / "sft" / "heldout", args.items)}
    seconds = {}
    for name in args.variant or ["k1", "k3"]:
        dest = args.out / name
        if not (dest / "state.json").exists() or json.loads((dest / "state.json").read_text())["status"] != "done":
            seconds[name] = train(args.sft_run, name, dest)
        rows[name] = evaluate(dest, dest / "heldout", args.items)
    text, records = table(rows, "sft")
    header = f"CPU: {cpu_kind()}; {args.items} held-out items; greedy, 64 new tokens\n\n"
    (args.out / "table.md").write_text(header + text + "\n")
    (args.out / "table.json").write_text(json.dumps({"cpu": cpu_kind(), "rows": records, "train_seconds": seconds},
                                                    indent=2))
    print(header + text)


if __name__ == "__main__":
    main()
