"""reasonlab.logprobs and the GRPO stage's lean loss give Tunix's values at a fraction of the memory.

Compared with Tunix's own functions on a random Gemma3 (float32, so differences are
rounding only): per-token log-probs and entropies, the reference path, the GRPO loss,
its aux metrics and its gradients. The memory claim is checked on XLA's own accounting
of the compiled programs (no timing, no RSS).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasonlab import logprobs

PAD, EOS = 0, 2


def gemma(vocab: int = 512, seed: int = 0, lora: bool = False, layers: int = 2):
    from tunix.models.gemma3.model import Gemma3
    from reasonlab_plugins.models_tiny import model_config

    model = Gemma3(dataclasses.replace(model_config(vocab), num_layers=layers), rngs=nnx.Rngs(seed))
    if lora:
        from reasonlab.modeling import ModelBundle, apply_lora
        from reasonlab.schema import LoraSpec
        from reasonlab_plugins.models_checkpoint import GEMMA_LORA_MODULES

        bundle = ModelBundle(model, None, "tiny", [], lora_modules=GEMMA_LORA_MODULES)  # what the tiny preset declares
        model = apply_lora(bundle, LoraSpec(rank=4, alpha=8.0), seed).model
        # non-zero adapters, so the gradient reaches everything it would after one update
        state = nnx.state(model, nnx.LoRAParam)
        keys = iter(jax.random.split(jax.random.key(1), len(jax.tree.leaves(state))))
        nnx.update(model, jax.tree.map(lambda x: 0.05 * jax.random.normal(next(keys), x.shape, x.dtype), state))
    return model


def batch(vocab: int = 512, size: int = 4, prompt: int = 12, completion: int = 10, seed: int = 3):
    rng = np.random.default_rng(seed)
    prompt_ids = rng.integers(3, vocab, (size, prompt))
    prompt_ids[:, :3] = PAD  # left padding, as the rollout gives
    completion_ids = rng.integers(3, vocab, (size, completion))
    completion_ids[0, 6:] = PAD  # a short completion
    completion_ids[1, 4] = EOS
    completion_ids[1, 5:] = PAD
    return jnp.asarray(prompt_ids), jnp.asarray(completion_ids)


def tunix_logps(model, prompt_ids, completion_ids, temperature=1.0):
    from tunix.rl import common

    graphdef, state = nnx.split(model)
    return common.compute_per_token_logps(graphdef, state, prompt_ids, completion_ids, PAD, EOS, stop_gradient=False,
                                          return_logits=True, temperature=temperature)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logps_and_entropy_match_tunix(temperature):
    from tunix.rl.algo_core import compute_entropy_from_logits

    model = gemma()
    prompt_ids, completion_ids = batch()
    expected, logits = tunix_logps(model, prompt_ids, completion_ids, temperature)
    ours, entropy = nnx.jit(lambda m: logprobs.completion_logps(m, prompt_ids, completion_ids, PAD, EOS, temperature))(
        model)
    assert ours.shape == expected.shape == completion_ids.shape
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(entropy, compute_entropy_from_logits(logits), rtol=1e-5, atol=1e-5)
    assert not np.allclose(ours, ours[::-1])  # rows differ: nothing was broadcast by mistake


def test_chunks_cover_every_token_whatever_the_size():
    model = gemma()
    prompt_ids, completion_ids = batch(size=3, completion=7)  # 21 tokens: chunks of 4 leave a remainder
    hidden_fn = nnx.jit(lambda m: logprobs.completion_logps(m, prompt_ids, completion_ids, PAD, EOS))
    whole, _ = hidden_fn(model)
    from tunix.rl import common

    tokens, positions, mask, _ = common.process_ids(prompt_ids, completion_ids, PAD, EOS)
    hidden = logprobs.final_hidden_states(model, tokens, positions, mask)[:, -8:-1]
    embedding = model.embedder.input_embedding.value
    for chunk in (1, 4, 5, 21, 64):
        chunked, _ = logprobs.token_logps(hidden, tokens[:, -7:], embedding, chunk_tokens=chunk)
        np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)


def test_reference_path_matches_tunix_and_leaves_the_model_alone():
    model = gemma(seed=4)
    prompt_ids, completion_ids = batch()
    expected, _ = tunix_logps(model, prompt_ids, completion_ids)
    before = [leaf.unsafe_buffer_pointer() for leaf in jax.tree.leaves(nnx.state(model))]
    ours = logprobs.reference_logps(model, prompt_ids, completion_ids, PAD, EOS)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    # the same arrays afterwards: a reference sharing the actor's backbone keeps sharing it
    assert [leaf.unsafe_buffer_pointer() for leaf in jax.tree.leaves(nnx.state(model))] == before


def test_layer_remat_is_scoped_to_the_call():
    model = gemma()
    configs = [layer.config for layer in model.layers]
    with logprobs.layer_remat(model):
        assert {layer.config.remat_config.name for layer in model.layers} == {"DECODER"}
    assert [layer.config for layer in model.layers] == configs
    with logprobs.layer_remat(object()):  # no decoder layers: nothing to switch
        pass


def test_preference_sequence_logps_match_tunix():
    from tunix.rl import common
    from tunix.sft.dpo import dpo_trainer

    from reasonlab_plugins.stage_preference import sequence_logps

    model = gemma(seed=6)
    prompt_ids, completion_ids = batch(size=4)  # rows 0-1 chosen, 2-3 rejected
    tokens, positions, attention_mask, _ = common.process_ids(prompt_ids, completion_ids, PAD, EOS)
    example = dpo_trainer.TrainExample(
        input_ids=tokens, positions=positions, attention_mask=attention_mask,
        ref_chosen_logps=None, ref_rejected_logps=None,
        completion_mask=(completion_ids != PAD).astype(jnp.float32), logits_to_keep=completion_ids.shape[1])
    expected = dpo_trainer.compute_logps(model, tokens, positions, attention_mask, completion_ids.shape[1],
                                         example.completion_mask)
    ours = nnx.jit(lambda m: sequence_logps(m, example))(model)
    for want, got in zip(expected, ours):
        assert got.shape == (2,)
        np.testing.assert_allclose(got, want, rtol=1e-5)


def train_example(prompt_ids, completion_ids, ref_logps, seed=5):
    from tunix.rl.common import TrainExample

    rng = np.random.default_rng(seed)
    mask = (completion_ids != PAD).astype(jnp.int32)
    return TrainExample(prompt_ids=prompt_ids, prompt_mask=(prompt_ids != PAD).astype(jnp.int32),
                        completion_ids=completion_ids, completion_mask=mask,
                        advantages=jnp.asarray(rng.normal(size=completion_ids.shape[0]), jnp.float32),
                        ref_per_token_logps=ref_logps, old_per_token_logps=None)


@pytest.mark.parametrize("old_logps, remat", [(False, False), (True, True)])
def test_lean_grpo_loss_matches_tunix_loss_and_gradients(old_logps, remat):
    from tunix.rl.algo_core import grpo_loss_fn
    from tunix.rl.grpo.grpo_learner import GRPOConfig

    from reasonlab_plugins._grpo_tunix import lean_grpo_loss

    model = gemma(lora=True)
    prompt_ids, completion_ids = batch()
    reference = gemma(seed=9)
    ref_logps, _ = tunix_logps(reference, prompt_ids, completion_ids)
    example = train_example(prompt_ids, completion_ids, jax.lax.stop_gradient(ref_logps))
    if old_logps:  # a second iteration on the same rollout: the ratio is no longer 1, clipping engages
        shifted, _ = tunix_logps(model, prompt_ids, completion_ids)
        example = example.replace(old_per_token_logps=jax.lax.stop_gradient(shifted) - 0.3)
    config = GRPOConfig(num_generations=2, beta=0.04, epsilon=0.2)
    config.temperature = 0.7

    def grads(loss_fn):
        diff = nnx.DiffState(0, nnx.LoRAParam)
        (loss, aux), grad = nnx.value_and_grad(
            lambda m: loss_fn(m, example, config, PAD, EOS), argnums=diff, has_aux=True)(model)
        return loss, aux, grad

    loss, aux, grad = grads(grpo_loss_fn)
    lean_loss, lean_aux, lean_grad = grads(functools.partial(lean_grpo_loss, remat=remat))
    np.testing.assert_allclose(lean_loss, loss, rtol=1e-5)
    for key in ("kl", "pg_clipfrac", "entropy"):
        np.testing.assert_allclose(lean_aux[key], aux[key], rtol=1e-4, atol=1e-6, err_msg=key)
    if old_logps:
        assert float(aux["pg_clipfrac"]) > 0  # the clipped branch was exercised
    leaves, lean_leaves = jax.tree.leaves(grad), jax.tree.leaves(lean_grad)
    assert len(leaves) == len(lean_leaves) > 0
    assert any(float(jnp.abs(g).max()) > 0 for g in leaves)
    for expected, ours in zip(leaves, lean_leaves):
        np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-7)


def test_lean_loss_needs_a_fraction_of_the_memory():
    """XLA's accounting of the compiled gradient programs: with a 32k vocabulary the
    full-sequence logits and their gradients dominate Tunix's temporaries."""
    from tunix.rl.algo_core import grpo_loss_fn
    from tunix.rl.grpo.grpo_learner import GRPOConfig

    from reasonlab_plugins._grpo_tunix import lean_grpo_loss

    vocab = 32768
    model = gemma(vocab=vocab, lora=True)
    prompt_ids, completion_ids = batch(vocab=vocab, size=8, prompt=96, completion=64)
    example = train_example(prompt_ids, completion_ids, jnp.zeros(completion_ids.shape, jnp.float32))
    config = GRPOConfig(num_generations=4)
    config.temperature = 1.0
    graphdef, lora_state, rest = nnx.split(model, nnx.LoRAParam, ...)

    def temp_bytes(loss_fn):
        def loss(lora, rest_state):
            return loss_fn(nnx.merge(graphdef, lora, rest_state), example, config, PAD, EOS)[0]

        compiled = jax.jit(jax.grad(loss)).lower(lora_state, rest).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    tunix, lean = temp_bytes(grpo_loss_fn), temp_bytes(lean_grpo_loss)
    full_logits = 8 * (96 + 64) * vocab * 4
    assert tunix > full_logits  # Tunix holds at least one float32 copy of all logits
    assert lean < tunix / 4, (lean, tunix)


def test_layer_remat_cuts_the_gradient_program_memory():
    """With XLA's memory-minimising CPU scheduler (tests/conftest.py applies reasonlab's XLA
    defaults), rematerialised layers keep only each layer's input for the backward pass."""
    from tunix.rl.grpo.grpo_learner import GRPOConfig

    from reasonlab_plugins._grpo_tunix import lean_grpo_loss

    model = gemma(lora=True, layers=8)
    prompt_ids, completion_ids = batch(size=8, prompt=96, completion=64)
    example = train_example(prompt_ids, completion_ids, jnp.zeros(completion_ids.shape, jnp.float32))
    config = GRPOConfig(num_generations=4)
    config.temperature = 1.0

    def temp_bytes(remat):
        grad = nnx.grad(lambda m: lean_grpo_loss(m, example, config, PAD, EOS, remat=remat)[0],
                        argnums=nnx.DiffState(0, nnx.LoRAParam))
        return nnx.jit(grad).lower(model).compile().memory_analysis().temp_size_in_bytes

    plain, remat = temp_bytes(False), temp_bytes(True)
    assert remat < 0.5 * plain, (remat, plain)


@pytest.mark.parametrize("lora", [False, True])
def test_sft_cross_entropy_matches_the_full_logits_loss(lora):
    """The SFT loss plugin through reasonlab.logprobs: same value and gradients as the
    cross-entropy of the model's own [B, L, V] logits (LoRA: frozen head; full: recomputed)."""
    from tunix.rl import common

    from reasonlab_plugins.losses_ce import completion_cross_entropy

    model = gemma(lora=lora, seed=2)
    prompt_ids, completion_ids = batch()
    tokens, positions, attention_mask, _ = common.process_ids(prompt_ids, completion_ids, PAD, EOS)
    input_mask = jnp.concatenate([jnp.zeros_like(prompt_ids), (completion_ids != PAD)], axis=1).astype(jnp.int32)

    def plain(m, tokens, input_mask, positions, attention_mask):
        logits, _ = m(tokens, positions, None, attention_mask)
        logits = logits[:, :-1].astype(jnp.float32)
        picked = jnp.take_along_axis(logits, tokens[:, 1:, None], axis=-1)[..., 0]
        mask = input_mask[:, 1:].astype(jnp.float32)
        return jnp.sum((jax.nn.logsumexp(logits, axis=-1) - picked) * mask) / jnp.sum(mask)

    wrt = nnx.DiffState(0, nnx.LoRAParam if lora else nnx.Param)

    def value_and_grad(loss_fn):
        return nnx.value_and_grad(lambda m: loss_fn(m, tokens, input_mask, positions, attention_mask), argnums=wrt)(model)

    (expected, expected_grad), (ours, our_grad) = value_and_grad(plain), value_and_grad(completion_cross_entropy)
    np.testing.assert_allclose(ours, expected, rtol=1e-5)
    leaves, our_leaves = jax.tree.leaves(expected_grad), jax.tree.leaves(our_grad)
    assert len(leaves) == len(our_leaves) > 0 and any(float(jnp.abs(g).max()) > 0 for g in leaves)
    for want, got in zip(leaves, our_leaves):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
