"""``math_equiv``: symbolic answer checking with math-verify (SymPy underneath).

Fractions, ``\\frac``, percentages, currency and units are normalised by math-verify.
Every check runs in a separate worker process with a time limit (``timeout``, default
2 s per answer): an adversarial answer such as ``9**9**9**9`` gets the worker killed
and restarted, scores 0, and never stalls a training step.

Options: ``timeout`` (seconds), ``answer_column`` (default "answer").
"""

from __future__ import annotations

import multiprocessing as mp
import threading

from reasonlab import hookimpl
from reasonlab.format import gold_answer, parse_completion


def _serve(conn) -> None:
    from math_verify import parse, verify

    while True:
        item = conn.recv()
        if item is None:
            return
        gold, predicted = item
        try:
            ok = verify(parse(_math(gold), parsing_timeout=None), parse(_math(predicted), parsing_timeout=None),
                        timeout_seconds=None)
        except Exception:
            ok = False
        conn.send(bool(ok))


def _math(text: str) -> str:
    text = text.strip()
    return text if text.startswith("$") else f"${text}$"


class MathWorker:
    """One long-lived checker process; replaced whenever a check overruns its time limit."""

    def __init__(self):
        self._lock = threading.Lock()
        self._process = None
        self._conn = None

    def _start(self) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that runs JAX threads
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child,), daemon=True)
        self._process.start()

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join()
        self._process = self._conn = None

    def equivalent(self, gold: str, predicted: str, timeout: float) -> bool:
        with self._lock:
            if self._process is None or not self._process.is_alive():
                self._start()
                timeout += 30.0  # the first check also waits for the worker to import SymPy
            self._conn.send((gold, predicted))
            if self._conn.poll(timeout):
                return self._conn.recv()
            self._kill()
            return False


_worker = MathWorker()


def math_equiv(prompts, completions, timeout: float = 2.0, answer_column: str = "answer", **columns) -> list[float]:
    golds = columns.get(answer_column)
    if golds is None:
        raise KeyError(f"math_equiv needs the dataset column {answer_column!r}")
    scores = []
    for text, gold in zip(completions, golds):
        answer = parse_completion(text).answer
        scores.append(1.0 if answer and _worker.equivalent(gold_answer(gold), answer, timeout) else 0.0)
    return scores


@hookimpl
def register_rewards(register):
    register("math_equiv", math_equiv)
