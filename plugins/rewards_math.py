"""``math_equiv``: symbolic answer checking with math-verify (SymPy underneath).

Fractions, ``\\frac``, percentages, currency and units are normalised by math-verify.
Every check runs in a separate worker process with a time limit (``timeout``, default
2 s per answer): an adversarial answer such as ``9**9**9**9`` gets the worker killed,
scores 0, and never stalls a training step; a warm spare worker takes over, so the next
answer is not charged for a restart.

Options: ``timeout`` (seconds), ``answer_column`` (default "answer").
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import threading

from reasonlab import hookimpl
from reasonlab.rewards import require_column
from reasonlab.format import gold_answer, parse_completion


class MathWorker:
    """A checker process and a warm spare. A check that overruns its limit gets its process
    killed; the spare, which has imported SymPy in the meantime, takes over at once and a new
    spare starts in the background — so the next answer gets its own full time limit, not
    the wait for an import."""

    STARTUP = 60.0  # seconds a fresh worker may take to import math-verify and SymPy

    def __init__(self):
        self._lock = threading.Lock()
        self._active: subprocess.Popen | None = None
        self._spare: subprocess.Popen | None = None

    @staticmethod
    def _spawn() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "reasonlab_plugins._math_worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)

    @staticmethod
    def _wait_ready(process: subprocess.Popen, timeout: float) -> bool:
        """The worker's first line is "ready" once its imports are done."""
        if getattr(process, "ready", False):
            return True
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        process.ready = bool(ready) and process.stdout.readline().strip() == "ready"
        return process.ready

    def _take(self) -> subprocess.Popen | None:
        if self._active is None or self._active.poll() is not None:
            self._active, self._spare = self._spare or self._spawn(), self._spawn()
        return self._active if self._wait_ready(self._active, self.STARTUP) else None

    def _kill_active(self) -> None:
        if self._active is not None:
            self._active.kill()
            self._active.wait()
        self._active = None

    def equivalent(self, gold: str, predicted: str, timeout: float) -> bool:
        with self._lock:
            process = self._take()
            if process is None:
                self._kill_active()
                return False
            try:
                process.stdin.write(json.dumps([gold, predicted]) + "\n")
                process.stdin.flush()
            except (BrokenPipeError, OSError):
                self._kill_active()
                return False
            ready, _, _ = select.select([process.stdout], [], [], timeout)
            line = process.stdout.readline() if ready else ""
            if not line:
                self._kill_active()
                return False
            return line.strip() == "true"


_worker = MathWorker()


def math_equiv(prompts, completions, timeout: float = 2.0, answer_column: str = "answer", **columns) -> list[float]:
    golds = require_column(columns, answer_column, "math_equiv")
    scores = []
    for text, gold in zip(completions, golds):
        answer = parse_completion(text).answer
        scores.append(1.0 if answer and _worker.equivalent(gold_answer(gold), answer, timeout) else 0.0)
    return scores


@hookimpl
def register_rewards(register):
    register("math_equiv", math_equiv, columns=["{answer_column}"])
