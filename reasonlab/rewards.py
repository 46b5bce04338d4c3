"""The reward contract, and the weighted, concurrent, policed composite of a stage's rewards.

A reward is ``fn(prompts, completions, **columns_and_options) -> list`` (``async`` allowed).
What it declares (``register(name, fn, columns=[...], timeout=S)`` and its signature):

- **options**: the keyword parameters of ``fn`` other than ``prompts``/``completions``.
  A recipe option the reward does not take is an error (``validate`` says which, with a
  did-you-mean). A reward whose signature takes only ``**kwargs`` can declare
  ``options=[...]`` at registration; otherwise its options cannot be checked.
- **columns**: the dataset columns it reads. An entry may name an option in braces,
  ``"{answer_column}"``, and is then that option's value (default from the signature); an
  option set to ``None`` needs no column.
- **timeout**: seconds one call may take (the recipe's ``timeout`` key of the reward wins).

What it returns, per completion: a number (bools count 1.0/0.0), or ``None`` for "does not
apply" — that reward is left out of that completion's weighted sum, as TRL does. NaN, inf,
other types, an exception, or a list of the wrong length are failures.

``CompositeReward`` is the one reward function Tunix sees. It runs the rewards at once
(one daemon thread each, so a hung reward never holds the learner past its timeout), sums
them by weight, and polices failures (``failures``):

- ``"stop"`` (default): a reward that fails on every completion of a call, or on more than
  ``max_failure_rate`` of the completions over the last ``failure_window`` calls
  (timeouts included), stops the run with a ``RewardError``: the reward, the exception
  and the plugin's file:line;
- ``"fallback"``: failed completions get ``fallback``; a warning is printed the first time
  each reward fails, and its failure rate every ``failure_window`` calls;
- ``fail_fast = True``: the first failure of any kind stops the run.

The first occurrence of each distinct error per reward, with its traceback, goes to
``errors_path`` (a stage's ``reward_errors.jsonl``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from reasonlab.errors import ReasonlabError
from reasonlab.plugins import takes_context  # noqa: F401 - re-exported for reward plugins
from reasonlab.schema import RewardSpec

# Keyword arguments Tunix passes to every reward besides the dataset columns.
_TUNIX_EXTRAS = ("mode", "trajectory_ids")
_POSITIONAL = ("prompts", "completions", "context")  # not options: the arguments the core passes


@dataclass(frozen=True)
class RewardContext:
    """What the core hands a reward — or a judge factory — that takes a ``context`` parameter:
    the plugin system, the stage's meshes (a judge model goes on the ``judge`` role), and
    ``shared``, a dict that lives as long as the run (objects worth keeping across steps and
    stages, e.g. a judge and its loaded model)."""

    plugins: Any
    meshes: Any = None
    shared: dict = field(default_factory=dict)

    @staticmethod
    def standalone() -> "RewardContext":
        """For a reward called outside a run (a script, a test): the installed plugins, no mesh."""
        global _STANDALONE
        if _STANDALONE is None:
            from reasonlab.plugins import get_plugins

            _STANDALONE = RewardContext(get_plugins())
        return _STANDALONE


_STANDALONE: RewardContext | None = None


def bind_context(fn: Callable, context: RewardContext | None) -> Callable:
    """``fn`` with ``context=`` bound when it takes one (rewards written without it are left as they are)."""
    import functools

    return functools.partial(fn, context=context) if context is not None and takes_context(fn) else fn
DEFAULT_TIMEOUT = 600.0  # seconds; judge rewards register a shorter one


class RewardError(ReasonlabError):
    """A reward that cannot do its job: failing, timing out, or given what it cannot use."""


# -- the contract ---------------------------------------------------------------------


@dataclass(frozen=True)
class RewardContract:
    options: dict[str, Any] | None  # name -> default; None when the signature does not say
    columns: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT

    def required_columns(self, options: dict) -> list[str]:
        """The columns this reward reads with these recipe options."""
        values = {**(self.options or {}), **options}
        needed = []
        for column in self.columns:
            if column.startswith("{") and column.endswith("}"):
                column = values.get(column[1:-1])
                if column is None:
                    continue
            needed.append(str(column))
        return needed

    def unknown_options(self, options: dict) -> list[str]:
        if self.options is None:
            return []
        return [key for key in options if key not in self.options]


def contract_of(fn: Callable, info: dict | None = None) -> RewardContract:
    info = info or {}
    declared = info.get("options")
    if declared is not None:
        options = {name: None for name in declared}
    else:
        options = _signature_options(fn)
    return RewardContract(options=options, columns=tuple(info.get("columns", ())),
                          timeout=float(info.get("timeout", DEFAULT_TIMEOUT)))


def _signature_options(fn: Callable) -> dict[str, Any] | None:
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    named = {p.name: (None if p.default is inspect.Parameter.empty else p.default) for p in parameters
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in _POSITIONAL}
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2 and not any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return None  # not the reward shape: nothing to say about its options
    if not named and any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None  # only **kwargs: options unknown
    return named


def check_reward_options(spec: RewardSpec, contract: RewardContract, where: str) -> None:
    import difflib

    unknown = contract.unknown_options(spec.options)
    if unknown:
        known = sorted(contract.options or {})
        close = difflib.get_close_matches(unknown[0], known, n=1)
        raise RewardError(
            f"reward {spec.name!r} has no option {unknown[0]!r}", where=f"{where}.options.{unknown[0]}",
            hint=(f"did you mean {close[0]!r}? " if close else "") + f"its options: {', '.join(known) or '(none)'}")


def check_reward_refs(spec: RewardSpec, contract: RewardContract, info: dict, plugins, where: str) -> None:
    """Options that name another plugin (``register(..., refs={"judge": "judges"})``) name one that exists."""
    for option, kind in (info or {}).get("refs", {}).items():
        name = spec.options.get(option, (contract.options or {}).get(option))
        if name is not None and name not in plugins.registry(kind):
            raise RewardError(f"reward {spec.name!r}: unknown {kind[:-1]} {name!r}", where=f"{where}.options.{option}",
                              hint=plugins.registry(kind).suggest(name))


def check_reward_columns(spec: RewardSpec, contract: RewardContract, available, where: str, source: str) -> None:
    """``available``: the columns the stage's rows have (a set), plus the prompts' own."""
    missing = [c for c in contract.required_columns(spec.options) if c not in available]
    if missing:
        raise RewardError(
            f"reward {spec.name!r} reads the column {missing[0]!r}, which the data {source!r} does not have "
            f"(it has {', '.join(sorted(available)) or 'no columns'})", where=where,
            hint=f"use data that has {missing[0]!r}, map the column with the reward's options, or drop the reward")


# -- one call of one reward --------------------------------------------------------------


@dataclass
class RewardOutcome:
    name: str
    scores: list[float | None]  # None: does not apply; failed entries hold the fallback
    seconds: float
    failures: int = 0
    timed_out: bool = False
    error: BaseException | None = None
    where: str = ""

    @property
    def applicable(self) -> list[float]:
        return [s for s in self.scores if s is not None]


def _call(fn: Callable, prompts, completions, kwargs) -> Any:
    result = fn(prompts, completions, **kwargs)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return result


async def _await(awaitable):
    return await awaitable


def _in_thread(fn: Callable, timeout: float):
    """fn() in a daemon thread: (finished, result, exception). A call past ``timeout`` is
    abandoned, never joined, so it cannot hold up the step or the interpreter's exit."""
    box: dict = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="reward")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return False, None, None
    return True, box.get("result"), box.get("error")


def _score(value) -> float | None:
    """One returned score as a float, None (does not apply); raises on anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if hasattr(value, "item") and not isinstance(value, (list, tuple)):
        value = value.item()  # numpy scalars
    if not isinstance(value, (int, float)):
        raise TypeError(f"a score is a {type(value).__name__}, not a number or None")
    return float(value)


def raised_at(exc: BaseException, fn: Callable) -> str:
    """file:line where ``exc`` was raised, preferring the reward's own source file."""
    frames = traceback.extract_tb(exc.__traceback__)
    try:
        source = inspect.getsourcefile(inspect.unwrap(getattr(fn, "func", fn)))  # through bind_context's partial
    except TypeError:
        source = None
    own = [f for f in frames if source and f.filename == source]
    frame = (own or frames or [None])[-1]
    return f"{frame.filename}:{frame.lineno}" if frame else "?"


# -- the composite ---------------------------------------------------------------------


@dataclass
class _Totals:
    calls: int = 0
    scores: list[float] = field(default_factory=list)
    failures: int = 0
    timeouts: int = 0
    not_applicable: int = 0
    seconds: float = 0.0
    window: deque = field(default_factory=deque)  # (failed, total) per call
    warned: bool = False


class CompositeReward:
    """``reward(prompts, completions, **columns) -> list[float]``: the weighted sum of the recipe's rewards."""

    def __init__(self, specs: list[RewardSpec], registry, *, fallback: float = 0.0, fail_fast: bool = False,
                 on_metrics: Callable[[dict[str, float]], None] | None = None,
                 failures: Literal["stop", "fallback"] = "stop", max_failure_rate: float = 0.5,
                 failure_window: int = 10, group_size: int | None = None, errors_path: Path | None = None,
                 warn: Callable[[str], None] | None = None, where: str = "rewards",
                 deadline: float | None = None, context: RewardContext | None = None):
        self.specs = specs
        self.deadline = deadline  # seconds for all of a step's rewards together (they run side by side)
        fns = [registry.get(spec.name) for spec in specs]
        entries = getattr(registry, "entries", {})
        self.contracts = [contract_of(fn, entries[spec.name].info if spec.name in entries else None)
                          for spec, fn in zip(specs, fns)]
        self.fns = [bind_context(fn, context) for fn in fns]
        self.fallback = fallback
        self.fail_fast = fail_fast
        self.on_metrics = on_metrics
        self.failures = failures
        self.max_failure_rate = max_failure_rate
        self.failure_window = failure_window
        self.group_size = group_size
        self.errors_path = Path(errors_path) if errors_path else None
        self.warn = warn or (lambda text: None)
        self.where = where
        self.totals = {spec.name: _Totals(window=deque(maxlen=failure_window)) for spec in specs}
        self.last_call: tuple | None = None  # (prompts, completions, {reward: scores}, totals) of the last call
        self._seen_errors: set[tuple] = set()
        self.__name__ = "reasonlab_composite"

    # scoring
    def score(self, prompts: list[str], completions: list[str], **columns) -> list[RewardOutcome]:
        columns = {k: _as_list(v) for k, v in columns.items()}
        results: list[RewardOutcome | None] = [None] * len(self.specs)

        def run(i):
            results[i] = self._one(self.specs[i], self.fns[i], self.contracts[i], list(prompts), list(completions),
                                   columns)

        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(self.specs))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()  # each _one returns by its own timeout
        return results  # type: ignore[return-value]

    def _one(self, spec: RewardSpec, fn: Callable, contract: RewardContract, prompts, completions,
             columns) -> RewardOutcome:
        n = len(completions)
        timeout = spec.timeout or contract.timeout
        limit = f"its timeout of {timeout:g} s"
        if self.deadline is not None and self.deadline < timeout:
            timeout, limit = self.deadline, f"the step's reward_deadline of {self.deadline:g} s"
        start = time.perf_counter()
        finished, result, error = _in_thread(lambda: _call(fn, prompts, completions, {**columns, **spec.options}),
                                             timeout)
        seconds = time.perf_counter() - start
        if not finished:
            return RewardOutcome(spec.name, [self.fallback] * n, seconds, n, timed_out=True,
                                 error=TimeoutError(f"no result within {limit}"))
        if error is None:
            try:
                values = list(result)
                if len(values) != n:
                    raise ValueError(f"returned {len(values)} scores for {n} completions")
                scores: list[float | None] = [_score(v) for v in values]
            except Exception as exc:  # noqa: BLE001 - a malformed result is the reward's failure
                error = exc
        if error is not None:
            return RewardOutcome(spec.name, [self.fallback] * n, seconds, n, error=error, where=raised_at(error, fn))
        bad = [i for i, s in enumerate(scores) if s is not None and not math.isfinite(s)]
        for i in bad:
            scores[i] = self.fallback
        outcome = RewardOutcome(spec.name, scores, seconds, len(bad))
        if bad:
            outcome.error = ValueError(f"returned NaN/inf for completion(s) {bad[:5]}")
        return outcome

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        columns = {k: v for k, v in kwargs.items() if k not in _TUNIX_EXTRAS}
        outcomes = self.score(prompts, completions, **columns)
        n = len(completions)
        totals = [sum(spec.weight * o.scores[i] for spec, o in zip(self.specs, outcomes) if o.scores[i] is not None)
                  for i in range(n)]
        training = str(kwargs.get("mode", "train")) == "train"
        # the last call's texts and scores, for a stage that logs rollout samples
        self.last_call = (list(prompts), list(completions), {o.name: list(o.scores) for o in outcomes}, totals)
        for outcome in outcomes:
            self._record(outcome, n)
        if self.on_metrics and training:
            self.on_metrics(self.metrics(outcomes, totals))
        self._police(outcomes, n)
        return totals

    # what is logged
    def metrics(self, outcomes: list[RewardOutcome], totals: list[float]) -> dict[str, float]:
        metrics = {"reward/total/mean": _mean(totals)}
        for o in outcomes:
            metrics[f"reward/{o.name}/mean"] = _mean(o.applicable)
            metrics[f"reward/{o.name}/seconds"] = o.seconds
            metrics[f"reward/{o.name}/failures"] = float(o.failures)
            metrics[f"reward/{o.name}/timeouts"] = float(o.timed_out)
            metrics[f"reward/{o.name}/not_applicable"] = float(sum(s is None for s in o.scores))
            if self.group_size:
                metrics[f"reward/{o.name}/group_std"] = _mean(_group_stds(o.scores, self.group_size))
        if self.group_size:
            stds = _group_stds(totals, self.group_size)
            metrics["reward/total/group_std"] = _mean(stds)
            metrics["reward/zero_variance_groups"] = _mean([float(s == 0.0) for s in stds])
        return metrics

    def _record(self, outcome: RewardOutcome, n: int) -> None:
        totals = self.totals[outcome.name]
        totals.calls += 1
        totals.seconds += outcome.seconds
        totals.failures += 0 if outcome.timed_out else outcome.failures
        totals.timeouts += int(outcome.timed_out)
        totals.not_applicable += sum(s is None for s in outcome.scores)
        if not outcome.failures:
            totals.scores += outcome.applicable
        totals.window.append((outcome.failures, n))
        if outcome.error is not None:
            self._keep_error(outcome)

    def _keep_error(self, outcome: RewardOutcome) -> None:
        error = outcome.error
        key = (outcome.name, type(error).__name__, str(error).splitlines()[0] if str(error) else "", outcome.where)
        if key in self._seen_errors:
            return
        self._seen_errors.add(key)
        if self.errors_path is None:
            return
        self.errors_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.errors_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"reward": outcome.name, "type": type(error).__name__, "message": str(error),
                                 "where": outcome.where, "calls": self.totals[outcome.name].calls,
                                 "traceback": "".join(traceback.format_exception(error))}) + "\n")

    # the failure policy
    def _police(self, outcomes: list[RewardOutcome], n: int) -> None:
        for outcome in outcomes:
            if not outcome.failures:
                continue
            totals = self.totals[outcome.name]
            if self.fail_fast:
                self._stop(outcome, f"failed on {outcome.failures} of {n} completions (fail_fast)")
            if self.failures == "fallback":
                if not totals.warned:
                    totals.warned = True
                    self.warn(f"reward {outcome.name!r} failed on {outcome.failures}/{n} completions "
                              f"({_describe(outcome)}); they get the fallback {self.fallback:g}")
                continue
            if outcome.failures == n and not outcome.timed_out:
                self._stop(outcome, f"failed on all {n} completions of a step")
            failed = sum(f for f, _ in totals.window)
            seen = sum(t for _, t in totals.window)
            if len(totals.window) == self.failure_window and failed > self.max_failure_rate * seen:
                self._stop(outcome, f"failed on {failed} of {seen} completions over the last "
                                    f"{self.failure_window} calls (more than {self.max_failure_rate:.0%})")
        if self.failures == "fallback":
            for name, totals in self.totals.items():
                if totals.calls % self.failure_window == 0 and (totals.failures or totals.timeouts):
                    self.warn(f"reward {name!r}: {totals.failures} failures and {totals.timeouts} timeouts "
                              f"in {totals.calls} calls so far")

    def _stop(self, outcome: RewardOutcome, what: str):
        kept = f"; traceback in {self.errors_path}" if self.errors_path else ""
        raise RewardError(f"reward {outcome.name!r} {what}: {_describe(outcome)}{kept}",
                          where=f"{self.where} ({outcome.where or 'reward ' + repr(outcome.name)})",
                          hint='fix the reward, its options or the data it reads; to train on with the fallback '
                               'score instead, set reward_failures = "fallback" in the stage')

    # the end-of-stage summary
    def summary(self) -> list[dict]:
        rows = []
        for name, t in self.totals.items():
            mean = _mean(t.scores)
            std = math.sqrt(_mean([(s - mean) ** 2 for s in t.scores])) if t.scores else 0.0
            rows.append({"reward": name, "calls": t.calls, "mean": mean, "std": std, "failures": t.failures,
                         "timeouts": t.timeouts, "not_applicable": t.not_applicable, "seconds": t.seconds})
        return rows

    def close(self) -> None:
        pass  # calls run in daemon threads; nothing to shut down


def _describe(outcome: RewardOutcome) -> str:
    error = outcome.error
    return f"{type(error).__name__}: {error}" if error is not None else "unknown error"


def _group_stds(scores: list, size: int) -> list[float]:
    stds = []
    for start in range(0, len(scores) - size + 1, size):
        group = [s for s in scores[start:start + size] if s is not None]
        if group:
            mean = sum(group) / len(group)
            stds.append(math.sqrt(sum((s - mean) ** 2 for s in group) / len(group)))
    return stds


def summary_table(rows: list[dict], title: str):
    """The end-of-stage per-reward table (a rich Table)."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("reward", "mean", "std", "failures", "timeouts", "n/a", "seconds"):
        table.add_column(column, justify="left" if column == "reward" else "right")
    for r in rows:
        table.add_row(r["reward"], f"{r['mean']:.4g}", f"{r['std']:.4g}", str(r["failures"]), str(r["timeouts"]),
                      str(r["not_applicable"]), f"{r['seconds']:.1f}")
    return table


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
