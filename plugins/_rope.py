"""Rotary embeddings as the checkpoint defines them, for Tunix 0.1.7's Qwen3 and Llama 3.

Tunix's Qwen3 and Llama 3 attention call their module's ``apply_rope`` without the config's
``rope_theta`` (so every checkpoint gets the default 1e6; Llama 3.2's is 5e5) and Llama 3 with
no ``rope_scaling`` (Llama 3.2 divides its low frequencies by up to 32). A model loaded from a
checkpoint gets attention layers that name their settings while they run (a context variable,
set for the duration of one attention block, read by the routed ``apply_rope``), so the model
computes what transformers and llama.cpp compute for the same weights. Models that did not
opt in (another family's, Tunix's own tests) run the original function unchanged.
"""

from __future__ import annotations

import contextvars
import functools

import numpy as np

_SETTINGS = contextvars.ContextVar("reasonlab_rope", default=None)


def checkpoint_rope(model, family: str, theta: float, divisors: np.ndarray | None = None):
    """``model`` (Tunix's, of ``family``) with every attention layer using ``theta`` and, where
    given, a divisor per rotary frequency (Llama 3's rope_scaling, ``rope_freqs``). In place."""
    from reasonlab import private_api

    private_api.route_rope(family, _router)
    cls = _attention(family)
    for layer in model.layers:
        attention = private_api.reclass(layer.attn, cls)
        attention.rope_theta = float(theta)
        attention.rope_divisors = None if divisors is None else tuple(float(d) for d in divisors)
    return model


@functools.cache
def _attention(family: str):
    from reasonlab import private_api

    base = private_api.attention_class(family)

    def block(self, *args, **kwargs):
        token = _SETTINGS.set((self.rope_theta, self.rope_divisors))
        try:
            return base.block(self, *args, **kwargs)
        finally:
            _SETTINGS.reset(token)

    return type(f"CheckpointRope{base.__name__}", (base,), {"block": block, "__module__": __name__})


def _router(original):
    def apply_rope(inputs, positions, head_dim, rope_theta=None):
        settings = _SETTINGS.get()
        if settings is None:
            return original(inputs, positions, head_dim) if rope_theta is None else original(
                inputs, positions, head_dim, rope_theta)
        theta, divisors = settings
        if divisors is None:
            return original(inputs, positions, head_dim, theta)
        return _scaled_rope(inputs, positions, head_dim, theta, divisors)

    apply_rope.original = original
    return apply_rope


def _scaled_rope(inputs, positions, head_dim: int, theta: float, divisors: tuple):
    """RoPE in the half-split layout Tunix and transformers use, each frequency divided by its
    divisor (timescale multiplied), in float32 like Tunix's Llama."""
    import jax.numpy as jnp

    fraction = 2 * jnp.arange(0, head_dim // 2, dtype=jnp.float32) / head_dim
    timescale = theta ** fraction * jnp.asarray(divisors, dtype=jnp.float32)
    angle = positions[..., None, None].astype(jnp.float32) / timescale  # [B, L, 1, H/2]
    first, second = jnp.split(inputs, 2, axis=-1)
    sin, cos = jnp.sin(angle), jnp.cos(angle)
    return jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1).astype(inputs.dtype)
