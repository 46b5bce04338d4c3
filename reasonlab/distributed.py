"""Multi-process (multi-host) runs through ``jax.distributed``.

reasonlab starts JAX's own multi-controller runtime and nothing else: every process runs
the same recipe, the meshes span all processes' devices, Tunix and orbax do the collective
work. Only process 0 writes the run directory's files, logs to trackers and prints
progress; every process takes part in orbax checkpoints (each writes its own shards).

Started when the environment says so, before anything touches JAX:
- ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0), ``JAX_NUM_PROCESSES`` and
  ``JAX_PROCESS_ID`` — any multi-host machine;
- ``REASONLAB_DISTRIBUTED=auto`` — let JAX detect the cluster (TPU pod slices, SLURM,
  Open MPI, Kubernetes).
"""

from __future__ import annotations

import os

from reasonlab.errors import ReasonlabError

ENV_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
AUTO_ENV = "REASONLAB_DISTRIBUTED"

_started = False


def requested() -> bool:
    return os.environ.get(AUTO_ENV) == "auto" or any(os.environ.get(name) for name in ENV_VARS)


def initialize() -> None:
    """Start jax.distributed when the environment asks for it (idempotent)."""
    global _started
    if _started or not requested():
        return
    import jax

    if os.environ.get(AUTO_ENV) == "auto":
        jax.distributed.initialize()
    else:
        missing = [name for name in ENV_VARS if not os.environ.get(name)]
        if missing:
            raise ReasonlabError(f"multi-process run: {', '.join(missing)} not set",
                                 hint=f"set all of {', '.join(ENV_VARS)}, or {AUTO_ENV}=auto on a TPU pod / SLURM")
        try:
            count, index = int(os.environ["JAX_NUM_PROCESSES"]), int(os.environ["JAX_PROCESS_ID"])
        except ValueError:
            raise ReasonlabError("JAX_NUM_PROCESSES and JAX_PROCESS_ID must be integers") from None
        if not 0 <= index < count:
            raise ReasonlabError(f"JAX_PROCESS_ID={index} is outside 0..{count - 1}")
        jax.distributed.initialize(os.environ["JAX_COORDINATOR_ADDRESS"], num_processes=count, process_id=index)
    _started = True


def process_index() -> int:
    if not _started:
        return 0
    import jax

    return jax.process_index()


def process_count() -> int:
    if not _started:
        return 1
    import jax

    return jax.process_count()


def is_primary() -> bool:
    return process_index() == 0


def share_from_primary(text: str) -> str:
    """Process 0's ``text`` on every process (e.g. the run directory it created)."""
    if process_count() == 1:
        return text
    import numpy as np
    from jax.experimental import multihost_utils

    data = text.encode("utf-8")
    if len(data) > 4096:
        raise ReasonlabError("path too long to share between processes")
    buffer = np.zeros(4096, np.uint8)
    buffer[: len(data)] = np.frombuffer(data, np.uint8)
    shared = np.asarray(multihost_utils.broadcast_one_to_all(buffer))
    return bytes(shared).rstrip(b"\0").decode("utf-8")
