"""``math_equiv``: symbolic answer checking with math-verify (SymPy underneath).

Fractions, ``\\frac``, percentages, currency and units are normalised by math-verify.
Every check runs in a separate worker process with a time limit (``timeout``, default
2 s per answer): an adversarial answer such as ``9**9**9**9`` gets the worker killed
and restarted, scores 0, and never stalls a training step.

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
    """One long-lived checker process; killed and replaced whenever a check overruns its limit."""

    def __init__(self):
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    def _start(self) -> None:
        self._process = subprocess.Popen([sys.executable, "-m", "reasonlab_plugins._math_worker"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def equivalent(self, gold: str, predicted: str, timeout: float) -> bool:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._start()
                timeout += 30.0  # the first check also waits for the worker to import SymPy
            try:
                self._process.stdin.write(json.dumps([gold, predicted]) + "\n")
                self._process.stdin.flush()
            except (BrokenPipeError, OSError):
                self._kill()
                return False
            ready, _, _ = select.select([self._process.stdout], [], [], timeout)
            if not ready:
                self._kill()
                return False
            line = self._process.stdout.readline()
            if not line:
                self._kill()
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
