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
