"""Branch a finished run at a stage: copy the run directory up to that stage, change the
next stages' settings, and let ``reasonlab resume`` train them from the same checkpoint.

    python studies/branch.py SRC_RUN DEST --enable grpo --set grpo.learning_rate=1e-12

Everything the source run finished (its checkpoints, metrics, state) is copied; the
stages named with ``--enable`` are switched on and marked pending; ``--set
STAGE.KEY=VALUE`` changes one of their keys in the copied ``recipe.toml`` (values are
TOML literals). The source run is never written to.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tomllib
from pathlib import Path

import tomli_w


def _literal(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def branch(source: Path, dest: Path, enable: list[str], settings: list[str]) -> Path:
    if dest.exists():
        raise SystemExit(f"{dest} exists: pick a new folder")
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("wandb", "evals"))
    recipe = tomllib.loads((dest / "recipe.toml").read_text())
    stages = {stage["name"]: stage for stage in recipe["stages"]}
    for name in enable:
        stages[name]["enabled"] = True
    for setting in settings:
        dotted, _, value = setting.partition("=")
        stage, _, key = dotted.partition(".")
        stages[stage][key] = _literal(value)
    (dest / "recipe.toml").write_text(tomli_w.dumps(recipe))
    state = json.loads((dest / "state.json").read_text())
    for name in enable:
        state["stages"][name] = {"status": "pending"}
        shutil.rmtree(dest / "stages" / name, ignore_errors=True)
    state["status"] = "interrupted"
    (dest / "state.json").write_text(json.dumps(state, indent=2))
    return dest


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--enable", action="append", default=[], help="a stage to (re)run")
    parser.add_argument("--set", dest="settings", action="append", default=[], help="STAGE.KEY=VALUE")
    args = parser.parse_args(argv)
    print(branch(args.source, args.dest, args.enable, args.settings))


if __name__ == "__main__":
    sys.exit(main())
