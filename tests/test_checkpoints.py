"""Hackathon presets load real HF-format checkpoints; export (LoRA merged or full fine-tune,
Gemma 2 and 3, HF safetensors and GGUF) reloads to the same logits."""

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
        byte_fallback=True, hard_vocab_limit=False, minloglevel=2,
        # Gemma's own settings (what a GGUF's tokenizer reads back as)
        normalization_rule_name="identity", add_dummy_prefix=False, remove_extra_whitespaces=False,
        split_digits=True, user_defined_symbols=["<start_of_turn>", "<end_of_turn>"])
    processor = spm.SentencePieceProcessor(model_proto=buffer.getvalue())
    return buffer.getvalue(), processor.vocab_size()


def write_tiny_gemma3_checkpoint(directory: Path, family: str = "gemma3") -> dict:
    """A random Gemma 3 (or 2) in the Hugging Face on-disk format (names, (out, in) shapes, config.json)."""
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
                    p + "input_layernorm.weight": w(d), p + "post_attention_layernorm.weight": w(d),
                    p + "pre_feedforward_layernorm.weight": w(d), p + "post_feedforward_layernorm.weight": w(d),
                    p + "mlp.gate_proj.weight": w(f, d), p + "mlp.up_proj.weight": w(f, d),
                    p + "mlp.down_proj.weight": w(d, f)}
        if family == "gemma3":
            tensors |= {p + "self_attn.q_norm.weight": w(h), p + "self_attn.k_norm.weight": w(h)}
    directory.mkdir(parents=True)
    save_file(tensors, str(directory / "model.safetensors"))
    (directory / "tokenizer.model").write_bytes(proto)
    model_type = {"gemma3": "gemma3_text", "gemma2": "gemma2"}[family]
    (directory / "config.json").write_text(json.dumps({"model_type": model_type, "vocab_size": vocab, **DIMS}))
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


PRESET = {"gemma3": "gemma3-1b-it", "gemma2": "gemma2-2b-it"}


def trained_bundle(tmp_path: Path, family: str, lora: LoraSpec | None):
    """A tiny checkpoint loaded as ``family``'s preset, every trainable weight moved (a stand-in
    for training: LoRA adapters non-zero, or every parameter of a full fine-tune changed)."""
    import jax
    from flax import nnx

    from reasonlab.modeling import apply_lora
    from reasonlab.plugins import get_plugins

    write_tiny_gemma3_checkpoint(tmp_path / "ckpt", family)
    preset = PRESET[family]
    bundle = get_plugins().registry("models").get(preset)(ModelSpec(preset=preset, path=str(tmp_path / "ckpt"),
                                                                    dtype="float32"))
    ids = [2, *bundle.tokenizer.encode("Ben gives away 4.")]
    before = logits(bundle.model, ids)
    if lora:
        bundle = apply_lora(bundle, lora, 0)
    state = nnx.state(bundle.model, nnx.LoRAParam if lora else nnx.Param)
    keys = iter(jax.random.split(jax.random.PRNGKey(1), len(jax.tree.leaves(state))))
    nnx.update(bundle.model, jax.tree.map(lambda x: x + 0.05 * jax.random.normal(next(keys), x.shape, x.dtype), state))
    trained = logits(bundle.model, ids)
    assert not np.allclose(trained, before, atol=1e-3), "the stand-in training had no effect"
    return bundle, ids, trained


def reload(directory: Path, bundle):
    from reasonlab_plugins.models_checkpoint import gemma_family

    backbone = bundle.base if bundle.lora else bundle.model
    _, safetensors_module = gemma_family(backbone)
    return safetensors_module.create_model_from_safe_tensors(str(directory), backbone.config, dtype=np.float32)


@pytest.mark.parametrize("family,lora", [("gemma3", LoraSpec(rank=4, alpha=8.0)), ("gemma3", None),
                                         ("gemma2", LoraSpec(rank=4, alpha=8.0)), ("gemma2", None)],
                         ids=["gemma3-lora", "gemma3-full", "gemma2-lora", "gemma2-full"])
def test_hf_export_reloads_to_the_trained_logits(tmp_path, family, lora):
    from reasonlab_plugins.models_checkpoint import export_gemma

    bundle, ids, trained = trained_bundle(tmp_path, family, lora)
    export_gemma(bundle, tmp_path / "out", lora)
    assert {"model.safetensors", "tokenizer.model", "config.json"} <= {p.name for p in (tmp_path / "out").iterdir()}
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == json.loads(
        (tmp_path / "ckpt" / "config.json").read_text())["model_type"]
    np.testing.assert_allclose(logits(reload(tmp_path / "out", bundle), ids), trained, atol=1e-4, rtol=0)


# how far the logits may move, relative to their range. Measured on this tiny random model (Intel
# Xeon, AVX-512 BF16): F16 0.05 %, Q8_0 2.2 % (8 bits per weight, one scale per 32 weights: the
# random weights and embeddings of a 2-layer model have no redundancy to absorb it)
GGUF_BOUNDS = {"f16": 1e-2, "q8_0": 5e-2}


@pytest.mark.parametrize("family,quant", [("gemma3", "f16"), ("gemma3", "q8_0"), ("gemma2", "q8_0")])
def test_gguf_export_reads_back_through_the_embedded_models_path(tmp_path, family, quant):
    """Export to GGUF, read it back the way the embedded model is read (reasonlab_plugins._gguf.convert):
    the same logits (relative to their range) and the same tokens for a few strings."""
    import gguf
    import sentencepiece as spm

    from reasonlab_plugins._gguf import convert
    from reasonlab_plugins.models_checkpoint import export_gemma

    lora = LoraSpec(rank=4, alpha=8.0)
    bundle, ids, trained = trained_bundle(tmp_path, family, lora)
    export_gemma(bundle, tmp_path / "out", lora, format="gguf", quant=quant)
    path = tmp_path / "out" / f"model-{quant}.gguf"
    reader = gguf.GGUFReader(str(path))
    assert reader.fields["general.architecture"].contents() == family
    assert reader.fields[f"{family}.block_count"].contents() == DIMS["num_hidden_layers"]
    if family == "gemma2":  # Gemma 2's soft caps, which llama.cpp applies from the metadata
        assert reader.fields["gemma2.attn_logit_softcapping"].contents() == bundle.base.config.attn_logits_soft_cap
        assert reader.fields["gemma2.final_logit_softcapping"].contents() == bundle.base.config.final_logit_softcap
    assert reader.fields["tokenizer.chat_template"].contents().startswith("{{ bos_token }}")  # an -it preset's turns
    weight_types = {t.tensor_type.name for t in reader.tensors if len(t.shape) == 2}
    assert weight_types == {quant.upper()}, weight_types

    convert(path, tmp_path / "back")
    back = reload(tmp_path / "back", bundle)
    error = np.abs(logits(back, ids) - trained).max() / np.ptp(trained)
    assert error < GGUF_BOUNDS[quant], f"{quant}: logits moved by {error:.2%} of their range"
    tokenizer = spm.SentencePieceProcessor(model_file=str(tmp_path / "back" / "tokenizer.model"))
    for text in ("Ana has 3 apples and buys 12 more.", "  two  spaces\nand a line", "<start_of_turn>user\nhi",
                 "größer 1/2 café"):
        assert tokenizer.encode(text) == bundle.tokenizer.encode(text), text


def test_gguf_chat_template_renders_like_the_gemma_turns():
    from reasonlab.chat import ChatTemplate
    from reasonlab_plugins._gguf import GEMMA_TURNS_JINJA
    from reasonlab_plugins.models_checkpoint import GEMMA_CHAT

    turns, jinja = ChatTemplate.turns(GEMMA_CHAT), ChatTemplate.jinja(GEMMA_TURNS_JINJA, bos_token="<bos>")
    for system in (None, "Answer in tags."):
        assert jinja.render("What is 2+3?", system) == turns.render("What is 2+3?", system)


def test_export_refuses_what_it_cannot_write(tmp_path):
    from reasonlab.errors import ModelError
    from reasonlab_plugins.models_checkpoint import export_gemma

    bundle, _, _ = trained_bundle(tmp_path, "gemma3", None)
    with pytest.raises(ModelError, match="unknown GGUF quantisation"):
        export_gemma(bundle, tmp_path / "out", None, format="gguf", quant="q2_k")
    with pytest.raises(ModelError, match="applies to GGUF export only"):
        export_gemma(bundle, tmp_path / "out", None, format="hf", quant="q8_0")


def test_export_command_writes_a_trained_run_as_hf_and_gguf(tmp_path):
    """``reasonlab export``: a LoRA SFT run of a Gemma 3 preset on a checkpoint folder, out as
    HF safetensors and as GGUF Q8_0; the HF export holds the run's trained weights."""
    import gguf

    write_tiny_gemma3_checkpoint(tmp_path / "ckpt")
    result = reasonlab("run", QUICKSTART, "-p", "tiny", "--no-progress", "--runs-dir", tmp_path / "runs",
                       "model.preset=gemma3-1b-it", f"model.path={tmp_path / 'ckpt'}", "model.dtype=float32",
                       "model.lora={rank=4,alpha=8.0}", "stages.sft.steps=3", "stages.sft.max_prompt_tokens=1024",
                       "stages.sft.max_completion_tokens=256", "stages.sft.eval_options.max_prompt_tokens=1024",
                       "stages.grpo.enabled=false",
                       "stages.eval_base.enabled=false", "stages.eval.enabled=false", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = next((tmp_path / "runs").glob("*/*"))
    for args in (("--out", tmp_path / "hf"), ("--out", tmp_path / "gguf", "--format", "gguf", "--quant", "q8_0")):
        exported = reasonlab("export", run_dir, *args, timeout=300)
        assert exported.returncode == 0, exported.stderr[-3000:]
    from safetensors.numpy import load_file

    base, out = load_file(str(tmp_path / "ckpt" / "model.safetensors")), load_file(str(tmp_path / "hf" / "model.safetensors"))
    assert base.keys() == out.keys()
    moved = [k for k in base if not np.allclose(base[k], out[k])]
    assert moved and all(k.endswith("_proj.weight") for k in moved), moved  # LoRA's projections, nothing else
    reader = gguf.GGUFReader(str(tmp_path / "gguf" / "model-q8_0.gguf"))
    assert len(reader.tensors) == len(base)

    refused = reasonlab("export", run_dir, "--out", tmp_path / "x", "--quant", "q8_0", timeout=120)
    assert refused.returncode == 2 and "--quant applies to --format gguf" in refused.stderr, refused.stderr[-2000:]
