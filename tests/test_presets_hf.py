"""Qwen2.5, Qwen3 and Llama 3.2 presets: a tiny random checkpoint of each family, written in the
Hugging Face on-disk format here (config.json, safetensors, tokenizer.json, tokenizer_config.json
with a chat template), loads through Tunix's classes, takes LoRA SFT steps in a real run, and
exports back to safetensors that reload to the same logits, and to GGUF that reads back (our
GGUF path, then the preset) to the same logits within the quantisation's bound and the same tokens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import QUICKSTART, reasonlab

from reasonlab.schema import LoraSpec, ModelSpec

pytestmark = pytest.mark.slow

DIMS = {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "rope_theta": 10_000, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True}
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
LLAMA_CHAT = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
              "{{ m['content'] }}<|eot_id|>{% endfor %}"
              "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")
LLAMA32_ROPE_SCALING = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                        "original_max_position_embeddings": 8192}
FAMILIES = {
    # preset, special tokens (first ids), tokenizer_config, extra tensors per layer
    "qwen2": ("qwen2.5-0.5b-instruct", ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
              {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "chat_template": CHATML},
              "bias"),
    "qwen3": ("qwen3-0.6b", ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
              {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "chat_template": CHATML},
              "qk_norm"),
    "llama3": ("llama3.2-1b-instruct", ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                         "<|end_header_id|>", "<|eot_id|>", "<|finetune_right_pad_id|>"],
               {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": LLAMA_CHAT}, None),
}


def write_tokenizer(directory: Path, family: str, special: list[str], settings: dict) -> int:
    """A byte-level BPE trained on generated arithmetic, the special tokens added after the learnt
    vocabulary, as in the real checkpoints (so no pad id is 0)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    from reasonlab_plugins._gguf import BPE_PRE_TOKENIZERS
    from reasonlab_plugins.datasets_arithmetic import generate

    tokenizer = Tokenizer(models.BPE(ignore_merges=family == "llama3"))  # as in Llama 3's tokenizer.json
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([  # the family's own digit and word splitting
        pre_tokenizers.Split(Regex(BPE_PRE_TOKENIZERS["llama-bpe" if family == "llama3" else "qwen2"]), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    texts = [r["question"] + " " + r["reasoning"] + " <reasoning> </reasoning> <answer> </answer>" for r in generate(n=300)]
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.add_special_tokens(special)
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps(settings))
    return tokenizer.get_vocab_size()


def write_checkpoint(directory: Path, family: str) -> dict:
    from safetensors.numpy import save_file

    _, special, settings, extra = FAMILIES[family]
    directory.mkdir(parents=True)
    vocab = write_tokenizer(directory, family, special, settings)
    rng = np.random.default_rng(0)
    d, f, h = DIMS["hidden_size"], DIMS["intermediate_size"], DIMS["head_dim"]
    n, k = DIMS["num_attention_heads"], DIMS["num_key_value_heads"]

    def w(*shape):
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    tensors = {"model.embed_tokens.weight": w(vocab, d), "model.norm.weight": 1 + w(d)}
    for i in range(DIMS["num_hidden_layers"]):
        p = f"model.layers.{i}."
        tensors |= {p + "self_attn.q_proj.weight": w(n * h, d), p + "self_attn.k_proj.weight": w(k * h, d),
                    p + "self_attn.v_proj.weight": w(k * h, d), p + "self_attn.o_proj.weight": w(d, n * h),
                    p + "input_layernorm.weight": 1 + w(d), p + "post_attention_layernorm.weight": 1 + w(d),
                    p + "mlp.gate_proj.weight": w(f, d), p + "mlp.up_proj.weight": w(f, d),
                    p + "mlp.down_proj.weight": w(d, f)}
        if extra == "bias":
            tensors |= {p + "self_attn.q_proj.bias": w(n * h), p + "self_attn.k_proj.bias": w(k * h),
                        p + "self_attn.v_proj.bias": w(k * h)}
        if extra == "qk_norm":
            tensors |= {p + "self_attn.q_norm.weight": 1 + w(h), p + "self_attn.k_norm.weight": 1 + w(h)}
    save_file(tensors, str(directory / "model.safetensors"))
    config = {"model_type": family, "vocab_size": vocab, **DIMS}
    if family == "llama3":  # Llama 3.2's own scaling (Tunix applies none; GGUF export writes it back)
        config["rope_scaling"] = LLAMA32_ROPE_SCALING
    (directory / "config.json").write_text(json.dumps(config))
    return tensors


def logits(model, ids, pad):
    import jax.numpy as jnp
    from tunix.sft import utils

    tokens = jnp.array([ids])
    out, _ = model(tokens, jnp.arange(len(ids))[None], None, utils.make_causal_attn_mask(tokens != pad))
    return np.asarray(out, dtype=np.float32)


def load(directory: Path, family: str):
    from reasonlab.plugins import get_plugins

    preset = FAMILIES[family][0]
    return get_plugins().registry("models").get(preset)(ModelSpec(preset=preset, path=str(directory), dtype="float32"))


@pytest.mark.parametrize("family", FAMILIES)
def test_preset_loads_the_checkpoint_with_its_tokenizer_and_template(tmp_path, family, capsys):
    tensors = write_checkpoint(tmp_path / "ckpt", family)
    bundle = load(tmp_path / "ckpt", family)
    # Tunix's Llama ignores Llama 3.2's rope scaling: the load says so
    assert ("rope_scaling 'llama3' is not applied" in capsys.readouterr().err) == (family == "llama3")
    np.testing.assert_array_equal(np.asarray(bundle.model.embedder.input_embedding.get_value()),
                                  tensors["model.embed_tokens.weight"])
    tok = bundle.tokenizer
    if family == "llama3":
        assert tok.bos_id() == tok.token("<|begin_of_text|>") and tok.pad_id() == tok.token("<|finetune_right_pad_id|>")
    else:
        assert tok.bos_id() is None and tok.pad_id() == tok.token("<|endoftext|>")
    assert tok.eos_id() in bundle.stop_ids and tok.pad_id() != 0
    prompt = bundle.chat_template.render("What is 2 + 3?", "Answer in tags.")
    ids = tok.encode(prompt)
    assert tok.token("<|im_start|>" if family != "llama3" else "<|start_header_id|>") in ids  # turns are tokens
    assert tok.decode(tok.encode("Ana has 3 apples.")) == "Ana has 3 apples."
    assert logits(bundle.model, ids, tok.pad_id()).shape[-1] == tensors["model.embed_tokens.weight"].shape[0]


@pytest.mark.parametrize("family,lora", [("qwen2", LoraSpec(rank=4, alpha=8.0)), ("qwen3", None),
                                         ("llama3", LoraSpec(rank=4, alpha=8.0))])
def test_export_reloads_to_the_trained_logits(tmp_path, family, lora):
    import jax
    from flax import nnx

    from reasonlab.modeling import apply_lora
    from reasonlab_plugins._gguf import convert
    from reasonlab_plugins.models_hf import family_modules

    write_checkpoint(tmp_path / "ckpt", family)
    bundle = load(tmp_path / "ckpt", family)
    pad = bundle.tokenizer.pad_id()
    ids = bundle.tokenizer.encode("Ben gives away 4 of his 9 apples.")
    before = logits(bundle.model, ids, pad)
    if lora:
        bundle = apply_lora(bundle, lora, 0)
    state = nnx.state(bundle.model, nnx.LoRAParam if lora else nnx.Param)
    keys = iter(jax.random.split(jax.random.PRNGKey(1), len(jax.tree.leaves(state))))
    nnx.update(bundle.model, jax.tree.map(lambda x: x + 0.05 * jax.random.normal(next(keys), x.shape, x.dtype), state))
    trained = logits(bundle.model, ids, pad)
    assert not np.allclose(trained, before, atol=1e-3)

    export = __import__("reasonlab.plugins", fromlist=["get_plugins"]).get_plugins().registry("models").info(
        FAMILIES[family][0])["export"]
    export(bundle, tmp_path / "out", lora)
    assert {"model.safetensors", "tokenizer.json", "tokenizer_config.json", "config.json"} <= {
        p.name for p in (tmp_path / "out").iterdir()}
    backbone = bundle.base if lora else bundle.model
    _, params_module = family_modules(family)
    reloaded = params_module.create_model_from_safe_tensors(str(tmp_path / "out"), backbone.config, dtype=np.float32)
    np.testing.assert_allclose(logits(reloaded, ids, pad), trained, atol=1e-4, rtol=0)

    # GGUF, read back the way the embedded model is read (reasonlab_plugins._gguf.convert), then
    # loaded with the family's preset: the same logits (relative to their range) and tokens
    quant = GGUF_QUANT[family]
    export(bundle, tmp_path / "gguf", lora, format="gguf", quant=quant)
    path = tmp_path / "gguf" / f"model-{quant}.gguf"
    check_gguf_metadata(path, family, quant)
    convert(path, tmp_path / "back")
    back = load(tmp_path / "back", family)
    error = np.abs(logits(back.model, ids, pad) - trained).max() / np.ptp(trained)
    assert error < GGUF_BOUNDS[quant], f"{quant}: logits moved by {error:.2%} of their range"
    for text in ("Ana has 3 apples and buys 12345 more.", "  two  spaces\nand a line", "größer 1/2 café",
                 bundle.chat_template.render("What is 2 + 3?", "Answer in tags.")):
        assert back.tokenizer.encode(text) == bundle.tokenizer.encode(text), text
    assert (back.tokenizer.bos_id(), back.tokenizer.eos_id(), back.tokenizer.pad_id()) == (
        bundle.tokenizer.bos_id(), bundle.tokenizer.eos_id(), bundle.tokenizer.pad_id())
    assert back.chat_template.render("hi", "sys") == bundle.chat_template.render("hi", "sys")


GGUF_QUANT = {"qwen2": "f16", "qwen3": "q8_0", "llama3": "f16"}
# how far the logits may move, relative to their range (as for Gemma in test_checkpoints.py)
GGUF_BOUNDS = {"f16": 1e-2, "q8_0": 5e-2}


def check_gguf_metadata(path: Path, family: str, quant: str) -> None:
    import gguf

    reader = gguf.GGUFReader(str(path))
    arch = {"qwen2": "qwen2", "qwen3": "qwen3", "llama3": "llama"}[family]
    assert reader.fields["general.architecture"].contents() == arch
    assert reader.fields[f"{arch}.block_count"].contents() == DIMS["num_hidden_layers"]
    assert reader.fields["tokenizer.ggml.model"].contents() == "gpt2"
    assert reader.fields["tokenizer.ggml.pre"].contents() == ("llama-bpe" if family == "llama3" else "qwen2")
    assert reader.fields["tokenizer.chat_template"].contents() == FAMILIES[family][2]["chat_template"]
    assert {t.tensor_type.name for t in reader.tensors if len(t.shape) == 2} == {quant.upper()}
    names = {t.name for t in reader.tensors}
    assert ("blk.0.attn_q.bias" in names) == (family == "qwen2") and ("blk.0.attn_q_norm.weight" in names) == (
        family == "qwen3")
    if family == "llama3":  # Llama 3.2's rope scaling, as llama.cpp's converter writes it
        factors = next(t for t in reader.tensors if t.name == "rope_freqs.weight").data
        assert factors.shape == (DIMS["head_dim"] // 2,) and factors[0] == 1.0 and factors[-1] == 32.0
        assert np.all(np.diff(factors) >= 0), factors


def test_a_lora_sft_run_trains_and_exports(tmp_path, family="qwen2"):
    """The quickstart's SFT stage on a Qwen checkpoint (no BOS, a pad id that is not 0, the
    checkpoint's chat template; Llama differs only in having a BOS), then ``reasonlab export``."""
    write_checkpoint(tmp_path / "ckpt", family)
    result = reasonlab("run", QUICKSTART, "-p", "tiny", "--no-progress", "--runs-dir", tmp_path / "runs",
                       f"model.preset={FAMILIES[family][0]}", f"model.path={tmp_path / 'ckpt'}", "model.dtype=float32",
                       "model.lora={rank=4,alpha=8.0}", "stages.sft.steps=3", "stages.sft.max_prompt_tokens=1024",
                       "stages.sft.max_completion_tokens=256", "stages.sft.eval_options.max_prompt_tokens=1024",
                       "stages.grpo.enabled=false", "stages.eval_base.enabled=false", "stages.eval.enabled=false",
                       timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = next((tmp_path / "runs").glob("*/*"))
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in records if "train/loss" in r]
    assert len(losses) == 3 and all(np.isfinite(losses)), losses
    exported = reasonlab("export", run_dir, "--out", tmp_path / "hf", timeout=300)
    assert exported.returncode == 0, exported.stderr[-3000:]
    exported = reasonlab("export", run_dir, "--out", tmp_path / "gguf", "--format", "gguf", "--quant", "q8_0",
                         timeout=300)
    assert exported.returncode == 0, exported.stderr[-3000:]
    check_gguf_metadata(tmp_path / "gguf" / "model-q8_0.gguf", family, "q8_0")
