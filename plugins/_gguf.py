"""Gemma 3 in GGUF, the llama.cpp / Ollama / LM Studio file format, both ways.

Reading (the embedded model's path, ``convert``): dequantise every tensor with the ``gguf``
package, rename to Hugging Face names, undo llama.cpp's ``1 + w`` norm folding, and rebuild
a SentencePiece model from the GGUF vocabulary. Writing (``write_gemma3``, for ``reasonlab
export --format gguf``) is the same in reverse: the names and metadata llama.cpp's own
``convert_hf_to_gguf.py`` writes for Gemma 3, weights as F32, F16 or Q8_0 (``gguf.quants``),
norms and 1-D tensors always F32, and the tokenizer with its chat template in the metadata.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from reasonlab.errors import ModelError

# GGUF tensor names <-> Hugging Face Gemma3 names ("{}": the layer)
NAMES = [
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("blk.{}.attn_q.weight", "model.layers.{}.self_attn.q_proj.weight"),
    ("blk.{}.attn_k.weight", "model.layers.{}.self_attn.k_proj.weight"),
    ("blk.{}.attn_v.weight", "model.layers.{}.self_attn.v_proj.weight"),
    ("blk.{}.attn_output.weight", "model.layers.{}.self_attn.o_proj.weight"),
    ("blk.{}.attn_q_norm.weight", "model.layers.{}.self_attn.q_norm.weight"),
    ("blk.{}.attn_k_norm.weight", "model.layers.{}.self_attn.k_norm.weight"),
    ("blk.{}.attn_norm.weight", "model.layers.{}.input_layernorm.weight"),
    ("blk.{}.post_attention_norm.weight", "model.layers.{}.post_attention_layernorm.weight"),
    ("blk.{}.ffn_norm.weight", "model.layers.{}.pre_feedforward_layernorm.weight"),
    ("blk.{}.post_ffw_norm.weight", "model.layers.{}.post_feedforward_layernorm.weight"),
    ("blk.{}.ffn_gate.weight", "model.layers.{}.mlp.gate_proj.weight"),
    ("blk.{}.ffn_up.weight", "model.layers.{}.mlp.up_proj.weight"),
    ("blk.{}.ffn_down.weight", "model.layers.{}.mlp.down_proj.weight"),
]
QUANTS = ("f32", "f16", "q8_0")


def _rename(name: str, pairs) -> str | None:
    for source, target in pairs:
        match = re.fullmatch(re.escape(source).replace(r"\{\}", r"(\d+)"), name)
        if match:
            return target.format(*match.groups())
    return None


def hf_name(gguf_name: str) -> str:
    name = _rename(gguf_name, NAMES)
    if name is None:
        raise ModelError(f"unexpected tensor {gguf_name!r} in a Gemma 3 GGUF")
    return name


def gguf_name(hf: str) -> str | None:
    """The GGUF name of a Hugging Face Gemma 3 tensor (None: not part of the text model)."""
    return _rename(hf, [(b, a) for a, b in NAMES])


def convert(gguf_path: Path, out: Path) -> None:
    """GGUF -> model.safetensors (float32, HF names) + tokenizer.model."""
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




# Gemma's turns as a Jinja chat template, for a checkpoint that ships none (``ChatTemplate.turns``
# with reasonlab's Gemma turns): a system message opens the first user turn, as Gemma has no system role
GEMMA_TURNS_JINJA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set prefix = messages[0]['content'] + '\n\n' %}"
    "{% set messages = messages[1:] %}{% else %}{% set prefix = '' %}{% endif %}"
    "{% for message in messages %}<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{{ (prefix if loop.first else '') + message['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


def write_gemma3(out: Path, tensors: dict[str, np.ndarray], config, tokenizer, chat_template, quant: str,
                 source_dir: Path | None = None, name: str = "gemma3") -> Path:
    """Write ``out/model-<quant>.gguf``: HF-named float32 ``tensors`` of a Gemma 3 text model."""
    import gguf

    if quant not in QUANTS:
        raise ModelError(f"unknown GGUF quantisation {quant!r}", hint=f"one of: {', '.join(QUANTS)}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"model-{quant}.gguf"
    writer = gguf.GGUFWriter(str(path.with_suffix(".gguf.tmp")), arch="gemma3")
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    add_gemma3_hparams(writer, config, source_dir)
    add_sentencepiece_tokenizer(writer, tokenizer, source_dir)
    template = chat_template_source(chat_template)
    if template:
        writer.add_chat_template(template)
    writer.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                          "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[quant])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for hf, array in tensors.items():
        target = gguf_name(hf)
        if target is None:
            continue  # a multimodal checkpoint's vision tower: not part of a text GGUF
        if hf.endswith("norm.weight"):
            array = array + 1.0  # llama.cpp's Gemma norms hold 1 + w
        data, qtype = encode(array, quant)
        writer.add_tensor(target, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(path.with_suffix(".gguf.tmp"), path)
    return path


def encode(array: np.ndarray, quant: str):
    """(data, GGML type) as llama.cpp stores it: 1-D tensors in F32; a Q8_0 tensor whose rows
    do not split into 32-value blocks in F16."""
    import gguf

    array = np.ascontiguousarray(array, dtype=np.float32)
    kind = gguf.GGMLQuantizationType
    if quant == "f32" or array.ndim == 1:
        return array, kind.F32
    if quant == "q8_0" and array.shape[-1] % gguf.GGML_QUANT_SIZES[kind.Q8_0][0] == 0:
        return gguf.quants.quantize(array, kind.Q8_0), kind.Q8_0
    return array.astype(np.float16), kind.F16


def add_gemma3_hparams(writer, config, source_dir: Path | None) -> None:
    hf_config = {}
    if source_dir is not None and (Path(source_dir) / "config.json").exists():
        hf_config = json.loads((Path(source_dir) / "config.json").read_text())
        hf_config = hf_config.get("text_config", hf_config)
    writer.add_context_length(int(hf_config.get("max_position_embeddings", 32768)))
    writer.add_embedding_length(config.embed_dim)
    writer.add_block_count(config.num_layers)
    writer.add_feed_forward_length(config.hidden_dim)
    writer.add_head_count(config.num_heads)
    writer.add_head_count_kv(config.num_kv_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_layer_norm_rms_eps(float(hf_config.get("rms_norm_eps", 1e-6)))
    writer.add_rope_freq_base(float(config.global_base_frequency))
    if config.sliding_window_size:
        writer.add_sliding_window(config.sliding_window_size)
    if config.global_scale_factor != 1.0:
        import gguf

        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(config.global_scale_factor))


def add_sentencepiece_tokenizer(writer, tokenizer, source_dir: Path | None) -> None:
    """The vocabulary as llama.cpp's "llama" (SentencePiece) tokenizer: pieces, scores and
    types; tokens the checkpoint's tokenizer_config.json marks special are CONTROL there."""
    from sentencepiece import sentencepiece_model_pb2 as spm_pb2

    proto = spm_pb2.ModelProto()
    proto.ParseFromString(tokenizer.serialized_model_proto())
    special = special_token_ids(source_dir)
    kinds = spm_pb2.ModelProto.SentencePiece
    tokens, scores, types = [], [], []
    for index, piece in enumerate(proto.pieces):
        text = piece.piece
        if piece.type == kinds.USER_DEFINED and text and not text.strip("\u2581"):
            text = text.replace("\u2581", " ")  # llama.cpp stores whitespace-only user tokens with spaces
        tokens.append(text.encode("utf-8"))
        scores.append(piece.score)
        types.append(3 if index in special and piece.type == kinds.USER_DEFINED else int(piece.type))
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(tokenizer.bos_id())
    writer.add_eos_token_id(tokenizer.eos_id())
    writer.add_unk_token_id(tokenizer.unk_id())
    writer.add_pad_token_id(tokenizer.pad_id())
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(bool(proto.normalizer_spec.add_dummy_prefix))


def special_token_ids(source_dir: Path | None) -> set[int]:
    config = Path(source_dir) / "tokenizer_config.json" if source_dir is not None else None
    if config is None or not config.exists():
        return set()
    decoder = json.loads(config.read_text()).get("added_tokens_decoder", {})
    return {int(i) for i, token in decoder.items() if token.get("special")}


def chat_template_source(chat_template) -> str | None:
    if chat_template is None:
        return None
    if getattr(chat_template, "kind", "turns") == "jinja":
        return chat_template.source
    return GEMMA_TURNS_JINJA
