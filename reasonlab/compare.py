"""``reasonlab compare``: runs side by side from their run directories (offline).

Prints the configuration keys that differ and each stage's final metrics, and writes
PNG plots with matplotlib: one figure of training curves per stage, and one bar chart
of the final metrics. Eval stages that scored the same items in every run are also
compared item by item against the first run (``paired_evals``): the difference in answer
accuracy with a 95 % bootstrap interval, the items gained and lost, and the exact McNemar
p-value — "not significant" when p ≥ 0.05. Runs that differ only in ``recipe.seed`` (``reasonlab
run --seeds N``) are also aggregated (``across_seeds``): each final metric's mean with a 95 %
Student-t interval over the seeds.
"""

from __future__ import annotations

import fnmatch
import json
import tomllib
from pathlib import Path

from reasonlab.errors import ReasonlabError

DEFAULT_METRICS = ("*accuracy*", "*loss*", "reward/total/mean", "pass@*", "consensus_*")
CURVES = ("train/loss", "train/actor/loss", "reward/total/mean", "train/actor/kl")


def flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for key, child in value.items():
            out |= flatten(child, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
        return flatten({v["name"]: {k: x for k, x in v.items() if k != "name"} for v in value}, prefix)
    return {prefix: value}


class RunRecord:
    def __init__(self, path: Path):
        if not (path / "recipe.toml").exists():
            raise ReasonlabError("not a reasonlab run directory (no recipe.toml)", where=str(path))
        self.path = path
        self.config = flatten(tomllib.loads((path / "recipe.toml").read_text(encoding="utf-8")))
        summary = path / "summary.json"
        self.summary = json.loads(summary.read_text()) if summary.exists() else {}
        self.metrics = []
        if (path / "metrics.jsonl").exists():
            for line in (path / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
                try:
                    self.metrics.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill

    @property
    def label(self) -> str:
        return f"{self.config.get('recipe.name', '?')}/{self.path.name}"


def differing_config(runs: list[RunRecord]) -> dict[str, list]:
    keys = sorted(set().union(*(r.config for r in runs)))
    return {k: [r.config.get(k) for r in runs] for k in keys
            if len({json.dumps(r.config.get(k), sort_keys=True) for r in runs}) > 1}


def final_metrics(runs: list[RunRecord], patterns) -> dict[str, list]:
    rows: dict[str, list] = {}
    for i, run in enumerate(runs):
        for stage, metrics in run.summary.items():
            for key, value in metrics.items():
                if any(fnmatch.fnmatch(key, p) for p in patterns):
                    rows.setdefault(f"{stage}/{key}", [None] * len(runs))[i] = value
    return dict(sorted(rows.items()))


def plot(runs: list[RunRecord], finals: dict[str, list], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    stages = sorted({r["stage"] for run in runs for r in run.metrics})
    for stage in stages:
        series = [k for k in CURVES if any(r["stage"] == stage and k in r for run in runs for r in run.metrics)]
        if not series:
            continue
        fig, axes = plt.subplots(1, len(series), figsize=(5 * len(series), 3.6), squeeze=False)
        for ax, key in zip(axes[0], series):
            for run in runs:
                points = sorted((r["step"], r[key]) for r in run.metrics if r["stage"] == stage and key in r)
                if points:
                    ax.plot(*zip(*points), label=run.label, marker="." if len(points) < 30 else None)
            ax.set_title(f"{stage}: {key}")
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        path = out / f"curves_{stage}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    if finals:
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(finals)), 4))
        width = 0.8 / len(runs)
        for i, run in enumerate(runs):
            values = [v[i] if isinstance(v[i], (int, float)) else 0.0 for v in finals.values()]
            ax.bar([x + i * width for x in range(len(finals))], values, width, label=run.label)
        ax.set_xticks([x + width * (len(runs) - 1) / 2 for x in range(len(finals))])
        ax.set_xticklabels(list(finals), rotation=30, ha="right", fontsize=8)
        ax.legend(fontsize=7)
        ax.set_title("final metrics")
        fig.tight_layout()
        path = out / "final_metrics.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def greedy_scores(run: RunRecord, stage: str) -> dict[str, float] | None:
    """prompt -> correct (0/1) of an eval stage's greedy samples, or None if it has none."""
    folder = run.path / "stages" / stage
    if not (folder / "samples.jsonl").exists() or not (folder / "eval.json").exists():
        return None
    items = int(json.loads((folder / "eval.json").read_text())["metrics"].get("items", 0))
    lines = (folder / "samples.jsonl").read_text(encoding="utf-8").splitlines()[:items]
    scores = {}
    for line in lines:
        sample = json.loads(line)
        scores[sample["prompt"]] = float(sample["correct"])
    return scores


def paired_evals(runs: list[RunRecord]) -> list[dict]:
    """Each eval stage every run has, on identical items: every other run against the first."""
    from reasonlab.stats import paired_bootstrap

    rows = []
    stages = sorted(set.intersection(*(set(r.summary) for r in runs))) if runs else []
    for stage in stages:
        scores = [greedy_scores(run, stage) for run in runs]
        if any(s is None for s in scores) or any(set(s) != set(scores[0]) for s in scores) or not scores[0]:
            continue
        items = sorted(scores[0])
        base = [scores[0][p] for p in items]
        for run, other in zip(runs[1:], scores[1:]):
            result = paired_bootstrap(base, [other[p] for p in items])
            rows.append({"stage": stage, "run": run.label, "against": runs[0].label, "n": result.n,
                         "accuracy_a": result.accuracy_a, "accuracy_b": result.accuracy_b,
                         "difference": result.difference, "interval": result.interval, "gained": result.gained,
                         "lost": result.lost, "p_value": result.p_value,
                         "verdict": "significant" if result.significant else "not significant"})
    return rows


def seed_groups(runs: list[RunRecord]) -> list[list[RunRecord]]:
    """Runs whose resolved recipes differ in nothing but ``recipe.seed``, in order of appearance."""
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        key = json.dumps({k: v for k, v in run.config.items() if k != "recipe.seed"}, sort_keys=True, default=str)
        groups.setdefault(key, []).append(run)
    return list(groups.values())


def across_seeds(runs: list[RunRecord], patterns) -> list[dict]:
    """For each group of two or more seeds: mean, 95 % t-interval, std, min, max of every final
    metric all of the group's runs report."""
    from reasonlab.stats import mean_interval

    out = []
    for group in seed_groups(runs):
        if len({r.config.get("recipe.seed") for r in group}) < 2:
            continue
        finals = final_metrics(group, patterns)
        rows = {}
        for key, values in finals.items():
            if all(isinstance(v, (int, float)) for v in values):
                mean, low, high, std = mean_interval(values)
                rows[key] = {"mean": mean, "low": low, "high": high, "std": std, "min": min(values),
                             "max": max(values)}
        out.append({"seeds": len(group), "runs": [r.label for r in group], "metrics": rows})
    return out
