"""metrics.jsonl loses nothing to a hard kill: a record logged before a checkpoint is on disk
before that checkpoint is, so a resumed run (which does not re-log restored steps) keeps it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from types import SimpleNamespace
    from reasonlab.tracking import MetricsHub, RunInfo

    run = RunInfo(recipe="r", run_id="x", dir=Path(sys.argv[1]), config={})
    hook = SimpleNamespace(on_metrics=lambda **kwargs: None)
    progress = SimpleNamespace(update=lambda step, metrics: None)
    hub = MetricsHub(run, [], hook, progress)
    hub.start_stage(SimpleNamespace(name="grpo", kind="grpo"))
    hub.log({"train/actor/loss": 0.5}, step=3)
    hub.log({"train/actor/loss": 0.25}, step=4)
    os.kill(os.getpid(), signal.SIGKILL)  # what a pre-empted machine or OOM killer does
""")


def test_records_survive_sigkill_right_after_logging(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["train/actor/loss"]) for r in records] == [(3, 0.5), (4, 0.25)]


def test_the_jsonl_tracker_is_an_ordinary_plugin_that_mirrors_every_record(tmp_path: Path):
    """``[tracking.jsonl]`` is a builtin tracker like wandb, found through the registry (the
    core no longer names it); the run's own metrics.jsonl is written either way."""
    from types import SimpleNamespace

    import pytest

    from reasonlab.errors import RecipeError
    from reasonlab.plugins import get_plugins
    from reasonlab.tracking import MetricsHub, RunInfo

    tracker_class = get_plugins().registry("trackers").get("jsonl")
    run = RunInfo(recipe="demo", run_id="r1", dir=tmp_path / "run", config={})
    run.dir.mkdir()
    tracker = tracker_class({"path": str(tmp_path / "shared" / "{recipe}.jsonl")}, run)
    hub = MetricsHub(run, [tracker], SimpleNamespace(on_metrics=lambda **_: None),
                     SimpleNamespace(update=lambda step, metrics: None))
    hub.start_stage(SimpleNamespace(name="sft", kind="sft"))
    hub.log({"train/loss": 1.5, "not a number": "x"}, step=1)
    hub.end_stage({"final_loss": 1.5})
    hub.close()
    mirrored = [json.loads(line) for line in (tmp_path / "shared" / "demo.jsonl").read_text().splitlines()]
    assert mirrored[0] == {"recipe": "demo", "run_id": "r1", "stage": "sft", "step": 1,
                           "time": mirrored[0]["time"], "train/loss": 1.5}
    assert mirrored[1] == {"recipe": "demo", "run_id": "r1", "stage": "sft", "summary": True, "final_loss": 1.5}
    assert json.loads((run.dir / "metrics.jsonl").read_text())["train/loss"] == 1.5
    for bad in ({}, {"path": ""}, {"path": "x.jsonl", "mode": "w"}):
        with pytest.raises(RecipeError, match="tracking.jsonl"):
            tracker_class(bad, run)
