"""The limit: peak matmul FLOP/s of this CPU with jnp.dot (bf16 and f32), and the model
FLOP utilisation (MFU) of a LoRA SFT step on the embedded Gemma-3-270M.

Run: python benchmarks/matmul_peak.py [--sft]   (--sft loads the embedded model, ~1 min)
"""

import sys
import time

import jax
import jax.numpy as jnp
from _common import dot_peak, write_result


results = {"bf16_flops": dot_peak(jnp.bfloat16), "f32_flops": dot_peak(jnp.float32)}
for key, value in results.items():
    print(f"{key:12s} {value / 1e9:8.1f} GFLOP/s")

if "--sft" in sys.argv:
    from reasonlab.modeling import apply_lora
    from reasonlab.plugins import get_plugins
    from reasonlab.schema import LoraSpec, ModelSpec
    from reasonlab_plugins.losses_ce import completion_cross_entropy
    from tunix.sft import utils as sft_utils
    from flax import nnx

    bundle = apply_lora(get_plugins().registry("models").get("gemma3-270m")(ModelSpec(preset="gemma3-270m")),
                        LoraSpec(rank=8, alpha=16.0), 0)
    batch, length = 4, 256
    tokens = jnp.ones((batch, length), jnp.int32)
    mask = jnp.ones((batch, length), jnp.int32)
    positions = sft_utils.build_positions_from_mask(tokens != 0)
    attention = sft_utils.make_causal_attn_mask(tokens != 0)

    @nnx.jit
    def step(model):
        grad = nnx.grad(completion_cross_entropy, argnums=nnx.DiffState(0, nnx.LoRAParam))
        return grad(model, tokens, mask, positions, attention)

    jax.block_until_ready(step(bundle.model))
    start = time.perf_counter()
    for _ in range(3):
        jax.block_until_ready(step(bundle.model))
    seconds = (time.perf_counter() - start) / 3
    params = sum(x.size for x in jax.tree.leaves(nnx.state(bundle.base, nnx.Param)))
    # forward 2N + backward through activations 2N (frozen weights need no weight gradients)
    flops = 4 * params * batch * length
    results |= {"sft_step_seconds": seconds, "sft_flops": flops / seconds, "mfu_bf16": flops / seconds / results["bf16_flops"]}
    print(f"LoRA SFT step 4x256: {seconds:.2f} s, {flops / seconds / 1e9:.1f} GFLOP/s, "
          f"MFU {results['mfu_bf16']:.1%} of the bf16 matmul peak")
write_result("matmul_peak", results)
