"""``reasonlab report RUN [RUN ...]``: a run (or several side by side) as one HTML file.

The file is self-contained — charts are PNGs drawn by matplotlib and inlined as data URIs,
the page has no script and loads nothing — so it opens from disk, offline, anywhere. What it
holds, each read from the run directory (nothing is recomputed from the model):

- the resolved recipe (``recipe.toml``) and the machine (``environment.json``);
- per stage, the curves in ``metrics.jsonl`` (loss, reward, KL, entropy, completion length,
  preference margins, held-out ``eval/*`` points), each reward's mean and failure counts;
- each eval stage's metrics with their 95 % intervals and n (``eval.json``), and the first and
  last eval's answers to the same items side by side (flipped items first);
- a sample of the last logged GRPO rollouts with their reward breakdown (``rollouts.jsonl``);
- each stage's wall time and the process's peak memory when it ended (``state.json``).

Several runs: the configuration that differs, final metrics side by side, the paired test of
every eval both ran on the same items (``reasonlab.compare.paired_evals``) with the flipped
items listed, and the curves of every run on one chart per metric.

Templating is jinja2 (``report.html.j2`` beside this module), with autoescaping: prompts and
completions are model output and are shown as text, never as markup.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

from reasonlab.compare import RunRecord, differing_config, final_metrics, paired_evals

# (chart title, metric keys or prefixes*) in the order a reader wants them
CHARTS = [
    ("loss", ["train/loss", "train/actor/loss"]),
    ("reward", ["reward/total/mean", "reward/*/mean"]),
    ("KL to the reference", ["train/actor/kl", "train/distill/reverse_kl"]),
    ("entropy", ["train/actor/entropy"]),
    ("completion length (tokens)", ["train/completions/mean_length"]),
    ("preference", ["train/rewards/margin", "train/rewards/accuracy"]),
    ("held-out evaluation while training", ["eval/format_accuracy", "eval/answer_accuracy"]),
]
EVAL_METRICS = ["format_accuracy", "answer_accuracy", "sampled_format_accuracy", "sampled_answer_accuracy",
                "consensus_accuracy"]


def _matches(key: str, pattern: str) -> bool:
    if "*" not in pattern:
        return key == pattern
    head, tail = pattern.split("*", 1)
    return key.startswith(head) and key.endswith(tail) and key != "reward/total/mean"


def curves(run: RunRecord) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """stage -> metric -> [(step, value)], the last value logged for each step."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    for record in run.metrics:
        stage = out.setdefault(record.get("stage", "?"), {})
        for key, value in record.items():
            if key not in ("stage", "step", "time") and isinstance(value, (int, float)):
                stage.setdefault(key, {})[int(record.get("step", 0))] = float(value)
    return {s: {k: sorted(v.items()) for k, v in keys.items()} for s, keys in out.items()}


def chart(title: str, series: dict[str, list[tuple[int, float]]]) -> str:
    """One line chart as a PNG data URI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 2.8), dpi=90)
    for label, points in series.items():
        steps, values = zip(*points)
        ax.plot(steps, values, marker="o" if len(points) < 12 else None, markersize=3, label=label)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def stage_charts(stage_curves: dict[str, list]) -> list[dict]:
    charts = []
    for title, patterns in CHARTS:
        series = {key: points for key, points in stage_curves.items()
                  if points and any(_matches(key, p) for p in patterns)}
        if series:
            charts.append({"title": title, "keys": sorted(series), "png": chart(title, series)})
    return charts


def reward_rows(stage_curves: dict[str, list]) -> list[dict]:
    """Each reward's mean over the logged steps and its failure/timeout totals."""
    rows = []
    for key, points in sorted(stage_curves.items()):
        if key.startswith("reward/") and key.endswith("/mean") and key != "reward/total/mean":
            name = key.removeprefix("reward/").removesuffix("/mean")
            total = lambda what: sum(v for _, v in stage_curves.get(f"reward/{name}/{what}", []))  # noqa: E731
            rows.append({"name": name, "steps": len(points), "mean": sum(v for _, v in points) / len(points),
                         "failures": total("failures"), "timeouts": total("timeouts")})
    return rows


def eval_rows(stage_dir: Path) -> list[dict] | None:
    path = stage_dir / "eval.json"
    if not path.exists():
        return None
    metrics = json.loads(path.read_text())["metrics"]
    rows = []
    for key in EVAL_METRICS:
        if key in metrics:
            n_key = "sampled_n" if key.startswith("sampled_") else "n"
            rows.append({"metric": key, "value": metrics[key], "low": metrics.get(f"{key}_ci95_low"),
                         "high": metrics.get(f"{key}_ci95_high"), "n": metrics.get(n_key, metrics.get("items"))})
    return rows


def greedy_samples(stage_dir: Path) -> list[dict]:
    items = int(json.loads((stage_dir / "eval.json").read_text())["metrics"]["items"])
    lines = (stage_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines()[:items]
    return [json.loads(line) for line in lines]


def side_by_side(first: list[dict], last: list[dict], limit: int = 6) -> list[dict]:
    """The same items answered by two models: gained items first, then lost, then the rest."""
    after = {s["prompt"]: s for s in last}
    pairs = [(s, after[s["prompt"]]) for s in first if s["prompt"] in after]
    order = lambda pair: (0 if pair[1]["correct"] > pair[0]["correct"] else  # noqa: E731
                          1 if pair[1]["correct"] < pair[0]["correct"] else 2)
    return [{"prompt": a["prompt"], "gold": a.get("gold"), "before": a["completion"], "after": b["completion"],
             "before_correct": a["correct"], "after_correct": b["correct"]}
            for a, b in sorted(pairs, key=order)[:limit]]


def rollout_sample(stage_dir: Path, limit: int = 8) -> dict | None:
    path = stage_dir / "rollouts.jsonl"
    if not path.exists():
        return None
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        return None
    step = max(r["step"] for r in rows)
    shown = [r for r in rows if r["step"] == step][:limit]
    rewards = sorted({k for r in shown for k in r if k.startswith("reward/")})
    return {"step": step, "rewards": rewards, "rows": shown}


def run_view(run: RunRecord) -> dict:
    """Everything the single-run page shows, as plain data (the tests read it too)."""
    state = json.loads((run.path / "state.json").read_text()) if (run.path / "state.json").exists() else {}
    environment = run.path / "environment.json"
    all_curves = curves(run)
    import tomllib

    in_recipe = [s["name"] for s in tomllib.loads(run.path.joinpath("recipe.toml").read_text()).get("stages", [])]
    ran = set(state.get("stages", {})) | set(all_curves)
    stage_names = [name for name in in_recipe if name in ran] + sorted(ran - set(in_recipe))  # the recipe's order
    stages, eval_stages = [], []
    for name in stage_names:
        folder = run.path / "stages" / name
        info = state.get("stages", {}).get(name, {})
        seconds = info["finished"] - info["started"] if "finished" in info and "started" in info else None
        evals = eval_rows(folder)
        if evals is not None:
            eval_stages.append(name)
        stages.append({"name": name, "status": info.get("status", "?"), "seconds": seconds,
                       "peak_rss_gb": info.get("peak_rss_gb"),
                       "charts": stage_charts(all_curves.get(name, {})),
                       "rewards": reward_rows(all_curves.get(name, {})), "eval": evals,
                       "rollouts": rollout_sample(folder)})
    comparison = None
    if len(eval_stages) >= 2:
        first, last = eval_stages[0], eval_stages[-1]
        comparison = {"first": first, "last": last,
                      "items": side_by_side(greedy_samples(run.path / "stages" / first),
                                            greedy_samples(run.path / "stages" / last))}
    return {"label": run.label, "path": str(run.path), "status": state.get("status", "?"),
            "recipe": (run.path / "recipe.toml").read_text(encoding="utf-8"),
            "environment": json.loads(environment.read_text()) if environment.exists() else {},
            "stages": stages, "comparison": comparison}


def comparison_view(runs: list[RunRecord]) -> dict:
    """Several runs side by side."""
    flipped = []
    paired = paired_evals(runs)
    for row in paired:
        a, b = runs[0], next(r for r in runs if r.label == row["run"])
        items = side_by_side(greedy_samples(a.path / "stages" / row["stage"]),
                             greedy_samples(b.path / "stages" / row["stage"]), limit=10**6)
        flipped.append({"stage": row["stage"], "run": row["run"],
                        "items": [i for i in items if i["before_correct"] != i["after_correct"]]})
    all_curves = [curves(r) for r in runs]
    charts = []
    for stage in sorted(set().union(*all_curves)):
        for title, patterns in CHARTS:
            for key in sorted({k for c in all_curves for k in c.get(stage, {}) if any(_matches(k, p) for p in patterns)}):
                series = {run.label: c[stage][key] for run, c in zip(runs, all_curves) if c.get(stage, {}).get(key)}
                charts.append({"title": f"{stage}: {key}", "keys": [key], "png": chart(f"{stage}: {key}", series)})
    return {"labels": [r.label for r in runs], "config": differing_config(runs),
            "finals": final_metrics(runs, ("*accuracy", "*loss*", "reward/total/mean", "pass@*")),
            "paired": paired, "flipped": flipped, "charts": charts}


def render(run_dirs: list[Path], out: Path | None = None) -> Path:
    """Write the report of one run (default: RUN/report.html) or of several (default: ./report.html)."""
    import jinja2

    runs = [RunRecord(Path(p)) for p in run_dirs]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["num"] = lambda v, digits=3: "—" if v is None else f"{v:.{digits}f}"
    page = env.get_template("report.html.j2").render(
        single=run_view(runs[0]) if len(runs) == 1 else None,
        many=comparison_view(runs) if len(runs) > 1 else None)
    out = out or (runs[0].path / "report.html" if len(runs) == 1 else Path("report.html"))
    out.write_text(page, encoding="utf-8")
    return out
