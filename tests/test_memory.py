"""reasonlab.memory hands freed heap pages back to the OS, also after every XLA compilation."""

from __future__ import annotations

import ctypes
import sys

import pytest

from reasonlab import memory


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_heap_pages_go_back_to_the_os():
    # many small blocks (under the mmap threshold, so on the heap), touched, then freed;
    # one survivor at the end pins the heap's top, as live objects do in a real run
    blocks = [ctypes.create_string_buffer(64 * 1024) for _ in range(4000)]  # ~256 MB
    survivor = ctypes.create_string_buffer(64 * 1024)
    held = resident_bytes()
    del blocks
    before = resident_bytes()
    assert memory.release_free_memory()
    after = resident_bytes()
    assert held - before < 64 * 2**20 <= before - after, (held, before, after)
    del survivor


def test_every_compilation_triggers_a_release(monkeypatch):
    import jax
    import jax.numpy as jnp

    values = jnp.arange(7.0)
    calls = []
    monkeypatch.setattr(memory, "release_free_memory", lambda: calls.append(1) or True)
    memory.release_after_compilations()
    memory.release_after_compilations()  # idempotent
    program = jax.jit(lambda x: x * 3 + 1)
    program(values).block_until_ready()
    assert len(calls) == 1  # one compilation, one release
    program(values).block_until_ready()
    assert len(calls) == 1  # no compilation, no release
