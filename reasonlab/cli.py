"""The ``reasonlab`` command line.

``show``, ``validate`` and ``plugins`` never import JAX (a test checks), so they answer
in well under a second. Errors a user can fix print as one message and exit 2.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from reasonlab import __version__
from reasonlab.errors import ReasonlabError

RUNS_DIR_ENV = "REASONLAB_RUNS_DIR"


def plugins_of(ctx: click.Context):
    """The plugin system of this invocation (``--plugins-dir`` included): what a plugin's own
    command uses (``@click.pass_context``), instead of building one."""
    from reasonlab.plugins import get_plugins

    return get_plugins(ctx.obj.get("plugins_dir") if ctx.obj else None)


def _load(ctx, recipe_path, profile, overrides):
    from reasonlab.recipe import load_recipe

    return load_recipe(recipe_path, profile, tuple(overrides), plugins_of(ctx))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reasonlab")
@click.option("--plugins-dir", type=click.Path(file_okay=False), envvar="REASONLAB_PLUGINS_DIR",
              help="Also load every *.py file in this folder as a plugin.")
@click.pass_context
def cli(ctx, plugins_dir):
    """Post-train small LLMs to reason in <reasoning>/<answer> format, recipe by recipe."""
    from reasonlab import xla_defaults

    xla_defaults.apply()  # before any command starts JAX
    ctx.ensure_object(dict)
    ctx.obj["plugins_dir"] = plugins_dir


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--profile", "-p", help="Overlay [profiles.NAME] (e.g. cpu, tiny).")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=lambda: os.environ.get(RUNS_DIR_ENV, "runs"),
              show_default="runs", help="Where run directories are created.")
@click.option("--no-progress", is_flag=True, help="No progress bars (logs only).")
@click.option("--time-budget", help="Stop cleanly (checkpoint, resumable) before this much time passes, e.g. 8h30m.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run the recipe N times, with recipe.seed, seed+1, …, into sibling run directories "
                   "(…-seedS); `reasonlab compare` of them aggregates across seeds.")
@click.pass_context
def run(ctx, recipe, overrides, profile, runs_dir, no_progress, time_budget, seeds):
    """Run every stage of RECIPE. OVERRIDES are key=value, e.g. stages.sft.steps=10."""
    from reasonlab import distributed

    _check_budget(time_budget)
    loaded = _load(ctx, recipe, profile, overrides)
    distributed.initialize()  # before anything touches JAX, when JAX_COORDINATOR_ADDRESS & co. are set
    if seeds == 1:
        return _run(_create(ctx, loaded, runs_dir, no_progress), time_budget)
    # every seed's recipe is loaded (and so checked) before the first one trains
    seeded = [_load(ctx, recipe, profile, (*overrides, f"recipe.seed={loaded.info.seed + i}")) for i in range(seeds)]
    for each in seeded:
        _run(_create(ctx, each, runs_dir, no_progress, suffix=f"-seed{each.info.seed}"), time_budget)


def _create(ctx, loaded, runs_dir, no_progress, suffix=""):
    from reasonlab.runner import Runner

    runner = Runner.create(loaded, plugins_of(ctx), Path(runs_dir), progress=not no_progress, suffix=suffix)
    if runner.primary:
        click.echo(f"run directory: {runner.dir}", err=True)
    return runner


def _check_budget(time_budget):
    from reasonlab.interrupt import parse_duration

    if time_budget:
        try:
            parse_duration(time_budget)
        except ValueError as exc:
            raise ReasonlabError(f"--time-budget: {exc}") from None


def _run(runner, time_budget) -> None:
    from reasonlab.interrupt import StageInterrupted

    try:
        summary = runner.run(time_budget)
    except StageInterrupted:
        raise SystemExit(runner.stop.exit_code)
    if runner.primary:
        _print_summary(runner.dir, summary)


def bundled_recipes() -> dict[str, Path]:
    """The recipes shipped inside the package (the data package ``reasonlab_recipes``: recipes/
    in a checkout), by name."""
    import importlib.util

    spec = importlib.util.find_spec("reasonlab_recipes")
    folders = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    return {path.stem: path for folder in folders if folder.is_dir() for path in sorted(folder.glob("*.toml"))}


@cli.group(invoke_without_command=True)
@click.pass_context
def recipes(ctx):
    """List the recipes that ship with reasonlab: name, profiles, description."""
    if ctx.invoked_subcommand is not None:
        return
    import tomllib

    for name, entry in bundled_recipes().items():
        data = tomllib.loads(entry.read_text(encoding="utf-8"))
        profiles = ", ".join(data.get("profiles", {})) or "-"
        click.echo(f"{name:24} [{profiles}]  {data.get('recipe', {}).get('description', '')}")


@recipes.command("cp")
@click.argument("name")
@click.argument("dest", required=False, type=click.Path())
def recipes_cp(name, dest):
    """Copy recipe NAME out to DEST (default ./NAME.toml) to edit and run."""
    import difflib

    found = bundled_recipes()
    if name.removesuffix(".toml") not in found:
        close = difflib.get_close_matches(name, list(found), n=1)
        raise ReasonlabError(f"no bundled recipe {name!r}", where="reasonlab recipes cp",
                             hint=(f"did you mean {close[0]!r}? " if close else "") + "list them: reasonlab recipes")
    target = Path(dest or f"{name.removesuffix('.toml')}.toml")
    if target.is_dir():
        target = target / f"{name.removesuffix('.toml')}.toml"
    if target.exists():
        raise ReasonlabError(f"{target} exists; not overwriting it", where="reasonlab recipes cp",
                             hint="give another destination")
    target.write_text(found[name.removesuffix(".toml")].read_text(encoding="utf-8"), encoding="utf-8")
    click.echo(f"wrote {target}\n  reasonlab run {target} --profile tiny")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--no-progress", is_flag=True)
@click.option("--time-budget", help="Stop cleanly again before this much time passes.")
@click.pass_context
def resume(ctx, run_dir, no_progress, time_budget):
    """Continue RUN_DIR: finished stages are skipped, an interrupted one restarts from its checkpoint."""
    from reasonlab import distributed
    from reasonlab.recipe import load_recipe
    from reasonlab.runner import Runner
    from reasonlab.runs import check_run_dir

    run_path = Path(run_dir)
    check_run_dir(run_path)
    _check_budget(time_budget)
    distributed.initialize()
    loaded = load_recipe(run_path / "recipe.toml", plugins=plugins_of(ctx))
    _run(Runner(loaded, plugins_of(ctx), run_path, progress=not no_progress), time_budget)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the exported model.")
@click.option("--stage", help="Export this stage's model (default: the last finished stage).")
@click.option("--format", "format_", type=click.Choice(["hf", "gguf"]), default="hf", show_default=True,
              help="hf: safetensors + config + tokenizer (transformers); gguf: one file for llama.cpp / Ollama.")
@click.option("--quant", type=click.Choice(["f32", "f16", "q8_0"]), help="GGUF weight type (default f16).")
@click.pass_context
def export(ctx, run_dir, out, stage, format_, quant):
    """Write a run's trained model (LoRA merged, or fully fine-tuned) as Hugging Face safetensors
    or as GGUF."""
    from reasonlab.runs import load_run_model

    if quant and format_ != "gguf":
        raise click.UsageError("--quant applies to --format gguf")
    plugins = plugins_of(ctx)
    recipe, bundle, stage = load_run_model(Path(run_dir), plugins, stage)
    exporter = plugins.registry("models").info(recipe.model.preset).get("export")
    if exporter is None:
        raise ReasonlabError(f"model preset {recipe.model.preset!r} has no exporter")
    exporter(bundle, Path(out), recipe.model.lora or None, format=format_, quant=quant)
    click.echo(f"exported stage {stage!r} of {run_dir} to {out}")


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--metric", "metrics", multiple=True, help="Glob of metrics to show (repeatable).")
@click.option("--out", type=click.Path(file_okay=False), help="Write PNG plots here.")
def compare(run_dirs, metrics, out):
    """Compare runs: differing configuration, final metrics, and (with --out) plots."""
    from rich.console import Console
    from rich.table import Table

    from reasonlab.compare import (DEFAULT_METRICS, RunRecord, across_seeds, differing_config, final_metrics,
                                   paired_evals, plot)

    runs = [RunRecord(Path(p)) for p in run_dirs]
    console = Console(width=None if sys.stdout.isatty() else 200)  # piped output: never truncate keys
    for title, rows in (("configuration that differs", differing_config(runs)),
                        ("final metrics", final_metrics(runs, metrics or DEFAULT_METRICS))):
        table = Table(title=title)
        table.add_column("key")
        for run in runs:
            table.add_column(run.label, justify="right")
        for key, values in rows.items():
            table.add_row(key, *(f"{v:.4g}" if isinstance(v, float) else str(v) for v in values))
        console.print(table)
    for group in across_seeds(runs, metrics or DEFAULT_METRICS):
        table = Table(title=f"across {group['seeds']} seeds ({', '.join(group['runs'])})")
        for column in ("metric", "mean", "95 % CI (t)", "std", "min", "max"):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for key, row in group["metrics"].items():
            table.add_row(key, f"{row['mean']:.4g}", f"{row['low']:.4g} … {row['high']:.4g}", f"{row['std']:.3g}",
                          f"{row['min']:.4g}", f"{row['max']:.4g}")
        console.print(table)
    paired = paired_evals(runs)
    if paired:
        table = Table(title="paired on the same eval items (answer accuracy, each run against the first)")
        for column in ("stage", "run", "n", "first", "this", "difference (95 % CI)", "gained / lost", "McNemar p",
                       "verdict"):
            table.add_column(column, justify="left" if column in ("stage", "run", "verdict") else "right")
        for row in paired:
            low, high = row["interval"]
            table.add_row(row["stage"], row["run"], str(row["n"]), f"{row['accuracy_a']:.3f}",
                          f"{row['accuracy_b']:.3f}", f"{row['difference']:+.3f} ({low:+.3f} … {high:+.3f})",
                          f"{row['gained']} / {row['lost']}", f"{row['p_value']:.3g}", row["verdict"])
        console.print(table)
    if out:
        for path in plot(runs, final_metrics(runs, metrics or DEFAULT_METRICS), Path(out)):
            console.print(f"wrote {path}")


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--out", type=click.Path(dir_okay=False), help="Where the HTML goes (default: RUN/report.html for "
              "one run, ./report.html for several).")
def report(run_dirs, out):
    """One self-contained HTML report of a run, or of several side by side (opens offline)."""
    from reasonlab.report import render

    click.echo(f"wrote {render([Path(p) for p in run_dirs], Path(out) if out else None)}")


def _print_summary(run_dir: Path, summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"run {run_dir}")
    table.add_column("stage")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for stage, metrics in summary.items():
        for key, value in metrics.items():
            table.add_row(stage, key, f"{value:.4g}" if isinstance(value, float) else str(value))
    Console().print(table)


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--profile", "-p")
@click.pass_context
def show(ctx, recipe, overrides, profile):
    """Print RECIPE resolved (profile and overrides applied) as TOML."""
    import tomli_w

    from reasonlab.redaction import redact

    loaded = _load(ctx, recipe, profile, overrides)
    click.echo(tomli_w.dumps(redact(loaded.resolved)), nl=False)


@cli.command()
@click.argument("args", nargs=-1, required=True, metavar="RECIPE... [KEY=VALUE...]")
@click.option("--profile", "-p", help="Validate only this profile (default: the base and every profile).")
@click.pass_context
def validate(ctx, args, profile):
    """Check recipes: schema, plugin names, readable data. Does not import JAX.

    KEY=VALUE overrides (as ``run`` and ``show`` take them) apply to every recipe and profile,
    e.g. ``reasonlab validate recipes/quickstart.toml stages.grpo.algorithm=dapo``."""
    from reasonlab.recipe import read_toml
    from reasonlab.validate import check_data, check_rewards, check_stages

    overrides = tuple(a for a in args if "=" in a and not Path(a).exists())
    recipes = [a for a in args if a not in overrides]
    if not recipes:
        raise ReasonlabError("no recipe to validate", where="reasonlab validate",
                             hint="reasonlab validate RECIPE.toml [KEY=VALUE ...]")
    failures = 0
    for path in recipes:
        profiles = [profile] if profile else [None, *read_toml(Path(path)).get("profiles", {})]
        for name in profiles:
            label = f"{path}" + (f" --profile {name}" if name else "")
            try:
                loaded = _load(ctx, path, name, overrides)
                check_data(loaded, plugins_of(ctx))
                check_stages(loaded, plugins_of(ctx))
                check_rewards(loaded, plugins_of(ctx))
            except ReasonlabError as exc:
                failures += 1
                click.secho(f"✗ {label}\n{exc}", fg="red", err=True)
                continue
            click.echo(f"✓ {label}")
    if failures:
        raise SystemExit(2)


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def plugins(ctx, as_json):
    """List loaded plugins and what each registers."""
    if ctx.invoked_subcommand:
        return
    system = plugins_of(ctx)
    rows = system.describe()
    if as_json:
        click.echo(json.dumps(rows + [{"name": name, "broken": why} for name, why in system.broken.items()],
                              indent=2))
        return
    for row in rows:
        click.echo(f"{row['name']}  ({row['distribution']})")
        for kind, names in row["registers"].items():
            click.echo(f"    {kind}: {', '.join(names)}")
    for name, why in system.broken.items():
        click.secho(f"{name}  BROKEN, not loaded: {why}", fg="red")


@plugins.command("new")
@click.argument("name")
@click.option("--dir", "parent", type=click.Path(file_okay=False), default=".", show_default=True)
def plugins_new(name, parent):
    """Create reasonlab-NAME/, a plugin package that installs and passes its tests unchanged."""
    from reasonlab.scaffold import create

    root = create(name, Path(parent))
    click.echo(f"created {root}\n  pip install -e {root} && python -m pytest {root}/tests")


def main(argv=None) -> None:
    from reasonlab.plugins import get_plugins

    try:
        system = get_plugins()
        for name, why in system.broken.items():
            click.secho(f"warning: plugin {name!r} failed to import and is skipped ({why})", fg="yellow", err=True)
        system.pm.hook.register_commands(cli=cli)
        cli.main(args=argv, prog_name="reasonlab", standalone_mode=False)
    except ReasonlabError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
