"""The optimiser every training stage builds from its keys, with one meaning for all of them
(optax's AdamW; the schedule and clipping below).

    learning_rate   -> the peak learning rate
    warmup_steps    -> linear warm-up from 0 over this many steps (default: warmup_ratio × steps;
                       0 = start at the peak)
    schedule        -> after the warm-up: "cosine" (default) or "linear" decay to
                       final_lr_ratio × peak, or "constant"
    final_lr_ratio  -> where the decay ends, as a fraction of the peak (0 = decay to zero)
    weight_decay, adam_b1, adam_b2 -> AdamW's
    max_grad_norm   -> clip the gradient's global norm (None = no clipping)
"""

from __future__ import annotations


def warmup_steps(cfg) -> int:
    return cfg.warmup_steps if cfg.warmup_steps is not None else int(cfg.steps * cfg.warmup_ratio)


def learning_rate_schedule(cfg):
    import optax

    peak, warmup = cfg.learning_rate, warmup_steps(cfg)
    decay_steps = max(cfg.steps - warmup, 1)
    end = peak * cfg.final_lr_ratio
    if cfg.schedule == "cosine":
        after = optax.cosine_decay_schedule(peak, decay_steps, alpha=cfg.final_lr_ratio)
    elif cfg.schedule == "linear":
        after = optax.linear_schedule(peak, end, decay_steps)
    else:
        after = optax.constant_schedule(peak)
    if not warmup:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), after], [warmup])


def build_optimizer(cfg):
    import optax

    optimizer = optax.adamw(learning_rate_schedule(cfg), b1=cfg.adam_b1, b2=cfg.adam_b2,
                            weight_decay=cfg.weight_decay)
    if cfg.max_grad_norm:
        optimizer = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optimizer)
    return optimizer
