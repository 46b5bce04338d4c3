"""The machine's limits and what they allow: sustained memory bandwidth (a STREAM-like triad,
in numpy and in JAX), the ``jnp.dot`` peak, and from them the lower bound of a decode step
and of a LoRA train step of the embedded Gemma-3-270M at the benchmarks' shapes.

    python benchmarks/bandwidth.py [--measured-tokens-per-second X]

A decode step of B sequences must read every weight once (the backbone and the 262k-row
head, which is the tied embedding) and do 2 FLOPs per parameter per sequence; its time is at
least max(bytes / bandwidth, FLOPs / peak). A LoRA train step over T tokens does ~4·N·T FLOPs
(forward, and the activation gradients through the frozen backbone; the adapters' weight
gradients are small), so its bound is compute. ``--measured-tokens-per-second`` (a rollout's
figure from another benchmark) is compared with the decode bound.
"""

import argparse

import numpy as np
from _common import best_of, dot_peak, write_result

# Gemma-3-270M (tunix ModelConfig.gemma3_270m): vocabulary, width, layers, MLP width, heads
VOCAB, EMBED, LAYERS, HIDDEN, HEADS, KV_HEADS, HEAD_DIM = 262_144, 640, 18, 2048, 4, 1, 256


def parameters() -> tuple[int, int]:
    """(backbone, embedding) parameter counts."""
    attention = EMBED * HEADS * HEAD_DIM * 2 + EMBED * KV_HEADS * HEAD_DIM * 2  # q, o; k, v
    mlp = 3 * EMBED * HIDDEN
    return LAYERS * (attention + mlp), VOCAB * EMBED


BYTES = {"bfloat16": 2, "float32": 4}


def decode_bound(dtype: str, batch: int, bandwidth: float, peak: float) -> tuple[float, float]:
    """(memory, compute) seconds of one decode step of ``batch`` sequences: every weight read
    once at ``bandwidth`` bytes/s, 2 FLOPs per weight per sequence at ``peak`` FLOP/s."""
    total = sum(parameters())
    return total * BYTES[dtype] / bandwidth, 2 * total * batch / peak


def triad_numpy(n: int, repeat: int = 5) -> float:
    """Bytes per second of a = b + s·c in float32, counting what numpy really moves: it makes two
    passes (c read, a written; then a and b read, a written), five arrays of n."""
    a, b, c = np.zeros(n, np.float32), np.ones(n, np.float32), np.ones(n, np.float32)

    def triad():
        np.multiply(c, 3.0, out=a)
        np.add(a, b, out=a)

    return 5 * 4 * n / best_of(triad, repeat)


def triad_jax(n: int, repeat: int = 5) -> float:
    """The same in one fused XLA pass: two arrays read, one written."""
    import jax
    import jax.numpy as jnp

    b, c = jnp.ones(n, jnp.float32), jnp.ones(n, jnp.float32)
    triad = jax.jit(lambda b, c: b + 3.0 * c)
    triad(b, c).block_until_ready()
    return 3 * 4 * n / best_of(lambda: triad(b, c).block_until_ready(), repeat)


def main() -> None:
    from reasonlab.machine import cpu_kind

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measured-tokens-per-second", type=float, help="a rollout's tokens/s to compare")
    parser.add_argument("--batch", type=int, default=8, help="sequences per decode step (2 prompts x 4)")
    parser.add_argument("--train-tokens", type=int, default=4 * 256, help="tokens of the LoRA train step")
    args = parser.parse_args()
    n = 64 * 2 ** 20  # 256 MB per array: far beyond the caches
    bandwidth = {"numpy": triad_numpy(n), "jax": triad_jax(n)}
    peaks = {d: dot_peak(d) for d in ("bfloat16", "float32")}
    backbone, embedding = parameters()
    total = backbone + embedding
    print(f"CPU: {cpu_kind()}")
    for name, value in bandwidth.items():
        print(f"triad bandwidth ({name:5s}) {value / 1e9:7.1f} GB/s")
    for name, value in peaks.items():
        print(f"jnp.dot peak ({name:8s}) {value / 1e9:7.1f} GFLOP/s")
    result = {"cpu": cpu_kind(), "bandwidth_bytes_per_s": bandwidth, "dot_flops": peaks,
              "parameters": {"backbone": backbone, "embedding": embedding}}
    best_bw = max(bandwidth.values())
    for dtype, size in BYTES.items():
        weight_bytes, flops = total * size, 2 * total * args.batch
        memory_s, compute_s = decode_bound(dtype, args.batch, best_bw, peaks[dtype])
        bound = max(memory_s, compute_s)
        tokens = args.batch / bound
        print(f"decode step, {args.batch} sequences, {dtype}: weights {weight_bytes / 1e9:.2f} GB -> "
              f"{memory_s * 1000:.1f} ms; {flops / 1e9:.1f} GFLOP -> {compute_s * 1000:.1f} ms; "
              f"bound {bound * 1000:.1f} ms = {tokens:.0f} tokens/s")
        result[f"decode_bound_{dtype}"] = {"ms": bound * 1000, "tokens_per_second": tokens,
                                           "memory_ms": memory_s * 1000, "compute_ms": compute_s * 1000}
        if args.measured_tokens_per_second:
            ratio = tokens / args.measured_tokens_per_second
            print(f"  measured {args.measured_tokens_per_second:.1f} tokens/s: {ratio:.1f}x below the {dtype} bound")
            result[f"decode_bound_{dtype}"]["measured_over_bound"] = 1 / ratio
        train_flops = 4 * total * args.train_tokens
        print(f"LoRA train step, {args.train_tokens} tokens, {dtype}: {train_flops / 1e9:.0f} GFLOP -> "
              f"{train_flops / peaks[dtype]:.2f} s at the dot peak")
        result[f"train_bound_{dtype}_s"] = train_flops / peaks[dtype]
    write_result("bandwidth", result)


if __name__ == "__main__":
    main()
