"""``cross_entropy``: next-token cross-entropy on completion tokens only (the SFT loss).

A gather of the target logit instead of Tunix's default one-hot: with Gemma's
262k vocabulary the one-hot alone costs ~2 GB per step.
"""

from __future__ import annotations

from reasonlab import hookimpl


def completion_cross_entropy(model, input_tokens, input_mask, positions, attention_mask):
    import jax
    import jax.numpy as jnp

    logits, _ = model(input_tokens, positions, None, attention_mask)
    logits = logits[:, :-1].astype(jnp.float32)
    targets = input_tokens[:, 1:]
    mask = input_mask[:, 1:].astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return jnp.sum((log_z - picked) * mask) / jnp.maximum(jnp.sum(mask), 1.0)


@hookimpl
def register_losses(register):
    register("cross_entropy", completion_cross_entropy)
