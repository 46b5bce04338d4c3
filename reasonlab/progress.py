"""Rich progress for long work: stage, step/total, loss, reward, ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


class RunProgress:
    def __init__(self, enabled: bool = True):
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self._task = None

    def __enter__(self):
        self._progress.start()
        return self

    def __exit__(self, *exc):
        self._progress.stop()

    def start_stage(self, name: str, total: int | None) -> None:
        self._task = self._progress.add_task(name, total=total, status="compiling…")

    def set_total(self, total: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, total=total)

    def update(self, step: int, metrics: dict[str, float]) -> None:
        if self._task is None:
            return
        parts = []
        for label, keys in (("loss", ("train/loss", "loss")), ("reward", ("reward/total/mean",))):
            value = next((metrics[k] for k in keys if k in metrics), None)
            if value is not None:
                parts.append(f"{label} {value:.4g}")
        fields = {"status": "  ".join(parts)} if parts else {}
        self._progress.update(self._task, completed=max(step, 0), **fields)

    def end_stage(self) -> None:
        if self._task is not None:
            task = self._progress.tasks[self._task]
            if task.total:
                self._progress.update(self._task, completed=task.total)
        self._task = None

    def print(self, *args, **kwargs) -> None:
        self._progress.console.print(*args, **kwargs)
