"""How a GRPO step's cost grows: step time, peak memory and time per generated token on the
embedded Gemma-3-270M against completion length, group size and prompts per step.

Each point is one ``reasonlab run`` of ``against_trl.py``'s recipe (LoRA 8, beta 0.04, the
frozen base as reference, the CPU's fastest dtype) in its own process, under /usr/bin/time
for the peak RSS; the steady step is timed between rollout ends with the first interval
(compilation) left out. Three axes through one centre point (2 prompts x 4 generations x 64
new tokens); ``--trl-at`` adds TRL's GRPOTrainer at the given points.

    python benchmarks/scaling.py [--steps 4] [--trl-python PY --trl-at 64,4,2 --trl-at 128,4,2]

Writes benchmarks/results/scaling.json and the plot benchmarks/figures/scaling.png (its path
is printed); the table is printed as Markdown for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _common import write_result
from against_trl import add_side_arguments, reasonlab_side, resolve_dtypes, trl_side, write_prompts

AXES = {"new_tokens": [64, 128, 256, 512], "generations": [2, 4, 8, 16], "prompts_per_step": [1, 2, 4, 8]}
CENTRE = {"new_tokens": 64, "generations": 4, "prompts_per_step": 2}


def points() -> list[dict]:
    """The centre first, then each axis with the other two at the centre, without repeats."""
    seen, out = set(), []
    for axis, values in AXES.items():
        for value in values:
            point = {**CENTRE, axis: value}
            key = tuple(point.values())
            if key not in seen:
                seen.add(key)
                out.append(point)
    return sorted(out, key=lambda p: p != CENTRE)


def parse_point(text: str) -> dict:
    tokens, generations, prompts = (int(x) for x in text.split(","))
    return {"new_tokens": tokens, "generations": generations, "prompts_per_step": prompts}


def measure(side, point: dict, *args) -> dict:
    result = side(*args, **point)
    tokens = point["new_tokens"] * point["generations"] * point["prompts_per_step"]
    return {**point, "steady_step_seconds": result["steady_step_seconds"], "peak_rss_gb": result["peak_rss_gb"],
            "ms_per_generated_token": 1000 * result["steady_step_seconds"] / tokens,
            "generate_tokens_per_second": result["generate_tokens_per_second"], "dtype": result["dtype"],
            "step_seconds": result["step_seconds"]}


def plot(rows: list[dict], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("steady_step_seconds", "s / step"), ("peak_rss_gb", "peak RSS (GB)"),
               ("ms_per_generated_token", "ms / generated token")]
    fig, grid = plt.subplots(len(metrics), len(AXES), figsize=(12, 9), squeeze=False)
    for col, axis in enumerate(AXES):
        for framework, marker in (("reasonlab", "o-"), ("trl", "s--")):
            line = sorted((r for r in rows if r["framework"] == framework
                           and all(r[k] == v for k, v in CENTRE.items() if k != axis)), key=lambda r: r[axis])
            if not line:
                continue
            for row_index, (metric, label) in enumerate(metrics):
                ax = grid[row_index][col]
                ax.plot([r[axis] for r in line], [r[metric] for r in line], marker, label=framework)
                ax.set_xscale("log", base=2)
                ax.set_xticks(AXES[axis], [str(v) for v in AXES[axis]])
                ax.set_ylabel(label)
                ax.set_ylim(bottom=0)
                ax.grid(alpha=0.3)
        grid[-1][col].set_xlabel(axis.replace("_", " ") + f" (others {', '.join(f'{v}' for k, v in CENTRE.items() if k != axis)})")
    grid[0][0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=90)


def table(rows: list[dict]) -> str:
    lines = ["| framework | new tokens | generations | prompts/step | s/step | peak RSS GB | ms/generated token | rollout tokens/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['framework']} ({r['dtype']}) | {r['new_tokens']} | {r['generations']} | {r['prompts_per_step']} "
                     f"| {r['steady_step_seconds']:.1f} | {r['peak_rss_gb']:.2f} | {r['ms_per_generated_token']:.1f} "
                     f"| {r['generate_tokens_per_second']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    add_side_arguments(parser)
    parser.set_defaults(steps=4)
    parser.add_argument("--trl-at", type=parse_point, action="append", default=[],
                        help="NEW_TOKENS,GENERATIONS,PROMPTS: also run TRL at this point (repeatable)")
    parser.add_argument("--only", type=parse_point, action="append", default=[],
                        help="run only these reasonlab points (repeatable); default: all three axes")
    parser.add_argument("--replot", type=Path, help="only plot and tabulate an earlier scaling.json")
    parser.add_argument("--figure", type=Path, default=Path(__file__).parent / "figures" / "scaling.png")
    args = parser.parse_args()
    resolve_dtypes(args)

    from reasonlab.machine import cpu_kind

    if args.replot:
        saved = json.loads(args.replot.read_text())
        return report(saved["rows"], args.figure, saved["cpu"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        questions, prompts, tokenizer = write_prompts(tmp)
        for point in args.only or points():
            rows.append({"framework": "reasonlab", **measure(reasonlab_side, point, args, tmp, questions)})
            print(json.dumps(rows[-1]), flush=True)
            write_result("scaling", {"cpu": cpu_kind(), "rows": rows})  # kept if a later point fails
        for point in args.trl_at:
            rows.append({"framework": "trl", **measure(trl_side, point, args, tmp, prompts, tokenizer)})
            print(json.dumps(rows[-1]), flush=True)
            write_result("scaling", {"cpu": cpu_kind(), "rows": rows})
    report(rows, args.figure, cpu_kind())


def report(rows: list[dict], figure: Path, cpu: str) -> None:
    plot(rows, figure, f"GRPO step on the embedded Gemma-3-270M, LoRA 8 — {cpu}")
    print(f"wrote {figure}")
    print(f"CPU: {cpu}")
    print(table(rows))


if __name__ == "__main__":
    main()
