"""The CPU a figure was measured on, and the dtype the embedded model picks for it."""

from __future__ import annotations

from reasonlab.machine import auto_dtype, cpu_flags, cpu_kind, peak_rss_gb, vector_kind

ICE_LAKE = {"sse4_2", "avx2", "avx512f", "avx512bw", "avx512_vnni"}  # AVX-512 without bf16 dots
EPYC_ZEN4 = ICE_LAKE | {"avx512_bf16"}
EPYC_AVX2 = {"sse4_2", "avx2", "fma"}


def test_each_cpu_kind_is_named_and_gets_its_dtype():
    assert [vector_kind(f) for f in (EPYC_ZEN4, ICE_LAKE, EPYC_AVX2)] == \
        ["AVX-512 + bf16", "AVX-512, no bf16", "AVX2 only"]
    assert [auto_dtype(f) for f in (EPYC_ZEN4, ICE_LAKE, EPYC_AVX2)] == ["bfloat16", "bfloat16", "float32"]
    assert auto_dtype({"asimd", "sve"}) == "bfloat16"  # not x86: the old default


def test_this_machine():
    info = "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 avx512f\n"
    assert cpu_flags(info) == {"fpu", "avx2", "avx512f"}
    assert "(" in cpu_kind() and cpu_kind().endswith(")")
    assert auto_dtype() in ("bfloat16", "float32")
    assert 0 < peak_rss_gb() < 1000


def test_what_the_loaders_resolve():
    """The embedded preset reads an unset dtype as "auto"; checkpoint presets as bfloat16."""
    from reasonlab.machine import resolve_dtype

    assert resolve_dtype(None, unset="auto", flags=EPYC_AVX2) == "float32"
    assert resolve_dtype(None, unset="auto", flags=EPYC_ZEN4) == "bfloat16"
    assert resolve_dtype(None, unset="bfloat16", flags=EPYC_AVX2) == "bfloat16"
    assert resolve_dtype("auto", unset="bfloat16", flags=EPYC_AVX2) == "float32"
    assert resolve_dtype("float32", flags=EPYC_ZEN4) == "float32"
