"""Hackathon presets load real HF-format checkpoints; export merges LoRA and round-trips."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import QUICKSTART, reasonlab

from reasonlab.schema import LoraSpec, ModelSpec

pytestmark = pytest.mark.slow

DIMS = {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2,
        "head_dim": 32, "num_key_value_heads": 1, "sliding_window": 128, "rope_theta": 1_000_000,
        "rope_local_base_freq": 10_000}


def sentencepiece_model() -> tuple[bytes, int]:
    import sentencepiece as spm

    from reasonlab_plugins.datasets_arithmetic import generate

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([r["question"] + " " + r["reasoning"] for r in generate(n=300)]),
        model_writer=buffer, vocab_size=400, model_type="bpe", pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        byte_fallback=True, hard_vocab_limit=False, minloglevel=2)
    processor = spm.SentencePieceProcessor(model_proto=buffer.getvalue())
    return buffer.getvalue(), processor.vocab_size()


def write_tiny_gemma3_checkpoint(directory: Path) -> dict:
    """A random Gemma3 in the Hugging Face on-disk format (names, (out, in) shapes, config.json)."""
    from safetensors.numpy import save_file

    proto, vocab = sentencepiece_model()
    rng = np.random.default_rng(0)
    d, f, h = DIMS["hidden_size"], DIMS["intermediate_size"], DIMS["head_dim"]
    n, k = DIMS["num_attention_heads"], DIMS["num_key_value_heads"]

    def w(*shape):
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    tensors = {"model.embed_tokens.weight": w(vocab, d), "model.norm.weight": w(d)}
    for i in range(DIMS["num_hidden_layers"]):
        p = f"model.layers.{i}."
        tensors |= {p + "self_attn.q_proj.weight": w(n * h, d), p + "self_attn.k_proj.weight": w(k * h, d),
                    p + "self_attn.v_proj.weight": w(k * h, d), p + "self_attn.o_proj.weight": w(d, n * h),
                    p + "self_attn.q_norm.weight": w(h), p + "self_attn.k_norm.weight": w(h),
                    p + "input_layernorm.weight": w(d), p + "post_attention_layernorm.weight": w(d),
                    p + "pre_feedforward_layernorm.weight": w(d), p + "post_feedforward_layernorm.weight": w(d),
                    p + "mlp.gate_proj.weight": w(f, d), p + "mlp.up_proj.weight": w(f, d),
                    p + "mlp.down_proj.weight": w(d, f)}
    directory.mkdir(parents=True)
    save_file(tensors, str(directory / "model.safetensors"))
    (directory / "tokenizer.model").write_bytes(proto)
    (directory / "config.json").write_text(json.dumps({"model_type": "gemma3_text", "vocab_size": vocab, **DIMS}))
    return tensors


def logits(model, ids):
    import jax.numpy as jnp
    from tunix.sft import utils

    tokens = jnp.array([ids])
    out, _ = model(tokens, jnp.arange(len(ids))[None], None, utils.make_causal_attn_mask(tokens != 0))
    return np.asarray(out, dtype=np.float32)


def test_gemma3_preset_loads_a_checkpoint_folder(tmp_path):
    from reasonlab.plugins import get_plugins

    tensors = write_tiny_gemma3_checkpoint(tmp_path / "ckpt")
    load = get_plugins().registry("models").get("gemma3-1b-it")
    bundle = load(ModelSpec(preset="gemma3-1b-it", path=str(tmp_path / "ckpt"), dtype="float32"))
    np.testing.assert_array_equal(np.asarray(bundle.model.embedder.input_embedding.value),
                                  tensors["model.embed_tokens.weight"])
    np.testing.assert_allclose(np.asarray(bundle.model.layers[1].mlp.down_proj.kernel.value),
                               tensors["model.layers.1.mlp.down_proj.weight"].T)
    ids = [bundle.tokenizer.bos_id(), *bundle.tokenizer.encode("Ana has 3 apples.")]
    assert logits(bundle.model, ids).shape[-1] == tensors["model.embed_tokens.weight"].shape[0]
    assert bundle.tokenizer.pad_id() == 0 and bundle.source_dir == tmp_path / "ckpt"
    assert bundle.chat_template.source.startswith("<start_of_turn>user\n")  # an -it preset brings its chat turns


def test_missing_weights_stop_the_run_with_what_was_tried(tmp_path):
    result = reasonlab("run", QUICKSTART, "--no-progress", "--runs-dir", tmp_path, "model.preset=gemma3-1b-it",
                       env={"HF_HUB_OFFLINE": "1", "REASONLAB_MODELS": str(tmp_path / "models")}, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "no weights for model preset 'gemma3-1b-it'" in result.stderr
    assert "REASONLAB_MODELS" in result.stderr and "Hugging Face Hub" in result.stderr and "Kaggle" in result.stderr
    assert "--profile cpu" in result.stderr and "Traceback" not in result.stderr


def test_export_merges_lora_and_round_trips(tmp_path):
    import jax
    from flax import nnx
    from tunix.models.gemma3 import params_safetensors

    from reasonlab.modeling import apply_lora
    from reasonlab.plugins import get_plugins
    from reasonlab_plugins.models_gemma import export_gemma3

    write_tiny_gemma3_checkpoint(tmp_path / "ckpt")
    load = get_plugins().registry("models").get("gemma3-1b-it")
    lora = LoraSpec(rank=4, alpha=8.0)
    bundle = apply_lora(load(ModelSpec(preset="gemma3-1b-it", path=str(tmp_path / "ckpt"), dtype="float32")), lora, 0)
    # stand-in for training: give every adapter non-zero weights
    state = nnx.state(bundle.model, nnx.LoRAParam)
    keys = iter(jax.random.split(jax.random.PRNGKey(1), len(jax.tree.leaves(state))))
    nnx.update(bundle.model, jax.tree.map(lambda x: 0.05 * jax.random.normal(next(keys), x.shape, x.dtype), state))
    ids = [2, *bundle.tokenizer.encode("Ben gives away 4.")]
    trained = logits(bundle.model, ids)
    assert not np.allclose(trained, logits(bundle.base, ids), atol=1e-4), "LoRA had no effect"

    export_gemma3(bundle, tmp_path / "out", lora)
    assert {"model.safetensors", "tokenizer.model", "config.json"} <= {p.name for p in (tmp_path / "out").iterdir()}
    reloaded = params_safetensors.create_model_from_safe_tensors(str(tmp_path / "out"), bundle.base.config,
                                                                 dtype=np.float32)
    np.testing.assert_allclose(logits(reloaded, ids), trained, atol=2e-4)
