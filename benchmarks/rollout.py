"""The rollout alone: Tunix's sampler on the embedded Gemma-3-270M, as a GRPO stage calls it
(8 sequences = 2 prompts x 4, ~60-token prompts, 64 new tokens), split into prefill and decode
steps, beside the decode bound of benchmarks/bandwidth.py (the larger of the weights' read
time at the triad bandwidth and the FLOPs at the ``jnp.dot`` peak).

    python benchmarks/rollout.py [--dtype auto|bfloat16|float32] [--sampling top_k50_top_p0.9|full|greedy]
                                 [--plain-prefill]

A call with one new token times the prefill (and its first sample); a call with N new tokens
minus it, over N-1, is one decode step. Every call is repeated (best of 3) after a compiling
call. Set XLA_FLAGS in the environment to probe a compiler option.
"""

from __future__ import annotations

import argparse
import os
import time

from _common import dot_peak, write_result
from bandwidth import decode_bound, triad_numpy

SAMPLING = {"top_k50_top_p0.9": {"top_k": 50, "top_p": 0.9}, "full": {"top_k": None, "top_p": 1.0},
            "greedy": {"top_k": 1, "top_p": None}}
GROUP = 4  # generations per prompt, as the benchmark's GRPO stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=["auto", "bfloat16", "float32"], default="auto")
    parser.add_argument("--sampling", choices=list(SAMPLING), default="top_k50_top_p0.9")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--plain-prefill", action="store_true",
                        help=f"Tunix's prefill of every row (default: each prompt once for its {GROUP} rows, as GRPO does)")
    args = parser.parse_args()

    from reasonlab import private_api
    from reasonlab.data import render_prompt
    from reasonlab.machine import cpu_kind, peak_rss_gb, resolve_dtype
    from reasonlab.sampling import Generator
    from reasonlab.schema import DataSpec, ModelSpec
    from reasonlab_plugins.datasets_arithmetic import generate
    from reasonlab_plugins.models_gemma import load

    dtype = resolve_dtype(args.dtype)
    bundle = load(ModelSpec(preset="gemma3-270m", dtype=dtype))
    spec = DataSpec(source="arithmetic")
    prompts = [render_prompt(r, spec) for r in generate(n=args.batch // GROUP or 1, seed=11)]
    prompts = [p for p in prompts for _ in range(GROUP)][: args.batch]
    sampling = SAMPLING[args.sampling]

    def best(new_tokens: int) -> tuple[float, int]:
        if new_tokens not in timers:
            timers[new_tokens] = Generator(bundle, 96, new_tokens, batch_size=args.batch)
            if not args.plain_prefill:
                private_api.shared_prompt_sampler(timers[new_tokens].sampler, GROUP)
        generator = timers[new_tokens]
        times = []
        for attempt in range(args.repeat + 1):  # the first call compiles
            start = time.perf_counter()
            texts, _ = generator(prompts, temperature=0.7, seed=attempt, **sampling)
            times.append(time.perf_counter() - start)
        return min(times[1:]), sum(len(bundle.tokenizer.encode(t)) for t in texts)

    timers: dict[int, Generator] = {}
    prefill, _ = best(1)
    total, generated = best(args.new_tokens)
    decode_step = (total - prefill) / (args.new_tokens - 1)
    bound = max(decode_bound(dtype, args.batch, triad_numpy(64 * 2 ** 20), dot_peak(dtype)))
    print(f"CPU: {cpu_kind()}; dtype {dtype}; sampling {args.sampling}; "
          f"prefill {'plain' if args.plain_prefill else f'shared by each {GROUP}'}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    print(f"prefill + first token: {prefill * 1000:.0f} ms; {args.new_tokens} tokens: {total:.2f} s "
          f"({generated} tokens decoded back)")
    print(f"decode step ({args.batch} sequences): {decode_step * 1000:.1f} ms = {args.batch / decode_step:.0f} tokens/s; "
          f"bound (weights read once, dots at the jnp.dot peak) {bound * 1000:.1f} ms: {decode_step / bound:.2f}x the bound; "
          f"whole call {args.batch * args.new_tokens / total:.0f} tokens/s; peak RSS {peak_rss_gb():.2f} GB")
    write_result(f"rollout_{dtype}_{args.sampling}{'_plain' if args.plain_prefill else ''}", {
        "plain_prefill": args.plain_prefill,
        "cpu": cpu_kind(), "dtype": dtype, "sampling": args.sampling, "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "batch": args.batch, "new_tokens": args.new_tokens, "prefill_ms": prefill * 1000,
        "decode_step_ms": decode_step * 1000, "bound_ms": bound * 1000, "over_bound": decode_step / bound,
        "call_seconds": total, "peak_rss_gb": peak_rss_gb()})


if __name__ == "__main__":
    main()
