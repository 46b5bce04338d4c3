"""Qwen2.5, Qwen3 and Llama 3.2 from Hugging Face-format checkpoints, through Tunix's own
model classes (``tunix.models.qwen2`` / ``qwen3`` / ``llama3``).

Presets: ``qwen2.5-0.5b-instruct``, ``qwen2.5-1.5b-instruct``, ``qwen3-0.6b``, ``qwen3-1.7b``,
``llama3.2-1b-instruct``, ``llama3.2-3b-instruct``. A checkpoint is a folder with
``*.safetensors``, ``config.json``, ``tokenizer.json`` and ``tokenizer_config.json`` (what
``huggingface-cli download Qwen/Qwen2.5-0.5B-Instruct`` gives), found the way the Gemma
presets find theirs (``model.path``, ``$REASONLAB_MODELS/<preset>``, the Hub, Kaggle). Sizes
come from ``config.json`` (so a small checkpoint of the same family loads too). The tokenizer
is the checkpoint's ``tokenizer.json`` (Hugging Face ``tokenizers``), with its BOS (none for
Qwen), EOS and pad from ``tokenizer_config.json``; prompts go through the checkpoint's chat
template. ``reasonlab export`` writes them back, LoRA merged or fully fine-tuned, as HF
safetensors or as GGUF (``--format gguf``: llama.cpp's "qwen2" / "qwen3" / "llama"
architectures with the byte-level BPE vocabulary, merges and chat template).

Tunix 0.1.7's Qwen3 and Llama 3 ignore the checkpoint's ``rope_theta`` (always 1e6; Llama
3.2's is 5e5) and Llama 3's ``rope_scaling`` ("llama3": low frequencies divided by up to
``factor``); the load routes their rotary embedding to the checkpoint's (``_rope.py``), so the
logits are transformers' (checked by tests/test_presets_hf.py where transformers is
installed). Other scaling types (YaRN, linear) are refused. GGUF export writes the Llama 3
scaling as llama.cpp's converter does (``rope_freqs.weight``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from reasonlab import hookimpl
from reasonlab.errors import ModelError
from reasonlab_plugins.models_checkpoint import Preset, checkpoint_chat_template, locate

PRESETS = [
    Preset("qwen2.5-0.5b-instruct", "qwen2", "Qwen/Qwen2.5-0.5B-Instruct", "qwen-lm/qwen2.5/transformers/0.5b-instruct"),
    Preset("qwen2.5-1.5b-instruct", "qwen2", "Qwen/Qwen2.5-1.5B-Instruct", "qwen-lm/qwen2.5/transformers/1.5b-instruct"),
    Preset("qwen3-0.6b", "qwen3", "Qwen/Qwen3-0.6B", "qwen-lm/qwen-3/transformers/0.6b"),
    Preset("qwen3-1.7b", "qwen3", "Qwen/Qwen3-1.7B", "qwen-lm/qwen-3/transformers/1.7b"),
    Preset("llama3.2-1b-instruct", "llama3", "meta-llama/Llama-3.2-1B-Instruct",
           "metaresearch/llama-3.2/transformers/1b-instruct"),
    Preset("llama3.2-3b-instruct", "llama3", "meta-llama/Llama-3.2-3B-Instruct",
           "metaresearch/llama-3.2/transformers/3b-instruct"),
]
# Tunix's ModelConfig constructor per preset
BASE_CONFIGS = {"qwen2.5-0.5b-instruct": "qwen2p5_0p5b", "qwen2.5-1.5b-instruct": "qwen2p5_1p5b",
                "qwen3-0.6b": "qwen3_0p6b", "qwen3-1.7b": "qwen3_1p7b",
                "llama3.2-1b-instruct": "llama3p2_1b", "llama3.2-3b-instruct": "llama3p2_3b"}
# the attention and MLP projections in Tunix's modules of these families: what LoRA wraps
LORA_MODULES = ".*q_proj|.*k_proj|.*v_proj|.*o_proj|.*gate_proj|.*up_proj|.*down_proj"
# Llama 3's tokenizers name no pad token; this reserved one is what Meta's own fine-tuning pads with
LLAMA_PAD = "<|finetune_right_pad_id|>"


def family_modules(family: str):
    """(Tunix's model module, its safetensors params module) of a family."""
    import importlib

    return (importlib.import_module(f"tunix.models.{family}.model"),
            importlib.import_module(f"tunix.models.{family}.params"))


def model_config(preset: Preset, hf: dict, dtype):
    model_module, _ = family_modules(preset.family)
    base = getattr(model_module.ModelConfig, BASE_CONFIGS[preset.name])()
    sizes = {"num_layers": "num_hidden_layers", "vocab_size": "vocab_size", "embed_dim": "hidden_size",
             "hidden_dim": "intermediate_size", "num_heads": "num_attention_heads",
             "num_kv_heads": "num_key_value_heads", "rope_theta": "rope_theta", "norm_eps": "rms_norm_eps"}
    changes = {ours: type(getattr(base, ours))(hf[theirs]) for ours, theirs in sizes.items() if theirs in hf}
    if "hidden_size" in hf:
        changes["head_dim"] = hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"]
    tied = "weight_tying" if preset.family == "llama3" else "use_tied_embedding"
    if "tie_word_embeddings" in hf:
        changes[tied] = bool(hf["tie_word_embeddings"])
    for field in ("dtype", "param_dtype"):
        if hasattr(base, field):
            changes[field] = dtype
    return dataclasses.replace(base, **changes)


class CheckpointTokenizer:
    """Tunix's tokenizer contract (``encode``, ``decode``, ``bos_id``, ``eos_id``, ``pad_id``)
    over a checkpoint's ``tokenizer.json``. Special tokens written in the text (the chat
    template's turns) encode as themselves; ``decode`` drops them."""

    def __init__(self, directory: Path):
        from tokenizers import Tokenizer

        self.directory = directory
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        config = directory / "tokenizer_config.json"
        self.settings = json.loads(config.read_text()) if config.exists() else {}
        self._bos = self._id("bos_token")
        self._eos = self._id("eos_token")
        if self._eos is None:
            raise ModelError("the tokenizer names no eos_token", where=str(config),
                             hint="set eos_token in tokenizer_config.json")
        self._pad = self._id("pad_token")
        if self._pad is None:
            self._pad = self._tokenizer.token_to_id(LLAMA_PAD)
        if self._pad is None:
            self._pad = self._eos

    def _id(self, key: str) -> int | None:
        token = self.settings.get(key)
        token = token.get("content") if isinstance(token, dict) else token
        if not token:
            return None
        index = self._tokenizer.token_to_id(token)
        if index is None:
            raise ModelError(f"{key} {token!r} is not in the vocabulary", where=str(self.directory / "tokenizer.json"))
        return index

    def encode(self, text: str, **_) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids, **_) -> str:
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

    def bos_id(self) -> int | None:
        return self._bos

    def eos_id(self) -> int:
        return self._eos

    def pad_id(self) -> int:
        return self._pad

    def token(self, text: str) -> int | None:
        return self._tokenizer.token_to_id(text)


def stop_ids(directory: Path, tokenizer: CheckpointTokenizer) -> list[int]:
    """The EOS and every id ``generation_config.json`` stops on (Llama 3: end of turn and of text)."""
    ids = [tokenizer.eos_id()]
    config = directory / "generation_config.json"
    if config.exists():
        more = json.loads(config.read_text()).get("eos_token_id", [])
        ids += [int(i) for i in (more if isinstance(more, list) else [more])]
    return list(dict.fromkeys(ids))


def rope_divisors(preset: Preset, hf: dict, config_file: Path):
    """Llama 3's per-frequency divisors (from ``rope_scaling``, or the ``rope_freqs`` a GGUF
    read back carries), None without scaling; a scaling Tunix's classes cannot apply is refused."""
    import numpy as np

    from reasonlab_plugins._gguf import llama3_rope_factors

    scaling = hf.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind in (None, "default"):
        return np.asarray(hf["rope_freqs"], dtype=np.float32) if "rope_freqs" in hf else None
    if preset.family != "llama3" or kind != "llama3":
        raise ModelError(f"rope_scaling {kind!r} is not supported for {preset.family}", where=f"{config_file}: rope_scaling",
                         hint="use a checkpoint without it, or the original context length")
    return llama3_rope_factors(hf)


def load_from_dir(preset: Preset, directory: Path, dtype_name: str | None, mesh=None):
    import jax.numpy as jnp

    from reasonlab.machine import resolve_dtype
    from reasonlab.modeling import ModelBundle, single_device_mesh
    from reasonlab.private_api import ROPE_FAMILIES
    from reasonlab_plugins._rope import checkpoint_rope

    config_file = directory / "config.json"
    hf = json.loads(config_file.read_text()) if config_file.exists() else {}
    dtype = jnp.float32 if resolve_dtype(dtype_name, unset="bfloat16") == "float32" else jnp.bfloat16
    config = model_config(preset, hf, dtype)
    divisors = rope_divisors(preset, hf, config_file)
    _, params_module = family_modules(preset.family)
    mesh = mesh if mesh is not None else single_device_mesh()
    try:
        with mesh:
            model = params_module.create_model_from_safe_tensors(str(directory), config, mesh=mesh, dtype=dtype)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"checkpoint does not fit preset {preset.name!r}: {exc}", where=str(directory)) from exc
    if preset.family in ROPE_FAMILIES:
        checkpoint_rope(model, preset.family, config.rope_theta, divisors)
    tokenizer = CheckpointTokenizer(directory)
    return ModelBundle(model=model, tokenizer=tokenizer, preset=preset.name, stop_ids=stop_ids(directory, tokenizer),
                       source_dir=directory, chat_template=checkpoint_chat_template(directory),
                       lora_modules=LORA_MODULES)


def loader(preset: Preset):
    def load(spec, context=None):
        directory = locate(preset, spec, tokenizer_file="tokenizer.json")
        return load_from_dir(preset, directory, spec.dtype, context.load_mesh() if context else None)

    return load


def exporter(preset: Preset):
    def export(bundle, out: Path, lora, format: str = "hf", quant: str | None = None) -> None:
        """HF safetensors + config + tokenizer, or one GGUF file; LoRA merged or fully fine-tuned."""
        from reasonlab.private_api import hf_key_mapping
        from reasonlab_plugins import _gguf, _hf_export

        if quant and format != "gguf":
            raise ModelError(f"--quant {quant} applies to GGUF export only", hint="add --format gguf")
        backbone = bundle.base if bundle.lora else bundle.model
        _, params_module = family_modules(preset.family)
        params = _hf_export.merged_params(bundle.model, lora.alpha / lora.rank if lora else None)
        tensors = _hf_export.hf_tensors(params, bundle.source_dir, hf_key_mapping(params_module, backbone.config))
        if format != "gguf":
            _hf_export.write_checkpoint(out, tensors, bundle.source_dir)
            return
        hf = _gguf.source_config(bundle.source_dir)

        def metadata(writer):
            _gguf.add_bpe_hparams(writer, preset.family, hf)
            _gguf.add_bpe_tokenizer(writer, bundle.tokenizer, bundle.source_dir, hf)
            if bundle.chat_template is not None and bundle.chat_template.kind == "jinja":
                writer.add_chat_template(bundle.chat_template.source)

        factors = _gguf.llama3_rope_factors(hf) if preset.family == "llama3" else None
        _gguf.write(out, tensors, preset.family, metadata, quant or "f16", preset.name,
                    heads=(backbone.config.num_heads, backbone.config.num_kv_heads),
                    extra={"rope_freqs.weight": factors} if factors is not None else None)

    return export


@hookimpl
def register_models(register):
    for preset in PRESETS:
        register(preset.name, loader(preset), export=exporter(preset))
