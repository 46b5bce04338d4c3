"""What machine a figure was measured on: the CPU's model and its vector kind, and the
process's peak memory. XLA:CPU's speed and even a tiny model's trained numbers differ between
CPUs with native bf16 dots (AVX-512 BF16), AVX-512 without them, and AVX2 only, so every run
records which (``environment.json``) and every published figure names it."""

from __future__ import annotations

import platform
import resource
from pathlib import Path


def _cpuinfo() -> str:
    return Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""


def cpu_flags(info: str | None = None) -> set[str]:
    info = _cpuinfo() if info is None else info
    return set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))


def vector_kind(flags: set[str]) -> str:
    if "avx512_bf16" in flags or "amx_bf16" in flags:
        return "AVX-512 + bf16"
    return "AVX-512, no bf16" if "avx512f" in flags else "AVX2 only" if "avx2" in flags else platform.machine()


def cpu_kind() -> str:
    """E.g. "AMD EPYC (AVX-512 + bf16)" or "Intel Xeon @ 2.80GHz (AVX-512, no bf16)"."""
    info = _cpuinfo()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.processor() or platform.machine())
    return f"{model} ({vector_kind(cpu_flags(info))})"


def auto_dtype(flags: set[str] | None = None) -> str:
    """The parameter dtype a model preset's ``dtype = "auto"`` picks for this CPU.

    float32 on AVX2-only x86 CPUs, where XLA:CPU emulates bf16 dots (an AMD EPYC Zen 3:
    ``jnp.dot`` 36 GFLOP/s in bf16 against 59 in float32, ../shared/TUNIX-NOTES.md); bfloat16
    with AVX-512 (on an AVX-512 VM with native bf16, LoRA SFT of the embedded model ran ~2.2x
    faster in bf16 than in float32 at lower peak memory — the memory traffic halves even
    where the dot itself is not faster; AVX-512 without bf16 dots is not measured and keeps
    bf16, the earlier default) and off x86. benchmarks/README.md has the figures per CPU kind."""
    flags = cpu_flags() if flags is None else flags
    if "avx2" in flags and "avx512f" not in flags:
        return "float32"
    return "bfloat16"


def peak_rss_gb() -> float:
    """The process's peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def resolve_dtype(name: str | None, unset: str = "auto", flags: set[str] | None = None) -> str:
    """``model.dtype`` as a loader uses it: "float32" or "bfloat16"; None is the preset's
    ``unset`` default, "auto" is ``auto_dtype()``."""
    name = unset if name is None else name
    return auto_dtype(flags) if name == "auto" else name
