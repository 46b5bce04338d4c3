"""Per-token log-probabilities of completions without the full-vocabulary logits.

Tunix's ``common.compute_per_token_logps`` runs the whole model, which projects *every*
position (prompt included) onto the vocabulary, then keeps the completion's positions and
takes a float32 log-softmax of them. With Gemma 3's 262,144-token vocabulary that head is
the largest matmul of the model, and its float32 logits and their gradient dominate the
peak memory of a GRPO or preference step (2 prompts x 4 samples x 160 tokens: 1.3 GB per
copy).

Here the model runs up to its final norm only; the head is applied to the completion's
positions alone, a chunk of tokens at a time, under ``jax.checkpoint`` so the backward pass
recomputes a chunk's logits instead of keeping all of them. Same values as Tunix's
function (to float rounding: the head accumulates in float32 here), a fraction of the
memory, and fewer FLOPs.

Works for models whose ``__call__`` takes ``output_hidden_states`` and sows the final
hidden states, with a tied ``embedder.input_embedding`` head: Tunix's Gemma family, which
reasonlab's model presets use. ``supported(model)`` says whether a model qualifies;
callers fall back to Tunix's function otherwise.
"""

from __future__ import annotations

import functools
import inspect

CHUNK_TOKENS = 128  # (128 x 262k) float32 logits = 134 MB live at a time


def supported(model) -> bool:
    embedder = getattr(model, "embedder", None)
    if embedder is None or not hasattr(embedder, "input_embedding"):
        return False
    try:
        return "output_hidden_states" in inspect.signature(model.__call__).parameters
    except (TypeError, ValueError):
        return False


def final_hidden_states(model, tokens, positions, attention_mask):
    """Hidden states after the final norm, [B, L, D]. The model's own logits are never used,
    so XLA drops the full-sequence head from the compiled program."""
    import jax
    from flax import nnx

    model(tokens, positions=positions, cache=None, attention_mask=attention_mask, output_hidden_states=True)
    (hidden,) = jax.tree.leaves(nnx.pop(model, nnx.Intermediate))
    return hidden


def token_logps(hidden, targets, embedding, temperature: float = 1.0, chunk_tokens: int = CHUNK_TOKENS):
    """log p(target) and the entropy (no gradient) at each position, [B, K] each.

    ``hidden`` [B, K, D] are the states that predict ``targets`` [B, K]; ``embedding``
    [V, D] is the tied output head.
    """
    import jax
    import jax.numpy as jnp

    batch, length, width = hidden.shape
    total = batch * length
    chunk = min(chunk_tokens, total)
    padding = (-total) % chunk
    flat_hidden = jnp.pad(hidden.reshape(total, width), ((0, padding), (0, 0)))
    flat_targets = jnp.pad(targets.reshape(total), (0, padding))

    @jax.checkpoint  # the backward pass recomputes this chunk's logits instead of storing them
    def one_chunk(args):
        states, ids = args
        logits = jnp.dot(states, embedding.T, preferred_element_type=jnp.float32)
        if temperature not in (0.0, 1.0):
            logits = logits / temperature
        normalizer = jax.nn.logsumexp(logits, axis=-1)
        picked = jnp.take_along_axis(logits, ids[:, None], axis=-1)[:, 0]
        frozen = jax.lax.stop_gradient(logits)
        probs = jax.nn.softmax(frozen, axis=-1)
        entropy = jax.lax.stop_gradient(normalizer) - jnp.sum(probs * frozen, axis=-1)
        return picked - normalizer, entropy

    logps, entropy = jax.lax.map(one_chunk, (flat_hidden.reshape(-1, chunk, width), flat_targets.reshape(-1, chunk)))
    return logps.reshape(-1)[:total].reshape(batch, length), entropy.reshape(-1)[:total].reshape(batch, length)


def sequence_logps(model, tokens, positions, attention_mask, keep: int, temperature: float = 1.0):
    """Log-probs (and entropies) of the last ``keep`` tokens of each row given what precedes
    them, [B, keep] each."""
    hidden = final_hidden_states(model, tokens, positions, attention_mask)[:, -keep - 1 : -1]
    return token_logps(hidden, tokens[:, -keep:], model.embedder.input_embedding.value, temperature)


def completion_logps(model, prompt_tokens, completion_tokens, pad_id: int, eos_id: int, temperature: float = 1.0):
    """Per-token log-probs (and entropies) of ``completion_tokens`` after ``prompt_tokens``,
    [B, K] each — the quantities Tunix's ``compute_per_token_logps`` gives, without the
    [B, L, V] logits."""
    from tunix.rl import common

    tokens, positions, attention_mask, _ = common.process_ids(prompt_tokens, completion_tokens, pad_id, eos_id)
    return sequence_logps(model, tokens, positions, attention_mask, completion_tokens.shape[1], temperature)


@functools.cache
def _jitted_reference():
    from flax import nnx

    @nnx.jit(static_argnames=("pad_id", "eos_id", "temperature"))
    def reference_logps(model, prompt_tokens, completion_tokens, pad_id, eos_id, temperature=1.0):
        logps, _ = completion_logps(model, prompt_tokens, completion_tokens, pad_id, eos_id, temperature)
        return logps

    return reference_logps


def reference_logps(model, prompt_tokens, completion_tokens, pad_id: int, eos_id: int, temperature: float = 1.0):
    """Frozen-model log-probs (no gradient), compiled once per shape."""
    import jax

    logps = _jitted_reference()(model, prompt_tokens, completion_tokens, pad_id=pad_id, eos_id=eos_id,
                                temperature=temperature)
    return jax.lax.stop_gradient(logps)
