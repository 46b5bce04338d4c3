"""Metrics fan-out: every record goes to metrics.jsonl, the enabled tracker plugins,
the ``on_metrics`` hook and the progress display, in that order."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from reasonlab.plugins import call_hook, call_tracker


@dataclass
class RunInfo:
    """What trackers know about a run."""

    recipe: str
    run_id: str
    dir: Path
    config: dict  # the resolved recipe
    tags: list[str] = field(default_factory=list)
    profile: str | None = None


class Tracker(Protocol):
    """A tracker plugin: constructed as ``cls(options, run)`` with its ``[tracking.NAME]`` table."""

    def start_stage(self, stage: str, kind: str) -> None: ...
    def log(self, metrics: dict[str, float], step: int) -> None: ...
    def end_stage(self, summary: dict[str, float]) -> None: ...
    def close(self) -> None: ...
    # optional: log_table(name, columns, rows, step) for per-sample tables (eval samples),
    # log_rows(name, columns, rows, step) for a table that grows over a stage (rollout samples),
    # and log_file(path, name, kind) for a file of the whole run (the HTML report), called
    # after the last stage


def _clean(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[key] = number
    return out


class MetricsHub:
    """One place stages log to; knows the current stage."""

    def __init__(self, run: RunInfo, trackers: list[Any], hook, progress, write: bool = True):
        self.run = run
        self.trackers = trackers
        self.hook = hook
        self.progress = progress
        self.stage: Any = None
        self._earlier: dict[str, int] = {}
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.write = write  # False on the other processes of a multi-process run: process 0 records
        # line-buffered: a record is in the kernel's hands as soon as it is logged, so a SIGKILL
        # right after a checkpoint cannot drop the metrics of the steps that checkpoint restores
        self._file = open(run.dir / "metrics.jsonl" if write else os.devnull, "a", encoding="utf-8", buffering=1)

    def start_stage(self, stage) -> None:
        self.stage = stage
        # what earlier sessions logged for this stage (a resume): the history starts with it, and
        # each key's latest step says where a redone step would repeat a record
        self.history, self._earlier = {}, {}
        for record in self._records():
            if record.get("stage") == stage.name:
                for key, value in record.items():
                    if key not in ("stage", "step", "time"):
                        self.history.setdefault(key, []).append((int(record["step"]), value))
                        self._earlier[key] = max(self._earlier.get(key, 0), int(record["step"]))
        for tracker in self.trackers:
            call_tracker(tracker, "start_stage", stage.name, stage.kind)

    def _records(self) -> list[dict]:
        path = self.run.dir / "metrics.jsonl"
        if not self.write or not path.exists():
            return []
        records = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
        return records

    def _void(self, keys: set[str], step: int) -> None:
        """A resumed stage redoes the steps after its checkpoint (and re-logs its step-0 setup):
        an earlier session's values of these keys at this step or later are void, so no record
        appears twice. Rare — once per key after a resume — so rewriting the file is fine."""
        kept = []
        for record in self._records():
            if record.get("stage") == self.stage.name and int(record.get("step", 0)) >= step:
                record = {k: v for k, v in record.items() if k not in keys}
                if set(record) <= {"stage", "step", "time"}:
                    continue
            kept.append(record)
        path = self.run.dir / "metrics.jsonl"
        scratch = path.with_suffix(".jsonl.tmp")
        scratch.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        self._file.close()
        os.replace(scratch, path)  # atomic: a kill now leaves the old file or the new one
        self._file = open(path, "a", encoding="utf-8", buffering=1)
        for key in keys:
            self.history[key] = [(s, v) for s, v in self.history.get(key, []) if s < step]
            del self._earlier[key]

    def log(self, metrics: dict[str, Any], step: int) -> None:
        metrics = _clean(metrics)
        if not metrics:
            return
        step = int(step)
        repeated = {k for k in metrics if self._earlier.get(k, -1) >= step}
        if repeated:
            self._void(repeated, step)
        record = {"stage": self.stage.name, "step": step, "time": round(time.time(), 3), **metrics}
        self._file.write(json.dumps(record) + "\n")
        for key, value in metrics.items():
            self.history.setdefault(key, []).append((step, value))
        for tracker in self.trackers:
            call_tracker(tracker, "log", metrics, step)
        if self.write:
            call_hook(self.hook, "on_metrics", run=self.run, stage=self.stage, step=step, metrics=metrics)
        self.progress.update(step, metrics)

    def log_table(self, name: str, columns: list[str], rows: list[list], step: int) -> None:
        """A table (e.g. eval samples) for trackers that take tables; the stage keeps its own JSONL copy."""
        for tracker in self.trackers:
            if hasattr(tracker, "log_table"):
                call_tracker(tracker, "log_table", name, columns, rows, int(step))

    def log_rows(self, name: str, columns: list[str], rows: list[list], step: int) -> None:
        """Rows added to a table that grows over the stage (e.g. rollout samples every N steps),
        for trackers that keep such tables; the stage keeps its own JSONL copy."""
        for tracker in self.trackers:
            if hasattr(tracker, "log_rows"):
                call_tracker(tracker, "log_rows", name, columns, rows, int(step))

    def log_file(self, path: Path, name: str, kind: str) -> None:
        """A file of the whole run (e.g. the HTML report, kind "report") for trackers that keep files."""
        for tracker in self.trackers:
            if hasattr(tracker, "log_file"):
                call_tracker(tracker, "log_file", path, name, kind)

    def flush(self) -> None:
        self._file.flush()

    def end_stage(self, summary: dict[str, float]) -> None:
        self._file.flush()
        for tracker in self.trackers:
            call_tracker(tracker, "end_stage", _clean(summary))

    def close(self) -> None:
        try:
            for tracker in self.trackers:
                call_tracker(tracker, "close")
        finally:
            self._file.close()
