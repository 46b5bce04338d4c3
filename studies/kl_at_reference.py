"""What the KL penalty does where the policy *is* the reference: with zero advantages the GRPO
loss is the penalty alone, and its true value and gradient are zero there.

    python studies/kl_at_reference.py SFT_RUN [--completions SAMPLES_JSONL]

For the run's last finished model (LoRA), on real prompts and completions (a ``samples.jsonl``
of ``reasonlab eval``), prints the penalty's mean per-token value (Tunix's ``kl`` metric) and
the global norm of its gradient, for k1 and k3, through Tunix's own loss (``grpo_loss_fn``,
reference log-probs from Tunix's ``compute_per_token_logps``) and through reasonlab's lean
loss (reference log-probs from ``reasonlab.logprobs.reference_logps``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--completions", type=Path, help="samples.jsonl with prompt/completion (default: the run's eval)")
    parser.add_argument("--n", type=int, default=8)
    args = parser.parse_args(argv)

    from reasonlab import xla_defaults

    xla_defaults.apply()
    import jax
    import jax.numpy as jnp
    from flax import nnx
    from tunix.rl import common
    from tunix.rl.algo_core import grpo_loss_fn
    from tunix.rl.grpo.grpo_learner import GRPOConfig

    from reasonlab import logprobs
    from reasonlab.plugins import get_plugins
    from reasonlab.runs import load_run_model
    from reasonlab_plugins._grpo_tunix import lean_grpo_loss
    from reasonlab_plugins.stage_grpo import KL_LOSS_MODES

    _, bundle, stage = load_run_model(args.run, get_plugins())
    samples = [json.loads(line) for line in args.completions.read_text().splitlines()][: args.n]
    tok = bundle.tokenizer
    pad, eos = tok.pad_id(), tok.eos_id()
    prompts = [[tok.bos_id(), *tok.encode(s["prompt"])] for s in samples]
    completions = [[*tok.encode(s["completion"]), eos] for s in samples]
    width_p, width_c = max(map(len, prompts)), max(map(len, completions))
    prompt_ids = jnp.asarray([[pad] * (width_p - len(p)) + p for p in prompts])
    completion_ids = jnp.asarray([c + [pad] * (width_c - len(c)) for c in completions])
    mask = (completion_ids != pad).astype(jnp.int32)
    temperature = 0.7
    graphdef, state = nnx.split(bundle.model)
    tunix_ref = jax.jit(lambda s: common.compute_per_token_logps(
        graphdef, s, prompt_ids, completion_ids, pad, eos, stop_gradient=True, return_logits=False,
        temperature=temperature))(state)
    lean_ref = logprobs.reference_logps(bundle.model, prompt_ids, completion_ids, pad, eos, temperature)
    example = common.TrainExample(prompt_ids=prompt_ids, prompt_mask=(prompt_ids != pad).astype(jnp.int32),
                                  completion_ids=completion_ids, completion_mask=mask,
                                  advantages=jnp.zeros((len(samples),), jnp.float32),
                                  ref_per_token_logps=None, old_per_token_logps=None)
    print(f"{stage} model of {args.run}, {len(samples)} completions, temperature {temperature}, "
          f"dtype {jax.tree.leaves(state)[0].dtype}")
    for estimator in ("k1", "k3"):
        config = GRPOConfig(num_generations=2, beta=0.04, epsilon=0.2, kl_loss_mode=KL_LOSS_MODES[estimator])
        config.temperature = temperature
        for path, loss, reference in (("tunix", grpo_loss_fn, tunix_ref), ("lean", lean_grpo_loss, lean_ref)):
            ex = example.replace(ref_per_token_logps=reference)

            def penalty(model):
                return loss(model, ex, config, pad, eos)

            diff = nnx.DiffState(0, nnx.LoRAParam)
            (value, aux), grads = nnx.value_and_grad(penalty, argnums=diff, has_aux=True)(bundle.model)
            norm = float(jnp.sqrt(sum(jnp.sum(jnp.square(g.astype(jnp.float32))) for g in jax.tree.leaves(grads))))
            print(f"{estimator} {path:5s}  kl {float(aux['kl']):+.6f}  loss {float(value):+.6f}  |grad| {norm:.3e}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
