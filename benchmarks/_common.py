"""Helpers shared by the benchmark scripts: timing and a JSON result next to the script."""

from __future__ import annotations

import json
import platform
import time
from datetime import date
from pathlib import Path


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def dot_peak(dtype, n: int = 2048, repeat: int = 5) -> float:
    """Best FLOP/s of a jitted n x n ``jnp.dot`` in ``dtype`` (a jnp dtype or its name)."""
    import jax
    import jax.numpy as jnp

    dtype = getattr(jnp, dtype) if isinstance(dtype, str) else dtype
    a, b = jnp.ones((n, n), dtype), jnp.ones((n, n), dtype)
    dot = jax.jit(jnp.dot)
    dot(a, b).block_until_ready()
    return 2 * n ** 3 / best_of(lambda: dot(a, b).block_until_ready(), repeat)


def write_result(name: str, result: dict) -> Path:
    out = Path(__file__).parent / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    payload = {"date": date.today().isoformat(), "machine": platform.platform(), "processor": platform.processor(),
               **result}
    out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {out}")
    return out


def compare_interleaved(name: str, label: str, ours, raw, rounds: int, steps: int, target: float = 1.03) -> float:
    """Run ``ours()`` and ``raw()`` (seconds per step) alternately ``rounds`` times; print and record medians."""
    import statistics

    ours_runs, raw_runs = [], []
    for _ in range(rounds):
        ours_runs.append(ours())
        raw_runs.append(raw())
    ratio = statistics.median(ours_runs) / statistics.median(raw_runs)
    print(f"{label}, median of {rounds}: reasonlab {statistics.median(ours_runs) * 1000:.2f} ms/step "
          f"{[round(x * 1000, 1) for x in ours_runs]}, raw Tunix {statistics.median(raw_runs) * 1000:.2f} ms/step "
          f"{[round(x * 1000, 1) for x in raw_runs]} -> ratio {ratio:.3f} "
          f"({'OK' if ratio <= target else f'OVER {target}'})")
    write_result(name, {"steps": steps, "rounds": rounds, "reasonlab_seconds_per_step": ours_runs,
                        "tunix_seconds_per_step": raw_runs, "ratio": ratio})
    return ratio


def load_bundle(preset: str):
    """The plain-Tunix side's model in the overhead scripts, as their recipes configure it:
    the tiny model for full fine-tuning, any other preset with LoRA rank 8 (alpha 16)."""
    from reasonlab.modeling import apply_lora
    from reasonlab.schema import LoraSpec, ModelSpec
    from reasonlab_plugins.models_gemma import load as load_gemma
    from reasonlab_plugins.models_tiny import load as load_tiny

    if preset == "tiny":
        return load_tiny(ModelSpec(preset="tiny"))
    return apply_lora(load_gemma(ModelSpec(preset=preset)), LoraSpec(rank=8, alpha=16.0), seed=0)
