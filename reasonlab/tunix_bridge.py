"""Glue between Tunix's metrics logger and reasonlab's MetricsHub.

Tunix publishes metrics through ``jax.monitoring`` listeners. We give it one custom
backend that forwards ``prefix/mode/name`` scalars to the hub and drops JAX's and
Orbax's own internal scalars. jax 0.10.2's ``clear_event_listeners()`` leaves
listeners registered, so a closed backend would keep receiving compile events (and
wandb would log to a finished run): ``close()`` unregisters its own listener.
"""

from __future__ import annotations

import weakref
from typing import Callable

from reasonlab import private_api

_INTERNAL_PREFIXES = ("jax/", "/jax/", "orbax", "/orbax")


class HubBackend:
    """Collects one step's scalars into a single record (Tunix sends them one by one)."""

    _live: weakref.WeakSet[HubBackend] = weakref.WeakSet()

    def __init__(self, log: Callable[[dict[str, float], int], None]):
        self._log = log
        self._closed = False
        self._step: int | None = None
        self._pending: dict[str, float] = {}
        HubBackend._live.add(self)

    @classmethod
    def flush_all(cls) -> None:
        """Hand every open backend's gathered record to the hub now."""
        for backend in list(cls._live):
            if not backend._closed:
                backend._flush()

    def log_scalar(self, event: str, value, **kwargs) -> None:
        if self._closed or event.startswith(_INTERNAL_PREFIXES):
            return
        step = kwargs.get("step")
        if step is None:
            return
        parts = [p for p in event.split("/") if p]
        if len(parts) >= 2 and parts[1] in ("train", "eval"):
            parts = [parts[1], parts[0], *parts[2:]]  # mode first: train/actor/loss
        try:
            value, step = float(value), int(step)
        except (TypeError, ValueError):
            return
        if step != self._step:
            self._flush()
            self._step = step
        self._pending["/".join(parts)] = value

    def _flush(self) -> None:
        if self._pending:
            self._log(self._pending, self._step)
        self._pending = {}

    def close(self) -> None:
        self._flush()
        if self._closed:
            return
        self._closed = True
        private_api.remove_scalar_listener(self.log_scalar)


def metrics_before_checkpoints(trainer, *flush_more: Callable[[], None]) -> None:
    """Write every metric of the steps a checkpoint holds before the checkpoint itself.

    Tunix writes a step's train metrics one step late (the host copy of the loss overlaps
    the next step) and ``HubBackend`` gathers a step's scalars until the next step's
    arrive. A resumed run does not re-log the steps it restores, so a kill between a
    checkpoint and the next step would lose that step's record for good. Here the
    trainer's checkpoint manager first writes what is pending (the trainer's lagging step,
    then ``flush_more``, e.g. an RL cluster's buffered rollout metrics) on the steps
    that save; the others keep Tunix's overlap.
    """
    manager = trainer.checkpoint_manager
    save = manager.save

    def save_after_metrics(step, *args, force: bool = False, **kwargs):
        orbax_manager = private_api.orbax_manager(manager)  # None when checkpointing is off
        if orbax_manager is not None and (force or orbax_manager.should_save(step)):
            private_api.write_held_back_metrics(trainer)
            for flush in flush_more:
                flush()
            HubBackend.flush_all()
        return save(step, *args, force=force, **kwargs)

    manager.save = save_after_metrics


def metrics_options(log: Callable[[dict[str, float], int], None], log_dir):
    """``MetricsLoggerOptions`` whose only backend forwards to ``log(metrics, step)``."""
    from tunix.sft.metrics_logger import MetricsLoggerOptions

    return MetricsLoggerOptions(log_dir=str(log_dir), backend_kwargs={"custom_backend": [lambda: HubBackend(log)]})


def checkpoint_options(every: int, keep: int = 2):
    import orbax.checkpoint as ocp

    return ocp.CheckpointManagerOptions(save_interval_steps=every, max_to_keep=keep)


def trainer_options(ctx, cfg) -> dict:
    """The ``TrainingConfig`` keywords every training stage shares: its steps, its orbax
    checkpoints in the stage folder, and metrics routed to the run's hub."""
    return {
        "eval_every_n_steps": cfg.steps + 1,
        "max_steps": cfg.steps,
        "checkpoint_root_directory": str(ctx.checkpoint_dir.absolute()),
        "checkpointing_options": checkpoint_options(cfg.checkpoint_every or cfg.steps),
        "metrics_logging_options": metrics_options(ctx.log, ctx.dir / "tunix"),
        "pbar_description": None,
    }
