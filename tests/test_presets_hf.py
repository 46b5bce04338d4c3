"""Qwen2.5, Qwen3 and Llama 3.2 presets: a tiny random checkpoint of each family, written in the
Hugging Face on-disk format here (config.json, safetensors, tokenizer.json, tokenizer_config.json
with a chat template), loads through Tunix's classes, takes LoRA SFT and GRPO steps in real runs
(its log-probs on our lean path or Tunix's), and exports back to safetensors that reload to the
same logits, and to GGUF that reads back (our GGUF path, then the preset) to the same logits
within the quantisation's bound and the same tokens."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import QUICKSTART, read_metrics, reasonlab, run_dir_of

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


HF_MODEL_TYPE = {"qwen2": "qwen2", "qwen3": "qwen3", "llama3": "llama"}  # config.json's, as in the real checkpoints


def write_checkpoint(directory: Path, family: str, head_dim: int | None = None) -> dict:
    from safetensors.numpy import save_file

    _, special, settings, extra = FAMILIES[family]
    directory.mkdir(parents=True)
    vocab = write_tokenizer(directory, family, special, settings)
    rng = np.random.default_rng(0)
    dims = DIMS | ({"head_dim": head_dim} if head_dim else {})
    d, f, h = dims["hidden_size"], dims["intermediate_size"], dims["head_dim"]
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
    config = {"model_type": HF_MODEL_TYPE[family], "vocab_size": vocab, **dims}
    if family == "llama3":  # Llama 3.2's own scaling (plugins/_rope.py applies it)
        config["rope_scaling"] = LLAMA32_ROPE_SCALING
    (directory / "config.json").write_text(json.dumps(config))
    return tensors


def logits(model, ids, pad):
    import jax.numpy as jnp
    from tunix.sft import utils

    tokens = jnp.array([ids])
    out, _ = model(tokens, jnp.arange(len(ids))[None], None, utils.make_causal_attn_mask(tokens != pad))
    return np.asarray(out, dtype=np.float32)


def tokenizer_texts(bundle) -> list[str]:
    """Digits, runs of spaces, non-ASCII and the rendered chat template (its control tokens)."""
    return ["Ana has 3 apples and buys 12345 more.", "  two  spaces\nand a line", "größer 1/2 café",
            bundle.chat_template.render("What is 2 + 3?", "Answer in tags.")]


def read_elsewhere(python: str, script: str, job: dict) -> dict:
    """``studies/SCRIPT`` (transformers' or llama.cpp's reader) under another Python, on one JSON job."""
    result = subprocess.run([python, str(Path(__file__).parents[1] / "studies" / script)], input=json.dumps(job),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def load(directory: Path, family: str):
    from reasonlab.plugins import get_plugins

    preset = FAMILIES[family][0]
    return get_plugins().registry("models").get(preset)(ModelSpec(preset=preset, path=str(directory), dtype="float32"))


@pytest.mark.parametrize("family", FAMILIES)
def test_preset_loads_the_checkpoint_with_its_tokenizer_and_template(tmp_path, family):
    tensors = write_checkpoint(tmp_path / "ckpt", family)
    bundle = load(tmp_path / "ckpt", family)
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
    from reasonlab_plugins._gguf import convert

    done = train_and_export(tmp_path, family, lora)
    bundle, ids, pad, trained = done["bundle"], done["ids"], done["pad"], done["trained"]
    assert {"model.safetensors", "tokenizer.json", "tokenizer_config.json", "config.json"} <= {
        p.name for p in done["hf"].iterdir()}
    reloaded = load(done["hf"], family)  # the preset again: the checkpoint's rope included
    np.testing.assert_allclose(logits(reloaded.model, ids, pad), trained, atol=1e-4, rtol=0)

    # GGUF, read back the way the embedded model is read (reasonlab_plugins._gguf.convert), then
    # loaded with the family's preset: the same logits (relative to their range) and tokens
    quant = GGUF_QUANT[family]
    check_gguf_metadata(done["gguf"], family, quant)
    convert(done["gguf"], tmp_path / "back")
    back = load(tmp_path / "back", family)
    error = np.abs(logits(back.model, ids, pad) - trained).max() / np.ptp(trained)
    assert error < GGUF_BOUNDS[quant], f"{quant}: logits moved by {error:.2%} of their range"
    for text in tokenizer_texts(bundle):
        assert back.tokenizer.encode(text) == bundle.tokenizer.encode(text), text
    assert (back.tokenizer.bos_id(), back.tokenizer.eos_id(), back.tokenizer.pad_id()) == (
        bundle.tokenizer.bos_id(), bundle.tokenizer.eos_id(), bundle.tokenizer.pad_id())
    assert back.chat_template.render("hi", "sys") == bundle.chat_template.render("hi", "sys")


@pytest.mark.parametrize("family", ["qwen3", "llama3"])
def test_the_checkpoints_rope_is_applied_not_tunixs_default(tmp_path, family):
    """Tunix 0.1.7's Qwen3 and Llama 3 use rope_theta 1e6 and no scaling whatever the config
    says: the preset's model (theta 1e4 here, Llama 3.2's scaling for Llama) must differ from
    Tunix's own at every position but the first, and the routed rope must be exact."""
    import jax
    import jax.numpy as jnp

    from reasonlab.private_api import ROPE_FAMILIES
    from reasonlab_plugins._rope import _router, _scaled_rope
    from reasonlab_plugins.models_hf import family_modules

    write_checkpoint(tmp_path / "ckpt", family)
    bundle = load(tmp_path / "ckpt", family)
    model_module, params_module = family_modules(family)
    tunix_own = params_module.create_model_from_safe_tensors(str(tmp_path / "ckpt"), bundle.model.config,
                                                             dtype=np.float32)
    ids = bundle.tokenizer.encode("Ben gives away 4 of his 9 apples.")
    ours, theirs = logits(bundle.model, ids, bundle.tokenizer.pad_id()), logits(tunix_own, ids, bundle.tokenizer.pad_id())
    np.testing.assert_allclose(ours[0, 0], theirs[0, 0], atol=1e-5)  # position 0: no rotation
    assert np.abs(ours[0, 1:] - theirs[0, 1:]).max() > 1e-3

    assert family in ROPE_FAMILIES and model_module.apply_rope.routed_by_reasonlab
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 5, 2, 16))
    positions = jnp.arange(5)[None]
    original = model_module.apply_rope.original
    # a model that did not opt in gets Tunix's function as it was; the scaled path with no
    # scaling is Tunix's rotation at that theta
    np.testing.assert_array_equal(_router(original)(x, positions, 16), original(x, positions, 16))
    np.testing.assert_allclose(_scaled_rope(x, positions, 16, 1e4, (1.0,) * 8), original(x, positions, 16, 1e4),
                               atol=1e-6)


def test_a_rope_scaling_the_classes_cannot_apply_is_refused(tmp_path):
    from reasonlab.errors import ModelError

    write_checkpoint(tmp_path / "ckpt", "qwen2")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    config["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0}
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="rope_scaling 'yarn' is not supported for qwen2") as error:
        load(tmp_path / "ckpt", "qwen2")
    assert "config.json: rope_scaling" in str(error.value.where)


TRANSFORMERS_PYTHON = os.environ.get("REASONLAB_TRANSFORMERS_PYTHON")


@pytest.mark.skipif(not TRANSFORMERS_PYTHON, reason="REASONLAB_TRANSFORMERS_PYTHON names no Python with torch and "
                    "transformers (benchmarks/README.md: the trl extra's environment)")
@pytest.mark.parametrize("family", FAMILIES)
def test_transformers_reads_the_exports(tmp_path, family):
    """transformers' own loaders, not ours: the HF export gives the trained logits (< 1e-4, float32)
    and its GGUF reader (which undoes Llama's q/k permutation itself) the same within the quant's
    bound. Qwen3's head_dim is the real models' 128: transformers' GGUF reader takes it from
    Qwen3Config's default, not from attention.key_length."""
    done = train_and_export(tmp_path, family, LoraSpec(rank=4, alpha=8.0), head_dim=128 if family == "qwen3" else None)
    theirs = read_elsewhere(TRANSFORMERS_PYTHON, "transformers_reads.py",
                            {"hf": str(done["hf"]), "gguf": str(done["gguf"]), "logits_of": done["ids"]})
    trained = done["trained"][0]
    np.testing.assert_allclose(np.array(theirs["hf"]), trained, atol=1e-4, rtol=0)
    error = np.abs(np.array(theirs["gguf"]) - trained).max() / np.ptp(trained)
    assert error < GGUF_BOUNDS[GGUF_QUANT[family]], f"transformers' GGUF logits moved by {error:.2%} of their range"


LLAMA_CPP_PYTHON = os.environ.get("REASONLAB_LLAMA_CPP_PYTHON")


@pytest.mark.skipif(not LLAMA_CPP_PYTHON, reason="REASONLAB_LLAMA_CPP_PYTHON names no Python with llama-cpp-python "
                    "(README: Use your model)")
@pytest.mark.parametrize("family", FAMILIES)
def test_llama_cpp_runs_the_gguf_exports(tmp_path, family):
    """llama.cpp itself, through llama-cpp-python: the GGUF export gives the trained logits within
    the quant's bound, and llama.cpp's tokeniser, built from the file's metadata alone, splits
    text (the chat template's control tokens included) as the checkpoint's tokenizer.json does."""
    done = train_and_export(tmp_path, family, LoraSpec(rank=4, alpha=8.0))
    tok = done["bundle"].tokenizer
    texts = tokenizer_texts(done["bundle"])
    theirs = read_elsewhere(LLAMA_CPP_PYTHON, "llama_cpp_reads.py",
                            {"gguf": str(done["gguf"]), "logits_of": done["ids"], "texts": texts})
    trained = done["trained"][0]
    error = np.abs(np.array(theirs["logits"]) - trained).max() / np.ptp(trained)
    assert error < GGUF_BOUNDS[GGUF_QUANT[family]], f"llama.cpp's logits moved by {error:.2%} of their range"
    bos = [tok.bos_id()] if tok.bos_id() is not None else []
    for text, ids in zip(texts, theirs["tokens"]):
        ours = tok.encode(text)
        assert ids == (ours if ours[:1] == bos else bos + ours), text


def train_and_export(tmp_path: Path, family: str, lora, head_dim: int | None = None) -> dict:
    """A tiny checkpoint, loaded (with LoRA when given), its trainable weights moved as training
    would, then exported with the preset's exporter to HF (tmp_path/out) and GGUF (tmp_path/gguf)."""
    import jax
    from flax import nnx

    from reasonlab.modeling import apply_lora

    write_checkpoint(tmp_path / "ckpt", family, head_dim=head_dim)
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
    quant = GGUF_QUANT[family]
    export(bundle, tmp_path / "gguf", lora, format="gguf", quant=quant)
    return {"bundle": bundle, "ids": ids, "pad": pad, "trained": trained, "hf": tmp_path / "out",
            "gguf": tmp_path / "gguf" / f"model-{quant}.gguf"}


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


@pytest.mark.parametrize("family", FAMILIES)
def test_the_lean_log_probs_apply_or_fall_back_to_tunixs(tmp_path, family):
    """Qwen (tied head, ``output_hidden_states``) takes reasonlab's lean log-prob path and gives
    Tunix's values; Tunix's Llama 3 has no ``output_hidden_states``, so the GRPO stage falls back
    to Tunix's own function there (``logprobs.supported`` decides, README's model table says so)."""
    import jax.numpy as jnp
    from flax import nnx
    from tunix.rl import common

    from reasonlab import logprobs

    write_checkpoint(tmp_path / "ckpt", family)
    bundle = load(tmp_path / "ckpt", family)
    tok = bundle.tokenizer
    pad, eos = tok.pad_id(), tok.eos_id()
    prompts = [tok.encode("Ana has 3 apples."), tok.encode("What is 2 + 3?")]
    completions = [tok.encode(" 5 apples") + [eos], tok.encode(" It is 5")]
    width, length = max(map(len, prompts)), max(map(len, completions))
    prompt_ids = jnp.array([[pad] * (width - len(p)) + p for p in prompts])  # left padding, as rollouts give
    completion_ids = jnp.array([c + [pad] * (length - len(c)) for c in completions])
    graphdef, state = nnx.split(bundle.model)
    expected = common.compute_per_token_logps(graphdef, state, prompt_ids, completion_ids, pad, eos,
                                              stop_gradient=True)
    assert logprobs.supported(bundle.model) == (family != "llama3")
    if family != "llama3":
        ours, _ = logprobs.completion_logps(bundle.model, prompt_ids, completion_ids, pad, eos)
        scored = np.asarray(completion_ids != pad)  # what the loss sees; pad positions are masked out
        np.testing.assert_allclose(np.asarray(ours)[scored], np.asarray(expected)[scored], rtol=1e-5, atol=1e-5)
        assert not np.allclose(ours[0], ours[1])


@pytest.mark.parametrize("family", FAMILIES)
def test_a_grpo_run_trains_on_each_family(tmp_path, family):
    """The quickstart's GRPO stage on each family's checkpoint: rollouts through Tunix's sampler
    with the checkpoint's stop and pad ids, rewards scored, LoRA updates that move the loss
    (Qwen on the lean log-prob path, Llama on Tunix's)."""
    write_checkpoint(tmp_path / "ckpt", family)
    result = reasonlab("run", QUICKSTART, "-p", "tiny", "--no-progress", "--runs-dir", tmp_path / "runs",
                       f"model.preset={FAMILIES[family][0]}", f"model.path={tmp_path / 'ckpt'}", "model.dtype=float32",
                       "model.lora={rank=4,alpha=8.0}", "stages.sft.enabled=false", "stages.eval_base.enabled=false",
                       "stages.eval.enabled=false", "stages.grpo.steps=2", "stages.grpo.max_prompt_tokens=1024",
                       "stages.grpo.eval_options.max_prompt_tokens=1024", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = run_dir_of(tmp_path / "runs", "quickstart")
    losses = [r["train/actor/loss"] for r in read_metrics(run_dir) if "train/actor/loss" in r]
    assert len(losses) == 2 and all(np.isfinite(losses)), losses
    rollouts = [json.loads(line) for line in (run_dir / "stages/grpo/rollouts.jsonl").read_text().splitlines()]
    assert rollouts and any(r["completion"] for r in rollouts)
