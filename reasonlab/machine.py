"""What machine a figure was measured on: the CPU's model and its vector kind, and the
process's peak memory. XLA:CPU's speed and even a tiny model's trained numbers differ between
CPUs with native bf16 dots (AVX-512 BF16), AVX-512 without them, and AVX2 only, so every run
records which (``environment.json``) and every published figure names it."""

from __future__ import annotations

import platform
import resource
from pathlib import Path


def cpu_kind() -> str:
    """E.g. "AMD EPYC (AVX-512 + bf16)" or "Intel Xeon @ 2.80GHz (AVX-512, no bf16)"."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.processor() or platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    kind = ("AVX-512 + bf16" if "avx512_bf16" in flags else "AVX-512, no bf16" if "avx512f" in flags
            else "AVX2 only" if "avx2" in flags else platform.machine())
    return f"{model} ({kind})"


def peak_rss_gb() -> float:
    """The process's peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
