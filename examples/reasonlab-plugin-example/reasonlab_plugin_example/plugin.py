"""Registers one reward and one loss through reasonlab's public hooks."""

from __future__ import annotations

from reasonlab import hookimpl
from reasonlab.format import parse_completion


def brevity(prompts, completions, max_words: int = 60, **columns) -> list[float]:
    """1.0 for well-formed completions with short reasoning, falling to 0 at 2 x max_words."""
    scores = []
    for text in completions:
        parsed = parse_completion(text)
        if not parsed.strict:
            scores.append(0.0)
            continue
        words = len(parsed.reasoning.split())
        scores.append(max(0.0, min(1.0, 2.0 - words / max_words)))
    return scores


def label_smoothed_ce(model, input_tokens, input_mask, positions, attention_mask, smoothing: float = 0.1):
    """Completion-only cross-entropy against targets smoothed toward uniform."""
    import jax
    import jax.numpy as jnp

    logits, _ = model(input_tokens, positions, None, attention_mask)
    logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), axis=-1)
    targets = input_tokens[:, 1:]
    mask = input_mask[:, 1:].astype(jnp.float32)
    nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    uniform = -jnp.mean(logp, axis=-1)
    per_token = (1.0 - smoothing) * nll + smoothing * uniform
    return jnp.sum(per_token * mask) / jnp.maximum(jnp.sum(mask), 1.0)


@hookimpl
def register_rewards(register):
    register("brevity", brevity)


@hookimpl
def register_losses(register):
    register("label_smoothed_ce", label_smoothed_ce)
