"""Per-token log-probabilities of completions without the full-vocabulary logits.

Tunix's ``common.compute_per_token_logps`` runs the whole model, which projects *every*
position (prompt included) onto the vocabulary, then keeps the completion's positions and
takes a float32 log-softmax of them. With Gemma 3's 262,144-token vocabulary that head is
the largest matmul of the model, and its float32 logits and their gradient dominate the
peak memory of a GRPO or preference step (2 prompts x 4 samples x 160 tokens: 1.3 GB per
copy).

Here the model runs up to its final norm only; the head is applied to the completion's
positions alone, a chunk of tokens at a time, under ``jax.checkpoint`` so the backward pass
recomputes a chunk's logits instead of keeping all of them — or, when the head is frozen
(LoRA), with the gradient for the hidden states formed in the forward pass (a custom VJP:
no recomputation). Same values as Tunix's function (to float rounding: the head
accumulates in float32 here), a fraction of the memory, and fewer FLOPs.

Under a gradient, ``remat=True`` also rematerialises each decoder layer (Tunix's
``RematConfig.DECODER``, switched on for this forward pass only, so the rollout's model is
untouched): the backward pass keeps each layer's input and recomputes the rest. On CPU,
where XLA computes bfloat16 layers in float32, the stored activations are otherwise ~90 MB
per layer for 1,280 tokens (1.6 GB for Gemma 3 270M's 18 layers); with remat the GRPO
step's temporaries drop from 2.3 to 1.1 GB for ~10 % more time. XLA's concurrency-optimised
CPU scheduler hoists the recomputation back to the forward pass, which undoes the saving;
``reasonlab.xla_defaults`` turns it off.

Works for models whose ``__call__`` takes ``output_hidden_states`` and sows the final
hidden states, with a tied ``embedder.input_embedding`` head: Tunix's Gemma family, which
reasonlab's model presets use. ``supported(model)`` says whether a model qualifies;
callers fall back to Tunix's function otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect

CHUNK_TOKENS = 128  # (128 x 262k) float32 logits = 134 MB live at a time


def supported(model) -> bool:
    embedder = getattr(model, "embedder", None)
    if embedder is None or not hasattr(embedder, "input_embedding"):
        return False
    if getattr(model, "lm_head", None) is not None:  # an untied head (Qwen 7B, ...): not the embedding
        return False
    try:
        return "output_hidden_states" in inspect.signature(model.__call__).parameters
    except (TypeError, ValueError):
        return False


@contextlib.contextmanager
def layer_remat(model):
    """Tunix's per-decoder-layer remat (``remat_config = DECODER``) for the calls made
    inside; a no-op for models whose layers have no such setting."""
    layers = [layer for layer in getattr(model, "layers", ())
              if hasattr(type(getattr(getattr(layer, "config", None), "remat_config", None)), "DECODER")]
    saved = [layer.config for layer in layers]
    for layer in layers:
        layer.config = dataclasses.replace(layer.config, remat_config=type(layer.config.remat_config).DECODER)
    try:
        yield
    finally:
        for layer, config in zip(layers, saved):
            layer.config = config


def final_hidden_states(model, tokens, positions, attention_mask, remat: bool = False):
    """Hidden states after the final norm, [B, L, D]. The model's own logits are never used,
    so XLA drops the full-sequence head from the compiled program."""
    import jax
    from flax import nnx

    with layer_remat(model) if remat else contextlib.nullcontext():
        model(tokens, positions=positions, cache=None, attention_mask=attention_mask, output_hidden_states=True)
    (hidden,) = jax.tree.leaves(nnx.pop(model, nnx.Intermediate))
    return hidden


def token_logps(hidden, targets, embedding, temperature: float = 1.0, chunk_tokens: int = CHUNK_TOKENS,
                frozen_head: bool = False):
    """log p(target) and the entropy (no gradient) at each position, [B, K] each.

    ``hidden`` [B, K, D] are the states that predict ``targets`` [B, K]; ``embedding``
    [V, D] is the tied output head. ``frozen_head=True`` (the head gets no gradient, as
    under LoRA) computes the gradient for ``hidden`` in the forward pass instead of
    recomputing the chunk's logits in the backward pass: two vocabulary-wide matmuls per
    chunk instead of three.
    """
    import jax
    import jax.numpy as jnp

    batch, length, width = hidden.shape
    total = batch * length
    chunk = min(chunk_tokens, total)
    padding = (-total) % chunk
    flat_hidden = jnp.pad(hidden.reshape(total, width), ((0, padding), (0, 0)))
    flat_targets = jnp.pad(targets.reshape(total), (0, padding))
    one_chunk = _frozen_head_chunk(temperature) if frozen_head else _recomputed_chunk(temperature)
    logps, entropy = jax.lax.map(lambda args: one_chunk(*args, embedding),
                                 (flat_hidden.reshape(-1, chunk, width), flat_targets.reshape(-1, chunk)))
    return logps.reshape(-1)[:total].reshape(batch, length), entropy.reshape(-1)[:total].reshape(batch, length)


def _chunk_logps(states, ids, embedding, temperature):
    """log p(ids), the entropy and the probabilities of one chunk, in float32."""
    import jax
    import jax.numpy as jnp

    logits = jnp.dot(states, embedding.T, preferred_element_type=jnp.float32)
    if temperature not in (0.0, 1.0):
        logits = logits / temperature
    normalizer = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, ids[:, None], axis=-1)[:, 0]
    probs = jnp.exp(jax.lax.stop_gradient(logits - normalizer[:, None]))
    entropy = jax.lax.stop_gradient(normalizer - jnp.sum(probs * logits, axis=-1))
    return picked - normalizer, entropy, probs


def _recomputed_chunk(temperature):
    import jax

    @jax.checkpoint  # the backward pass recomputes this chunk's logits instead of storing them
    def one_chunk(states, ids, embedding):
        logps, entropy, _ = _chunk_logps(states, ids, embedding, temperature)
        return logps, entropy

    return one_chunk


def _frozen_head_chunk(temperature):
    import jax
    import jax.numpy as jnp

    @jax.custom_vjp
    def one_chunk(states, ids, embedding):
        logps, entropy, _ = _chunk_logps(states, ids, embedding, temperature)
        return logps, entropy

    def forward(states, ids, embedding):
        logps, entropy, probs = _chunk_logps(states, ids, embedding, temperature)
        # d log p(t) / d state = (E[t] - sum_v p(v) E[v]) / temperature
        expected = jnp.dot(probs, embedding, preferred_element_type=jnp.float32)
        direction = (embedding[ids].astype(jnp.float32) - expected) / (temperature or 1.0)
        return (logps, entropy), (direction, jnp.zeros((0,), states.dtype))

    def backward(residuals, cotangents):
        direction, dtype_of_states = residuals
        d_logps, _ = cotangents  # the entropy is reported, never differentiated
        return (d_logps[:, None] * direction).astype(dtype_of_states.dtype), None, None

    one_chunk.defvjp(forward, backward)
    return one_chunk


def sequence_logps(model, tokens, positions, attention_mask, keep: int, temperature: float = 1.0,
                   remat: bool = False):
    """Log-probs (and entropies) of the last ``keep`` tokens of each row given what precedes
    them, [B, keep] each. Under LoRA the tied head is frozen, which ``token_logps`` exploits."""
    from tunix.sft import utils as sft_utils

    hidden = final_hidden_states(model, tokens, positions, attention_mask, remat)[:, -keep - 1 : -1]
    return token_logps(hidden, tokens[:, -keep:], model.embedder.input_embedding.value, temperature,
                       frozen_head=sft_utils.is_lora_enabled(model))


def completion_logps(model, prompt_tokens, completion_tokens, pad_id: int, eos_id: int, temperature: float = 1.0,
                     remat: bool = False):
    """Per-token log-probs (and entropies) of ``completion_tokens`` after ``prompt_tokens``,
    [B, K] each — the quantities Tunix's ``compute_per_token_logps`` gives, without the
    [B, L, V] logits."""
    from tunix.rl import common

    tokens, positions, attention_mask, _ = common.process_ids(prompt_tokens, completion_tokens, pad_id, eos_id)
    return sequence_logps(model, tokens, positions, attention_mask, completion_tokens.shape[1], temperature, remat)


@functools.cache
def _jitted_reference():
    import jax
    from flax import nnx

    # A plain jax.jit over (graphdef, state): nnx.jit would write the model's state back
    # as fresh arrays after every call, so a reference that shares the actor's frozen
    # backbone would end up holding a second copy of it.
    @functools.partial(jax.jit, static_argnames=("pad_id", "eos_id", "temperature"))
    def reference_logps(graphdef, state, prompt_tokens, completion_tokens, pad_id, eos_id, temperature=1.0):
        model = nnx.merge(graphdef, state)
        logps, _ = completion_logps(model, prompt_tokens, completion_tokens, pad_id, eos_id, temperature)
        return logps

    return reference_logps


def reference_logps(model, prompt_tokens, completion_tokens, pad_id: int, eos_id: int, temperature: float = 1.0):
    """Frozen-model log-probs (no gradient), compiled once per shape."""
    import jax
    from flax import nnx

    graphdef, state = nnx.split(model)
    logps = _jitted_reference()(graphdef, state, prompt_tokens, completion_tokens, pad_id=pad_id, eos_id=eos_id,
                                temperature=temperature)
    return jax.lax.stop_gradient(logps)
