"""Preference losses for the ``preference`` stage, over sequence log-probabilities.

Each is ``loss(chosen_logps, rejected_logps, chosen_len, rejected_len, ref_chosen, ref_rejected, **options)
-> (per_pair_loss, chosen_reward, rejected_reward)`` with ``needs_reference`` telling the
stage whether to keep a frozen reference model. Log-probs are sums over completion tokens.

- ``dpo`` (Rafailov et al. 2023): ``-log σ(β·[(c − c_ref) − (r − r_ref)])``, label smoothing ε
  mixes in the flipped term; options ``beta`` (0.1), ``label_smoothing`` (0).
- ``orpo`` (Hong et al. 2024): ``−c/|y_w| + λ · −log σ(log odds(ȳ_w) − log odds(ȳ_l))`` on
  length-averaged log-probs, no reference; option ``lambda_orpo`` (0.1).
- ``simpo`` (Meng et al. 2024): ``−log σ(β/|y_w|·c − β/|y_l|·r − γ)``, no reference;
  options ``beta`` (2.0), ``gamma`` (γ, default β·``gamma_beta_ratio``) or
  ``gamma_beta_ratio`` (0.5).

Unpaired losses (``unpaired = True``) score single completions labelled desirable or not, so
they train on data without pairs. Their signature is ``loss(logps, kl_logps, lengths,
kl_lengths, ref_logps, ref_kl_logps, desirable, **options) -> (per_example_loss, reward,
reference_point)`` (the reward a completion must beat to count as preferred, in the reward's units),
where ``kl_logps`` are each prompt's log-probs of *another* example's completion in the batch
(the stage supplies them) — the mismatched pairs that estimate the KL reference point.

- ``kto`` (Ethayarajh et al. 2024, arXiv:2402.01306): with r = log π(y|x) − log π_ref(y|x) and
  z₀ = max(0, mean of the mismatched pairs' log-ratio), not differentiated,
  ``λ_D·(1 − σ(β(r − z₀)))`` for desirable, ``λ_U·(1 − σ(β(z₀ − r)))`` for undesirable
  completions; options ``beta`` (0.1), ``desirable_weight`` λ_D (1.0), ``undesirable_weight``
  λ_U (1.0). The paper advises λ_D·n_D / (λ_U·n_U) in [1, 4/3].
"""

from __future__ import annotations

from reasonlab import hookimpl


def _jnp():
    import jax
    import jax.numpy as jnp

    return jax, jnp


def dpo(c, r, c_len, r_len, ref_c, ref_r, beta: float = 0.1, label_smoothing: float = 0.0):
    jax, jnp = _jnp()
    c_ratio, r_ratio = c - ref_c, r - ref_r
    delta = beta * (c_ratio - r_ratio)
    loss = -(jax.nn.log_sigmoid(delta) * (1 - label_smoothing) + jax.nn.log_sigmoid(-delta) * label_smoothing)
    return loss, beta * c_ratio, beta * r_ratio


def orpo(c, r, c_len, r_len, ref_c, ref_r, lambda_orpo: float = 0.1):
    jax, jnp = _jnp()
    c_avg, r_avg = c / c_len, r / r_len
    log_odds = (c_avg - r_avg) - (jnp.log1p(-jnp.exp(c_avg)) - jnp.log1p(-jnp.exp(r_avg)))
    loss = -c_avg - lambda_orpo * jax.nn.log_sigmoid(log_odds)
    return loss, lambda_orpo * c_avg, lambda_orpo * r_avg


def simpo(c, r, c_len, r_len, ref_c, ref_r, beta: float = 2.0, gamma: float | None = None,
          gamma_beta_ratio: float = 0.5):
    jax, jnp = _jnp()
    gamma = beta * gamma_beta_ratio if gamma is None else gamma
    c_reward, r_reward = beta * c / c_len, beta * r / r_len
    return -jax.nn.log_sigmoid(c_reward - r_reward - gamma), c_reward, r_reward


def kto(logps, kl_logps, lengths, kl_lengths, ref_logps, ref_kl_logps, desirable, beta: float = 0.1,
        desirable_weight: float = 1.0, undesirable_weight: float = 1.0):
    jax, jnp = _jnp()
    kl = jax.lax.stop_gradient(jnp.maximum(jnp.mean(kl_logps - ref_kl_logps), 0.0))
    log_ratio = logps - ref_logps
    loss = jnp.where(desirable, desirable_weight * (1 - jax.nn.sigmoid(beta * (log_ratio - kl))),
                     undesirable_weight * (1 - jax.nn.sigmoid(beta * (kl - log_ratio))))
    return loss, beta * log_ratio, beta * kl


dpo.needs_reference = True
orpo.needs_reference = False
simpo.needs_reference = False
kto.needs_reference = True
kto.unpaired = True


@hookimpl
def register_losses(register):
    register("dpo", dpo, stage="preference")
    register("orpo", orpo, stage="preference")
    register("simpo", simpo, stage="preference")
    register("kto", kto, stage="preference")
