"""One process per run directory; a run left "running" by a process that is gone resumes."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_SFT, reasonlab, run_dir_of, tiny_recipe

from reasonlab.files import RunLock

pytestmark = pytest.mark.slow

RECIPE = tiny_recipe("locked", TINY_SFT)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("locked")
    (root / "locked.toml").write_text(RECIPE)
    result = reasonlab("run", root / "locked.toml", "--no-progress", "--runs-dir", root / "runs")
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir_of(root / "runs", "locked")


def test_a_second_process_on_a_run_directory_is_refused(finished_run):
    lock = RunLock(finished_run)
    lock.acquire()
    try:
        result = reasonlab("resume", finished_run, "--no-progress")
    finally:
        lock.release()
    assert result.returncode == 2 and "in use by another reasonlab process" in result.stderr
    assert json.loads((finished_run / "state.json").read_text())["status"] == "done"  # untouched


def test_a_run_left_running_by_a_dead_process_is_resumable(finished_run):
    state = json.loads((finished_run / "state.json").read_text())
    (finished_run / "state.json").write_text(json.dumps({**state, "status": "running"}))
    result = reasonlab("resume", finished_run, "--no-progress")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((finished_run / "state.json").read_text())["status"] == "done"
