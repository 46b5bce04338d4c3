"""Writing the run's and the cache's small JSON files."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json(path: Path, data) -> None:
    """Write JSON atomically: a reader never sees a half-written file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path)


class RunLock:
    """An exclusive lock on a run directory (``.lock``, flock): two processes never write one
    run. The kernel drops it when its process dies, so a run whose state says "running" but
    whose lock is free was left by a process that is gone."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self._fh = None

    def acquire(self) -> None:
        import fcntl

        from reasonlab.errors import ReasonlabError

        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            fh.close()
            raise ReasonlabError(f"the run directory is in use by another reasonlab process (pid {holder})",
                                 where=str(self.path.parent),
                                 hint="wait for it to finish, or stop it (Ctrl-C / SIGTERM) and resume") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the flock
            self._fh = None


def drop_rows_after(path: Path, step: int) -> int:
    """Remove the rows of a per-step JSONL log (``{"step": N, ...}`` per line) logged after
    ``step``: a resumed stage redoes those steps and logs them again. Returns how many went."""
    if not path.exists():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = []
    for line in lines:
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut short by a kill
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    return len(lines) - len(kept)
