"""JAX's persistent compilation cache, so a second run of a recipe skips XLA compilation.

Set by ``recipe.compilation_cache``: true (default) -> ``$REASONLAB_CACHE/xla``
(``~/.cache/reasonlab/xla``), a path -> there, false -> off. JAX keys each entry by the
program, the devices and the flags, so one folder serves every recipe and machine shape.

A cache hit is not free: XLA:CPU spends seconds deserialising a large program (~10 s,
single-threaded, for the GRPO train step of Gemma 3 270M). So each run also writes, per
recipe and profile, which large programs each stage read (``prefetch/<recipe>.<profile>.json``
in the cache folder, in order of first use), and the next run of that recipe deserialises a
stage's programs on a background thread as the stage begins (the first stage's while the
model loads), so they are ready when the stage first needs them. Programs not taken by the
end of their stage are dropped, so a stage holds no more programs than it would anyway.
JAX still traces and lowers every program and computes its key; it is handed a prefetched
executable only when the key, the compile options and the devices match byte for byte, so a
changed recipe, code or flag misses the prefetch and falls back to JAX's own cache read.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reasonlab import memory, private_api
from reasonlab.files import write_json

log = logging.getLogger(__name__)
PREFETCH_MIN_BYTES = 100_000  # smaller entries load in milliseconds: not worth a thread's time

_prefetcher: "Prefetcher | None" = None


def cache_path(setting: bool | str) -> Path | None:
    if setting is False:
        return None
    if setting is True:
        return Path(os.environ.get("REASONLAB_CACHE", Path.home() / ".cache" / "reasonlab")) / "xla"
    return Path(setting).expanduser()


def enable(setting: bool | str, prefetch_as: str | None = None) -> Path | None:
    """Point JAX at the cache (before the first compilation). Returns the folder, or None when off.

    ``prefetch_as`` names the manifest of large programs to prefetch and to record (the recipe
    and profile); None leaves prefetching off.
    """
    path = cache_path(setting)
    if path is None:
        return None
    import jax

    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # many small programs add up
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    if prefetch_as:
        start_prefetch(path, prefetch_as)
    return path


def manifest_path(cache_dir: Path, name: str) -> Path:
    return cache_dir / "prefetch" / (re.sub(r"[^A-Za-z0-9._-]+", "_", name) + ".json")


def start_prefetch(cache_dir: Path, name: str) -> "Prefetcher":
    """Install the prefetching cache reader for the run of recipe ``name`` (once per process)."""
    global _prefetcher
    finish_prefetch()
    _prefetcher = Prefetcher(cache_dir, manifest_path(cache_dir, name))
    _prefetcher.install()
    return _prefetcher


def begin_stage(stage: str) -> None:
    """Start loading what ``stage`` read last time; drop what the previous stage did not take."""
    if _prefetcher is not None:
        _prefetcher.begin_stage(stage)


def finish_prefetch() -> list[str]:
    """Write the manifest of the large programs this run read and drop unclaimed executables.
    Returns the names of the programs JAX took from the prefetch."""
    global _prefetcher
    if _prefetcher is None:
        return []
    prefetcher, _prefetcher = _prefetcher, None
    prefetcher.finish()
    return list(prefetcher.claimed)


class Prefetcher:
    """Wraps JAX's persistent-cache read (private: ``reasonlab.private_api.cache_read``;
    ``tests/test_compile_cache.py`` covers it)."""

    def __init__(self, cache_dir: Path, manifest: Path):
        self.cache_dir, self.manifest = cache_dir, manifest
        self._original_read = private_api.cache_read()
        self._lock = threading.Lock()
        self._reads: dict[tuple, dict] = {}  # (stage, cache key) -> what is needed to load it again, in read order
        self._pending: dict[str, tuple[dict, object]] = {}  # cache key -> (its record, Future of the load)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reasonlab-cache-prefetch")
        self._plan = self._read_plan()  # what the last run of this recipe read, stage by stage
        self._stage: str | None = None
        self.claimed: list[str] = []  # module names handed to JAX from the prefetch

    # -- planning ----------------------------------------------------------
    def install(self) -> None:
        private_api.set_cache_read(self._read)

    def begin_stage(self, stage: str) -> None:
        with self._lock:
            if stage == self._stage:
                return
            self._stage = stage
            self._drop_pending()
            backend = private_api.backend()
            for record in self._plan:
                if record.get("stage") == stage:
                    self._pending[record["key"]] = (record, self._pool.submit(self._load, record, backend))

    def _read_plan(self) -> list[dict]:
        try:
            records = json.loads(self.manifest.read_text(encoding="utf-8"))["programs"]
        except (OSError, ValueError, KeyError, TypeError):
            return []  # no earlier run of this recipe (or an unreadable manifest): nothing to prefetch
        return [r for r in records if isinstance(r, dict) and self._entry_path(r.get("key")).exists()]

    def _drop_pending(self) -> None:
        for _, future in self._pending.values():
            future.cancel()  # a load under way finishes and is dropped with its future
        self._pending.clear()

    # -- loading -----------------------------------------------------------
    @staticmethod
    def _load(record: dict, backend):
        loaded = private_api.load_cached_executable(record["key"], base64.b64decode(record["options"]),
                                                    record["devices"], backend)
        memory.release_free_memory()  # deserialising frees ~0.2 GB of scratch (train step) that glibc keeps
        return loaded

    def _read(self, module_name, cache_key, compile_options, backend, executable_devices):
        record = {"stage": self._stage, "module": module_name, "key": cache_key,
                  "options": base64.b64encode(compile_options.SerializeAsString()).decode("ascii"),
                  "devices": [device.id for device in executable_devices]}
        with self._lock:
            self._reads.setdefault((self._stage, cache_key), record)  # every stage that reads it
            planned = self._pending.pop(cache_key, None)
        if planned is not None:
            started = time.monotonic()
            loaded = self._claim(planned, record)
            if loaded is not None:
                self.claimed.append(module_name)
                log.info("%s: prefetched from the compilation cache (waited %.1f s)", module_name,
                         time.monotonic() - started)
                return loaded
        return self._original_read(module_name, cache_key, compile_options, backend, executable_devices)

    @staticmethod
    def _claim(planned, record: dict):
        """The prefetched (executable, compile time) when it is the very program asked for, else None."""
        plan, future = planned
        if (plan["options"], plan["devices"]) != (record["options"], record["devices"]):
            future.cancel()
            return None
        if future.cancel():
            return None  # not started yet: loading it here is sooner than waiting for the queue
        try:
            loaded = future.result()
        except Exception:  # a failed prefetch is only a lost head start; JAX's own read reports real errors
            return None
        return loaded if loaded[0] is not None else None

    # -- finishing ---------------------------------------------------------
    def finish(self) -> None:
        if private_api.cache_read() == self._read:
            private_api.set_cache_read(self._original_read)
        with self._lock:
            self._drop_pending()
            reads = list(self._reads.values())
        self._pool.shutdown(wait=False)  # a load under way finishes on its own and is dropped
        ran = {r["stage"] for r in reads}
        large = [r for r in reads if self._entry_size(r["key"]) >= PREFETCH_MIN_BYTES]
        large += [r for r in self._plan if r.get("stage") not in ran]  # stages a resumed run skipped
        if large:
            self.manifest.parent.mkdir(parents=True, exist_ok=True)
            write_json(self.manifest, {"programs": large})

    def _entry_path(self, key) -> Path:
        return self.cache_dir / f"{key}-cache"  # how JAX's file cache (its lru_cache module) names an entry

    def _entry_size(self, key: str) -> int:
        try:
            return self._entry_path(key).stat().st_size
        except OSError:
            return 0
