"""The hackathon models, loaded from real Hugging Face-format checkpoints.

Presets: ``gemma3-1b-it``, ``gemma3-270m-it``, ``gemma3-12b-it`` (Gemma 3; the 12B's
multimodal checkpoint loads its language model) and ``gemma2-2b-it`` (Gemma 2).
A checkpoint is a folder with ``*.safetensors``, ``config.json`` and the SentencePiece
``tokenizer.model`` (what ``huggingface-cli download google/gemma-3-1b-it`` gives). Where
the weights come from, in order:

1. ``model.path`` in the recipe (a local folder);
2. ``$REASONLAB_MODELS/<preset>`` if that folder exists;
3. the Hugging Face Hub (``google/<name>``; gated: needs ``HF_TOKEN`` and network);
4. Kaggle (``kagglehub``; needs ``KAGGLE_USERNAME``/``KAGGLE_KEY`` and network).

If none works the run stops before any training with an error listing what was tried.
The architecture comes from the preset's family; sizes come from the folder's
``config.json`` when present (so a small checkpoint in the same format loads too).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from reasonlab import hookimpl
from reasonlab.errors import ModelError


@dataclass(frozen=True)
class Preset:
    name: str
    family: str  # "gemma3" | "gemma2"
    hf_repo: str
    kaggle_handle: str


PRESETS = [
    Preset("gemma3-1b-it", "gemma3", "google/gemma-3-1b-it", "google/gemma-3/transformers/gemma-3-1b-it"),
    Preset("gemma3-270m-it", "gemma3", "google/gemma-3-270m-it", "google/gemma-3/transformers/gemma-3-270m-it"),
    Preset("gemma3-12b-it", "gemma3", "google/gemma-3-12b-it", "google/gemma-3/transformers/gemma-3-12b-it"),
    Preset("gemma2-2b-it", "gemma2", "google/gemma-2-2b-it", "google/gemma-2/transformers/gemma-2-2b-it"),
]
STOP_IDS = [1, 106]
# Gemma's turns (no system role: a system prompt opens the user turn), as in its chat template
GEMMA_CHAT = "<start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n"
# Gemma's attention and MLP projections (Tunix's module names): what LoRA wraps by default
GEMMA_LORA_MODULES = ".*q_einsum|.*kv_einsum|.*gate_proj|.*down_proj|.*up_proj|.*attn_vec_einsum"


def is_checkpoint(path: Path, tokenizer_file: str = "tokenizer.model") -> bool:
    return path.is_dir() and any(path.glob("*.safetensors")) and (path / tokenizer_file).exists()


def locate(preset: Preset, spec, tokenizer_file: str = "tokenizer.model") -> Path:
    """The checkpoint folder of ``preset``: ``model.path``, ``$REASONLAB_MODELS/<preset>``, the Hub, Kaggle."""
    tried = []
    if spec.path:
        path = Path(spec.path).expanduser()
        if is_checkpoint(path, tokenizer_file):
            return path
        tried.append(f"model.path = {str(path)!r}: no *.safetensors + {tokenizer_file} there")
    root = os.environ.get("REASONLAB_MODELS")
    if root:
        path = Path(root) / preset.name
        if is_checkpoint(path, tokenizer_file):
            return path
        tried.append(f"$REASONLAB_MODELS/{preset.name}: not a checkpoint folder")
    else:
        tried.append("$REASONLAB_MODELS: not set")
    for source, fetch in (("Hugging Face Hub", _from_hf), ("Kaggle", _from_kaggle)):
        try:
            path = fetch(preset)
            if is_checkpoint(path, tokenizer_file):
                return path
            tried.append(f"{source}: download lacks *.safetensors or {tokenizer_file}")
        except Exception as exc:  # offline, gated, no credentials: say so and go on
            tried.append(f"{source}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
    raise ModelError(
        f"no weights for model preset {preset.name!r}; tried:\n    " + "\n    ".join(tried),
        hint=(f"download {preset.hf_repo} (safetensors + {tokenizer_file}) and set model.path, "
              f"or run a profile on the embedded model: --profile cpu"),
    )


def _from_hf(preset: Preset) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(preset.hf_repo, allow_patterns=["*.safetensors", "*.json", "tokenizer.model"]))


def _from_kaggle(preset: Preset) -> Path:
    import kagglehub

    return Path(kagglehub.model_download(preset.kaggle_handle))


def gemma3_config(preset: Preset, hf: dict):
    from tunix.models.gemma3 import model as gemma3_model

    base = {"gemma3-1b-it": gemma3_model.ModelConfig.gemma3_1b_it,
            "gemma3-270m-it": gemma3_model.ModelConfig.gemma3_270m_it,
            "gemma3-12b-it": gemma3_model.ModelConfig.gemma3_12b_it}[preset.name]()
    if hf:
        base.num_layers = hf["num_hidden_layers"]
        base.num_embed = hf["vocab_size"]
        base.embed_dim = hf["hidden_size"]
        base.hidden_dim = hf["intermediate_size"]
        base.num_heads = hf["num_attention_heads"]
        base.head_dim = hf.get("head_dim", hf["hidden_size"] // hf["num_attention_heads"])
        base.num_kv_heads = hf["num_key_value_heads"]
        base.sliding_window_size = hf.get("sliding_window", base.sliding_window_size)
        base.global_base_frequency = int(hf.get("rope_theta", base.global_base_frequency))
        base.local_base_frequency = int(hf.get("rope_local_base_freq", base.local_base_frequency))
    return base


def gemma2_config(hf: dict):
    import dataclasses

    from tunix.models.gemma import model as gemma_model

    base = gemma_model.ModelConfig.gemma2_2b_it()
    if hf:
        layers = hf["num_hidden_layers"]
        base = dataclasses.replace(
            base, num_layers=layers, num_embed=hf["vocab_size"], embed_dim=hf["hidden_size"],
            hidden_dim=hf["intermediate_size"], num_heads=hf["num_attention_heads"], head_dim=hf["head_dim"],
            num_kv_heads=hf["num_key_value_heads"], sliding_window_size=hf.get("sliding_window", 4096),
            attention_types=(gemma_model.AttentionType.LOCAL_SLIDING, gemma_model.AttentionType.GLOBAL) * (layers // 2))
    return base


def load_from_dir(preset: Preset, directory: Path, dtype_name: str | None, mesh=None):
    import jax.numpy as jnp
    import sentencepiece as spm

    from reasonlab.modeling import ModelBundle, single_device_mesh

    config_file = directory / "config.json"
    hf = json.loads(config_file.read_text()) if config_file.exists() else {}
    hf = hf.get("text_config", hf)
    from reasonlab.machine import resolve_dtype

    # unset: bfloat16 (half a 1-2B model's memory); "auto": the CPU's faster dtype
    dtype = jnp.float32 if resolve_dtype(dtype_name, unset="bfloat16") == "float32" else jnp.bfloat16
    mesh = mesh if mesh is not None else single_device_mesh()
    if preset.family == "gemma3":
        from tunix.models.gemma3 import params_safetensors

        config = gemma3_config(preset, hf)
        config.param_dtype = dtype
    else:
        from tunix.models.gemma import params_safetensors

        config = gemma2_config(hf)
    try:
        with mesh:
            model = params_safetensors.create_model_from_safe_tensors(str(directory), config, mesh=mesh, dtype=dtype)
    except (ValueError, KeyError) as exc:
        raise ModelError(f"checkpoint does not fit preset {preset.name!r}: {exc}", where=str(directory)) from exc
    tokenizer = spm.SentencePieceProcessor(model_file=str(directory / "tokenizer.model"))
    if tokenizer.pad_id() != 0:
        raise ModelError(f"tokenizer pad id is {tokenizer.pad_id()}, reasonlab needs 0", where=str(directory / "tokenizer.model"))
    return ModelBundle(model=model, tokenizer=tokenizer, preset=preset.name, stop_ids=STOP_IDS, source_dir=directory,
                       chat_template=chat_template_of(directory, preset), lora_modules=GEMMA_LORA_MODULES)


def chat_template_of(directory: Path, preset: Preset):
    """The template the checkpoint ships (the way it was instruction-tuned), else Gemma's turns
    for an -it preset; base models: none."""
    from reasonlab.chat import ChatTemplate

    if not preset.name.endswith("-it"):
        return None
    return checkpoint_chat_template(directory) or ChatTemplate.turns(GEMMA_CHAT)


def checkpoint_chat_template(directory: Path):
    """``tokenizer_config.json``'s ``chat_template`` (the default one of several), or None."""
    from reasonlab.chat import ChatTemplate

    config = directory / "tokenizer_config.json"
    settings = json.loads(config.read_text()) if config.exists() else {}
    source = settings.get("chat_template")
    if isinstance(source, list):  # several named templates: the default one
        source = next((t["template"] for t in source if t.get("name") == "default"), None)
    if not source:
        return None
    try:
        return ChatTemplate.jinja(source, bos_token=_token(settings.get("bos_token")),
                                  eos_token=_token(settings.get("eos_token")))
    except Exception as exc:  # jinja2.TemplateSyntaxError: say where, before anything trains
        raise ModelError(f"the checkpoint's chat template does not parse: {exc}", where=str(config),
                         hint="fix tokenizer_config.json's chat_template, or remove it") from exc


def _token(value) -> str:
    return value.get("content", "") if isinstance(value, dict) else (value or "")


def loader(preset: Preset):
    def load(spec, context=None):
        return load_from_dir(preset, locate(preset, spec), spec.dtype, context.load_mesh() if context else None)

    return load


def unfuse_gemma_attention(target: str, params: dict):
    """The loader's ``tmp.layers.N.attn.{q,k,v}`` (embed, heads, head_dim), from the model's
    fused ``qkv_einsum`` / ``q_einsum`` + ``kv_einsum`` (heads, embed, head_dim)."""
    layer, slot = re.fullmatch(r"tmp\.layers\.(\d+)\.attn\.([qkv])", target).groups()
    prefix = f"layers.{layer}.attn."
    if prefix + "qkv_einsum.w" in params:
        heads = params[prefix + "qkv_einsum.w"]["qkv".index(slot)]
    elif slot == "q":
        heads = params[prefix + "q_einsum.w"]
    else:
        heads = params[prefix + "kv_einsum.w"]["kv".index(slot)]
    return heads.transpose(1, 0, 2)


def gemma_family(model) -> tuple[str, object]:
    """("gemma3" | "gemma2", Tunix's safetensors module of that family) for a loaded model."""
    from tunix.models.gemma import model as gemma_model
    from tunix.models.gemma import params_safetensors as gemma2_safetensors
    from tunix.models.gemma3 import model as gemma3_model
    from tunix.models.gemma3 import params_safetensors as gemma3_safetensors

    if isinstance(model, gemma3_model.Gemma3):
        return "gemma3", gemma3_safetensors
    if isinstance(model, gemma_model.Gemma):
        return "gemma2", gemma2_safetensors
    raise ModelError(f"not a Gemma model: {type(model).__name__}")


def export_gemma(bundle, out: Path, lora, format: str = "hf", quant: str | None = None) -> None:
    """Write a Gemma 2/3 model (LoRA merged, or fully fine-tuned) as HF safetensors + config +
    tokenizer, or (``format = "gguf"``) as one GGUF file for llama.cpp / Ollama."""
    from reasonlab.private_api import hf_key_mapping
    from reasonlab_plugins import _hf_export

    if bundle.source_dir is None:
        raise ModelError(f"model preset {bundle.preset!r} was not loaded from safetensors, so there is no "
                         "checkpoint layout to write back to")
    backbone = bundle.base if bundle.lora else bundle.model
    family, safetensors_module = gemma_family(backbone)
    params = _hf_export.merged_params(bundle.model, lora.alpha / lora.rank if lora else None)
    tensors = _hf_export.hf_tensors(params, bundle.source_dir, hf_key_mapping(safetensors_module, backbone.config),
                                    unfuse_gemma_attention)
    if format == "gguf":
        from reasonlab_plugins import _gguf

        def metadata(writer):
            _gguf.add_gemma_hparams(writer, family, backbone.config, bundle.source_dir)
            _gguf.add_sentencepiece_tokenizer(writer, bundle.tokenizer, bundle.source_dir)
            template = _gguf.chat_template_source(bundle.chat_template)
            if template:
                writer.add_chat_template(template)

        _gguf.write(out, tensors, family, metadata, quant or "f16", bundle.preset)
        return
    if quant:
        raise ModelError(f"--quant {quant} applies to GGUF export only", hint="add --format gguf")
    _hf_export.write_checkpoint(out, tensors, bundle.source_dir, hf_config(backbone.config, family))


def hf_config(config, family: str) -> dict:
    """A transformers config.json for a model whose source folder has none (the embedded GGUF)."""
    common = {"num_hidden_layers": config.num_layers, "vocab_size": config.num_embed, "hidden_size": config.embed_dim,
              "intermediate_size": config.hidden_dim, "num_attention_heads": config.num_heads,
              "head_dim": config.head_dim, "num_key_value_heads": config.num_kv_heads,
              "sliding_window": config.sliding_window_size, "pad_token_id": 0, "bos_token_id": 2,
              "eos_token_id": STOP_IDS, "torch_dtype": "float32"}
    if family == "gemma2":
        return {"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", **common}
    return {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", **common,
            "rope_theta": config.global_base_frequency, "rope_local_base_freq": config.local_base_frequency}


@hookimpl
def register_models(register):
    for preset in PRESETS:
        register(preset.name, loader(preset), export=export_gemma)
