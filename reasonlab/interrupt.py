"""Stopping cleanly: a time budget, SIGTERM and Ctrl-C all ask the current stage to stop
at the next step boundary. Tunix's trainers end their loop when the data iterator runs
dry and force-save a checkpoint on close, so stages stop by ending their iterators
(``ctx.should_stop()``) and then raise ``StageInterrupted``; the run is marked
resumable and ``reasonlab resume`` carries on. A second Ctrl-C aborts at once.
"""

from __future__ import annotations

import re
import signal
import time

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> float:
    """"8h30m" -> 30600.0 seconds; a bare number is seconds."""
    text = str(text).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([dhms])", text)
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        raise ValueError(f"{text!r} is not a duration like 8h30m, 45m or 90s")
    return sum(float(n) * _UNITS[u] for n, u in parts)


class StageInterrupted(Exception):
    """A stage stopped early on request; its checkpoint is written and the run can resume."""


class StopSignal:
    """Whether the run should stop now: a signal arrived, or the next step would overrun the budget."""

    def __init__(self, budget_seconds: float | None = None, start: float | None = None):
        self.start = start if start is not None else time.monotonic()
        self.deadline = self.start + budget_seconds if budget_seconds else None
        self.reason: str | None = None
        self._last_poll: float | None = None
        self._step_estimate = 0.0

    def request(self, reason: str) -> None:
        self.reason = self.reason or reason

    def __call__(self) -> bool:
        """Polled once per step by a stage's data iterator."""
        now = time.monotonic()
        if self._last_poll is not None:
            self._step_estimate = max(self._step_estimate * 0.5, now - self._last_poll)
        self._last_poll = now
        if self.reason is None and self.deadline is not None and now + 1.5 * self._step_estimate >= self.deadline:
            self.reason = "time budget"
        return self.reason is not None

    @property
    def exit_code(self) -> int:
        return {"SIGINT": 130, "SIGTERM": 143}.get(self.reason or "", 0)

    def install(self) -> None:
        def on_signal(signum, _frame):
            name = signal.Signals(signum).name
            if self.reason is not None and name == "SIGINT":
                raise KeyboardInterrupt  # a second Ctrl-C: stop now
            self.request(name)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
