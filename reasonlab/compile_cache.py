"""JAX's persistent compilation cache, so a second run of a recipe skips XLA compilation.

Set by ``recipe.compilation_cache``: true (default) -> ``$REASONLAB_CACHE/xla``
(``~/.cache/reasonlab/xla``), a path -> there, false -> off. JAX keys each entry by the
program, the devices and the flags, so one folder serves every recipe and machine shape.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_path(setting: bool | str) -> Path | None:
    if setting is False:
        return None
    if setting is True:
        return Path(os.environ.get("REASONLAB_CACHE", Path.home() / ".cache" / "reasonlab")) / "xla"
    return Path(setting).expanduser()


def enable(setting: bool | str) -> Path | None:
    """Point JAX at the cache (before the first compilation). Returns the folder, or None when off."""
    path = cache_path(setting)
    if path is None:
        return None
    import jax

    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # many small programs add up
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
