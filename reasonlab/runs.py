"""Finished or interrupted runs on disk: checking a run directory and restoring a stage's model
(for ``resume``, ``eval``, ``export`` and plugins' own commands — without importing the runner)."""

from __future__ import annotations

import json
from pathlib import Path

from reasonlab.errors import ReasonlabError

RUN_FORMAT = 1  # bump when the run-directory layout changes incompatibly


def check_run_dir(run_dir: Path) -> None:
    """Refuse folders that are not reasonlab runs, or runs of an incompatible layout."""
    state_path, recipe_path = run_dir / "state.json", run_dir / "recipe.toml"
    if not state_path.exists() or not recipe_path.exists():
        raise ReasonlabError("not a reasonlab run directory (no state.json / recipe.toml)", where=str(run_dir))
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReasonlabError(f"state.json is unreadable: {exc}", where=str(state_path)) from None
    if state.get("format") != RUN_FORMAT:
        raise ReasonlabError(f"run directory format {state.get('format')!r}, this reasonlab reads {RUN_FORMAT}",
                             where=str(run_dir), hint="resume it with the reasonlab version that created it")
    if "stages" not in state:
        raise ReasonlabError("state.json has no stages", where=str(state_path))


def load_run_model(run_dir: Path, plugins, stage: str | None = None):
    """The model of a finished stage of a run (default: the last finished one), restored from orbax."""
    from reasonlab.modeling import apply_lora, load_model, restore_trainable
    from reasonlab.recipe import load_recipe

    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    recipe = load_recipe(run_dir / "recipe.toml", plugins=plugins)
    state = json.loads((run_dir / "state.json").read_text(encoding="utf-8"))
    done = [s.name for s in recipe.stages if state["stages"].get(s.name, {}).get("status") == "done"]
    if stage is None:
        if not done:
            raise ReasonlabError("no stage of this run has finished yet", where=str(run_dir))
        stage = done[-1]
    elif stage not in done:
        raise ReasonlabError(f"stage {stage!r} has not finished", where=str(run_dir),
                             hint=f"finished stages: {', '.join(done) or '(none)'}")
    bundle = load_model(plugins, recipe.model)
    if recipe.model.lora:
        bundle = apply_lora(bundle, recipe.model.lora, recipe.info.seed)
    return recipe, restore_trainable(bundle, run_dir / "stages" / stage / "final"), stage
