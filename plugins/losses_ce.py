"""``cross_entropy``: next-token cross-entropy on completion tokens only (the SFT loss).

A gather of the target logit instead of Tunix's default one-hot: with Gemma's
262k vocabulary the one-hot alone costs ~2 GB per step. For Gemma-family models the
log-probs come from ``reasonlab.logprobs`` (the head 128 positions at a time, decoder layers
rematerialised in the backward pass) instead of [B, L, V] float32 logits.
"""

from __future__ import annotations

from reasonlab import hookimpl


def completion_cross_entropy(model, input_tokens, input_mask, positions, attention_mask):
    import jax.numpy as jnp

    mask = input_mask[:, 1:].astype(jnp.float32)
    logps = next_token_logps(model, input_tokens, positions, attention_mask)
    return -jnp.sum(logps * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def next_token_logps(model, input_tokens, positions, attention_mask):
    """log p(token t+1 | tokens up to t), [B, L-1], in float32."""
    import jax
    import jax.numpy as jnp

    from reasonlab import logprobs

    if logprobs.supported(model):
        logps, _ = logprobs.sequence_logps(model, input_tokens, positions, attention_mask,
                                           input_tokens.shape[1] - 1, remat=True)
        return logps
    logits, _ = model(input_tokens, positions, None, attention_mask)
    logits = logits[:, :-1].astype(jnp.float32)
    picked = jnp.take_along_axis(logits, input_tokens[:, 1:, None], axis=-1)[..., 0]
    return picked - jax.nn.logsumexp(logits, axis=-1)


@hookimpl
def register_losses(register):
    register("cross_entropy", completion_cross_entropy)
