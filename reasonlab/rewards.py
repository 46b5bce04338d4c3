"""Weighted, concurrent reward composition.

Tunix sums reward functions unweighted, one after another. ``CompositeReward`` is a
single Tunix reward function that runs the recipe's rewards concurrently (threads;
``async`` rewards get their own event loop), applies the weights, and reports each
reward's mean, latency and failures.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from reasonlab.errors import ReasonlabError
from reasonlab.schema import RewardSpec

# Keyword arguments Tunix passes to every reward besides the dataset columns.
_TUNIX_EXTRAS = ("mode", "trajectory_ids")


@dataclass
class RewardOutcome:
    name: str
    scores: list[float]
    seconds: float
    failures: int


def _call(fn: Callable, prompts, completions, kwargs) -> Any:
    result = fn(prompts, completions, **kwargs)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return result


async def _await(awaitable):
    return await awaitable


class CompositeReward:
    """``reward(prompts, completions, **columns) -> list[float]``: the weighted sum of the recipe's rewards."""

    def __init__(self, specs: list[RewardSpec], registry, *, fallback: float = 0.0, fail_fast: bool = False,
                 on_metrics: Callable[[dict[str, float]], None] | None = None):
        self.specs = specs
        self.fns = [registry.get(spec.name) for spec in specs]
        self.fallback = fallback
        self.fail_fast = fail_fast
        self.on_metrics = on_metrics
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(specs)), thread_name_prefix="reward")
        self.__name__ = "reasonlab_composite"

    def score(self, prompts: list[str], completions: list[str], **columns) -> list[RewardOutcome]:
        columns = {k: _as_list(v) for k, v in columns.items()}
        futures = [
            self._pool.submit(self._one, spec, fn, list(prompts), list(completions), columns)
            for spec, fn in zip(self.specs, self.fns)
        ]
        return [f.result() for f in futures]

    def _one(self, spec: RewardSpec, fn: Callable, prompts, completions, columns) -> RewardOutcome:
        start = time.perf_counter()
        n = len(completions)
        try:
            scores = _call(fn, prompts, completions, {**columns, **spec.options})
            scores = [float(s) for s in scores]
            if len(scores) != n:
                raise ValueError(f"returned {len(scores)} scores for {n} completions")
        except Exception as exc:
            if self.fail_fast:
                raise ReasonlabError(f"reward {spec.name!r} failed: {type(exc).__name__}: {exc}") from exc
            return RewardOutcome(spec.name, [self.fallback] * n, time.perf_counter() - start, n)
        bad = [i for i, s in enumerate(scores) if not math.isfinite(s)]
        if bad and self.fail_fast:
            raise ReasonlabError(f"reward {spec.name!r} returned NaN/inf for completions {bad[:5]}")
        for i in bad:
            scores[i] = self.fallback
        return RewardOutcome(spec.name, scores, time.perf_counter() - start, len(bad))

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        columns = {k: v for k, v in kwargs.items() if k not in _TUNIX_EXTRAS}
        outcomes = self.score(prompts, completions, **columns)
        totals = [sum(spec.weight * o.scores[i] for spec, o in zip(self.specs, outcomes)) for i in range(len(completions))]
        if self.on_metrics and str(kwargs.get("mode", "train")) == "train":
            metrics = {"reward/total/mean": _mean(totals)}
            for o in outcomes:
                metrics[f"reward/{o.name}/mean"] = _mean(o.scores)
                metrics[f"reward/{o.name}/seconds"] = o.seconds
                metrics[f"reward/{o.name}/failures"] = float(o.failures)
            self.on_metrics(metrics)
        return totals

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def require_column(columns: dict, name: str, reward: str) -> list:
    """A dataset column a reward needs, or a KeyError naming both (counted as that reward's failure)."""
    if columns.get(name) is None:
        raise KeyError(f"{reward} needs the dataset column {name!r}; the rows have {sorted(columns)}")
    return columns[name]


def _as_list(value: Any) -> list:
    if hasattr(value, "tolist"):
        value = value.tolist()
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
