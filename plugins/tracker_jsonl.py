"""``[tracking.jsonl]``: every metric record also appended to a JSON-lines file of your choice.

The run directory's own ``metrics.jsonl`` is the run's record (resume, ``compare``, ``show``
read it) and is always written by the core; this tracker is for a second copy somewhere else,
e.g. a folder a dashboard watches or a shared disk that collects many runs in one file.
Options: ``path`` (required; ``{recipe}`` and ``{run_id}`` are filled in; relative paths are
relative to the run directory). Each line: ``{"recipe", "run_id", "stage", "step", "time",
...metrics}``; a stage's summary is a line with ``"summary": true``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from reasonlab import hookimpl


class JsonlTracker:
    def __init__(self, options: dict, run):
        from reasonlab.errors import RecipeError

        unknown = set(options) - {"path"}
        if unknown or not isinstance(options.get("path"), str) or not options["path"]:
            raise RecipeError("tracking.jsonl needs one option, path (a file to append records to)"
                              + (f"; unknown option(s) {', '.join(sorted(unknown))}" if unknown else ""),
                              where="tracking.jsonl", hint='e.g. [tracking.jsonl] path = "/shared/metrics/{recipe}.jsonl"')
        self.run = run
        path = Path(options["path"].format(recipe=run.recipe, run_id=run.run_id)).expanduser()
        self.path = path if path.is_absolute() else run.dir / path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8", buffering=1)
        self.stage = None

    def _write(self, record: dict) -> None:
        self._file.write(json.dumps({"recipe": self.run.recipe, "run_id": self.run.run_id, "stage": self.stage,
                                     **record}) + "\n")

    def start_stage(self, stage: str, kind: str) -> None:
        self.stage = stage

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._write({"step": step, "time": round(time.time(), 3), **metrics})

    def end_stage(self, summary: dict[str, float]) -> None:
        self._write({"summary": True, **summary})

    def close(self) -> None:
        self._file.close()


@hookimpl
def register_trackers(register):
    register("jsonl", JsonlTracker)
