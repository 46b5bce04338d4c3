"""Hand freed host memory back to the operating system between phases of a run.

On CPU, XLA's buffers come from glibc's malloc. Buffers under malloc's mmap threshold
(which grows to 32 MB as buffers are freed) live in the heap, and glibc keeps freed heap
pages mapped, so a process's resident memory stays at the high-water mark of every phase
it has run (a rollout's temporaries, then a train step's). ``release_free_memory()`` asks
glibc to return those pages (``malloc_trim(0)``): a GRPO step on Gemma 3 270M peaks
~0.7 GB lower (benchmarks/README.md). ``release_after_compilations()`` does the same after
every XLA compilation, so the compiler's freed memory is gone before the new program's
temporaries arrive. No-ops where the C library has no malloc_trim.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

from reasonlab import private_api


@functools.cache
def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Return freed heap pages to the OS; True when glibc did so."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


_listening = False


def release_after_compilations() -> None:
    """From now on, release freed memory after each XLA compilation (a ``jax.monitoring``
    listener; registering twice is harmless)."""
    global _listening
    if _listening:
        return
    import jax.monitoring

    jax.monitoring.register_event_duration_secs_listener(_after_event)
    _listening = True


def _after_event(event: str, duration: float, **kwargs) -> None:
    if event == private_api.COMPILE_EVENT:
        release_free_memory()
