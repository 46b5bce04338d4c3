"""GGUF, the llama.cpp / Ollama / LM Studio file format, both ways, for every family that
trains here: Gemma 2 and 3 (SentencePiece vocabularies), Qwen2.5, Qwen3 and Llama 3 (byte-level BPE).

Reading (the embedded model's path, ``convert``): dequantise every tensor with the ``gguf``
package, rename to Hugging Face names (the package's own ``TensorNameMap``), undo what
llama.cpp's converter does to the weights (Gemma's ``1 + w`` norms, Llama's rotary
permutation of q and k), and rebuild the tokenizer: a SentencePiece model for Gemma, a
``tokenizer.json`` + ``tokenizer_config.json`` + ``config.json`` for the BPE families, so the
folder loads with the family's preset (``model.path``). Writing (``write``, for ``reasonlab
export --format gguf``) is the same in reverse, with the names and metadata llama.cpp's
``convert_hf_to_gguf.py`` writes: weights as F32, F16 or Q8_0 (``gguf.quants``), norms and
other 1-D tensors always F32, the tokenizer with its chat template in the metadata.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from reasonlab.errors import ModelError

# reasonlab's family -> llama.cpp's architecture name
ARCHS = {"gemma3": "gemma3", "gemma2": "gemma2", "qwen2": "qwen2", "qwen3": "qwen3", "llama3": "llama"}
FAMILIES = {arch: family for family, arch in ARCHS.items()}
GEMMA = ("gemma2", "gemma3")
QUANTS = ("f32", "f16", "q8_0")
# every Hugging Face tensor name of these families' text models ("{}": the layer)
HF_TENSORS = ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"] + [
    f"model.layers.{{}}.{name}" for name in (
        "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
        "self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias",
        "self_attn.q_norm.weight", "self_attn.k_norm.weight", "input_layernorm.weight",
        "post_attention_layernorm.weight", "pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight",
        "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")]
# the byte-level BPE pre-tokenizers llama.cpp knows by name, by the split regex of tokenizer.json
BPE_PRE_TOKENIZERS = {
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "llama-bpe": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}
TEXT_PREFIXES = ("model.embed_tokens", "model.norm", "model.layers.", "lm_head")


def name_map(arch: str, layers: int) -> dict[str, str]:
    """Hugging Face name -> GGUF name of every tensor ``arch`` has (from the ``gguf`` package)."""
    import gguf

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], layers)
    out = {}
    for template in HF_TENSORS:
        for layer in range(layers) if "{}" in template else [None]:
            hf = template.format(layer)
            target = names.get_name(hf, try_suffixes=(".weight", ".bias"))
            if target is not None:
                out[hf] = target
    return out


def llama_permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """HF's rotate-half q/k rows -> llama.cpp's interleaved pairs (its converter's ``permute``)."""
    return weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(
        weights.shape)


def llama_unpermute(weights: np.ndarray, heads: int) -> np.ndarray:
    return weights.reshape(heads, weights.shape[0] // heads // 2, 2, *weights.shape[1:]).swapaxes(1, 2).reshape(
        weights.shape)


def convert(gguf_path: Path, out: Path) -> None:
    """GGUF -> model.safetensors (float32, HF names) + the tokenizer (tokenizer.model for Gemma;
    tokenizer.json, tokenizer_config.json and config.json for the BPE families). A Llama 3
    ``rope_freqs`` tensor goes into config.json as ``rope_freqs`` (our key: the divisors
    themselves, since llama.cpp's file keeps no ``rope_scaling``), which the preset applies."""
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.numpy import save_file

    reader = GGUFReader(str(gguf_path))
    arch = _text(reader, "general.architecture")
    family = FAMILIES.get(arch)
    if family is None:
        raise ModelError(f"a GGUF of architecture {arch!r} is not one reasonlab reads", where=str(gguf_path),
                         hint=f"one of: {', '.join(FAMILIES)}")
    hparams = gguf_hparams(reader, arch)
    to_hf = {target: hf for hf, target in name_map(arch, hparams["num_hidden_layers"]).items()}
    tensors = {}
    for tensor in reader.tensors:
        if tensor.name == "rope_freqs.weight":  # Llama 3's rope scaling, one divisor per frequency:
            hparams["rope_freqs"] = np.asarray(tensor.data, dtype=np.float32).tolist()  # config.json, for _rope
            continue
        name = to_hf.get(tensor.name)
        if name is None:
            raise ModelError(f"unexpected tensor {tensor.name!r} in a {arch} GGUF", where=str(gguf_path))
        array = np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
        if family in GEMMA and name.endswith("norm.weight"):
            array = array - 1.0  # llama.cpp folds Gemma's (1 + w) into the norm weights
        if family == "llama3" and (".q_proj." in name or ".k_proj." in name):
            heads = hparams["num_attention_heads" if ".q_proj." in name else "num_key_value_heads"]
            array = llama_unpermute(array, heads)
        tensors[name] = np.ascontiguousarray(array)
    out.mkdir(parents=True, exist_ok=True)
    files = {"model.safetensors": None}
    if _text(reader, "tokenizer.ggml.model") == "llama":
        files["tokenizer.model"] = sentencepiece_model(reader)
        files["tokenizer_config.json"] = control_tokens_config(reader)
    else:
        hparams |= {"model_type": family if family != "llama3" else "llama",
                    "tie_word_embeddings": "lm_head.weight" not in tensors}
        files |= bpe_tokenizer_files(reader, gguf_path) | {"config.json": json.dumps(hparams, indent=2).encode()}
    save_file(tensors, str(out / "model.safetensors.tmp"))
    for name, data in files.items():
        if data is not None:
            (out / f"{name}.tmp").write_bytes(data)
    for name in files:
        os.replace(out / f"{name}.tmp", out / name)


def _text(reader, key: str) -> str:
    return bytes(_field(reader, key)[0]).decode("utf-8")


def _number(reader, key: str):
    return _field(reader, key)[0][0].item()


def gguf_hparams(reader, arch: str) -> dict:
    """The GGUF's sizes as transformers config.json keys."""
    keys = {"num_hidden_layers": "block_count", "hidden_size": "embedding_length",
            "intermediate_size": "feed_forward_length", "num_attention_heads": "attention.head_count",
            "num_key_value_heads": "attention.head_count_kv", "head_dim": "attention.key_length",
            "rms_norm_eps": "attention.layer_norm_rms_epsilon", "rope_theta": "rope.freq_base",
            "max_position_embeddings": "context_length"}
    out = {ours: _number(reader, f"{arch}.{theirs}") for ours, theirs in keys.items() if f"{arch}.{theirs}" in reader.fields}
    out["vocab_size"] = len(reader.fields["tokenizer.ggml.tokens"].data)
    return out


def control_tokens_config(reader) -> bytes:
    """A tokenizer_config.json naming the GGUF's control tokens (``<start_of_turn>``, …) as
    special: the SentencePiece model keeps them as user-defined, so an export would lose them."""
    tokens = [bytes(t).decode("utf-8") for t in _field(reader, "tokenizer.ggml.tokens")]
    types = [int(t[0]) for t in _field(reader, "tokenizer.ggml.token_type")]
    decoder = {str(i): {"content": tokens[i], "lstrip": False, "normalized": False, "rstrip": False,
                        "single_word": False, "special": True} for i, kind in enumerate(types) if kind == 3}
    return json.dumps({"added_tokens_decoder": decoder}, indent=2).encode("utf-8")


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
    # llama.cpp's converter stores Gemma's <unk> as a CONTROL token; SentencePiece needs it UNKNOWN
    # (else unk_id() is -1, which no GGUF field can hold when the model is exported again)
    unknown = (int(_field(reader, "tokenizer.ggml.unknown_token_id")[0][0])
               if "tokenizer.ggml.unknown_token_id" in reader.fields else None)
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
        if index == unknown:
            entry.type = kinds.UNKNOWN
        elif kind == 3:
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


def write(out: Path, tensors: dict[str, np.ndarray], family: str, metadata, quant: str, name: str,
          heads: tuple[int, int] | None = None, extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``out/model-<quant>.gguf`` from HF-named float32 ``tensors`` of a ``family`` text
    model; ``metadata(writer)`` adds its sizes, tokenizer and chat template; ``heads`` (query,
    key/value) for Llama's q/k permutation; ``extra``: GGUF-named tensors as they are."""
    import gguf

    if quant not in QUANTS:
        raise ModelError(f"unknown GGUF quantisation {quant!r}", hint=f"one of: {', '.join(QUANTS)}")
    arch = ARCHS[family]
    layers = len({n.split(".")[2] for n in tensors if n.startswith("model.layers.")})
    names = name_map(arch, layers)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"model-{quant}.gguf"
    writer = gguf.GGUFWriter(str(path.with_suffix(".gguf.tmp")), arch=arch)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    metadata(writer)
    writer.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                          "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[quant])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for target, array in (extra or {}).items():
        writer.add_tensor(target, np.ascontiguousarray(array, dtype=np.float32), raw_dtype=gguf.GGMLQuantizationType.F32)
    for hf, array in tensors.items():
        target = names.get(hf)
        if target is None:
            if hf.startswith(TEXT_PREFIXES):
                raise ModelError(f"{hf}: llama.cpp's {arch} architecture has no tensor for it")
            continue  # a multimodal checkpoint's vision tower: not part of a text GGUF
        if family in GEMMA and hf.endswith("norm.weight"):
            array = array + 1.0  # llama.cpp's Gemma norms hold 1 + w
        if family == "llama3" and (".q_proj." in hf or ".k_proj." in hf):
            array = llama_permute(array, heads[0] if ".q_proj." in hf else heads[1])
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


def source_config(source_dir: Path | None) -> dict:
    """The checkpoint's config.json (a multimodal one's text part), or {}."""
    if source_dir is None or not (Path(source_dir) / "config.json").exists():
        return {}
    config = json.loads((Path(source_dir) / "config.json").read_text())
    return config.get("text_config", config)


def add_gemma_hparams(writer, family: str, config, source_dir: Path | None) -> None:
    """What llama.cpp's converter writes for Gemma 2 / Gemma 3, from Tunix's config of the model."""
    hf = source_config(source_dir)
    writer.add_context_length(int(hf.get("max_position_embeddings", 32768 if family == "gemma3" else 8192)))
    writer.add_embedding_length(config.embed_dim)
    writer.add_block_count(config.num_layers)
    writer.add_feed_forward_length(config.hidden_dim)
    writer.add_head_count(config.num_heads)
    writer.add_head_count_kv(config.num_kv_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_layer_norm_rms_eps(float(hf.get("rms_norm_eps", 1e-6)))
    if config.sliding_window_size:
        writer.add_sliding_window(config.sliding_window_size)
    if family == "gemma2":
        if config.attn_logits_soft_cap:
            writer.add_attn_logit_softcapping(float(config.attn_logits_soft_cap))
        if config.final_logit_softcap:
            writer.add_final_logit_softcapping(float(config.final_logit_softcap))
        return
    writer.add_rope_freq_base(float(config.global_base_frequency))
    if config.global_scale_factor != 1.0:
        import gguf

        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(config.global_scale_factor))


def add_bpe_hparams(writer, family: str, hf: dict) -> None:
    """What llama.cpp's converter writes for Qwen2, Qwen3 and Llama from config.json."""
    heads = hf["num_attention_heads"]
    head_dim = hf.get("head_dim") or hf["hidden_size"] // heads
    writer.add_context_length(int(hf.get("max_position_embeddings", 32768)))
    writer.add_embedding_length(hf["hidden_size"])
    writer.add_block_count(hf["num_hidden_layers"])
    writer.add_feed_forward_length(hf["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(hf.get("num_key_value_heads", heads))
    writer.add_rope_freq_base(float(hf.get("rope_theta", 10_000)))
    writer.add_layer_norm_rms_eps(float(hf.get("rms_norm_eps", 1e-6)))
    if "head_dim" in hf:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    if family == "llama3":
        writer.add_vocab_size(hf["vocab_size"])
        writer.add_rope_dimension_count(head_dim)


def llama3_rope_factors(hf: dict) -> np.ndarray | None:
    """``rope_freqs.weight``: the divisor of each rotary frequency under Llama 3's ``rope_scaling``
    (as llama.cpp's converter computes it), or None for a checkpoint without it."""
    scaling = hf.get("rope_scaling") or {}
    if scaling.get("rope_type", scaling.get("type")) != "llama3":
        return None
    head_dim = hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"]
    factor, low, high = scaling["factor"], scaling.get("low_freq_factor", 1.0), scaling.get("high_freq_factor", 4.0)
    context = scaling.get("original_max_position_embeddings", 8192)
    factors = []
    for freq in 1.0 / float(hf.get("rope_theta", 10_000)) ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim):
        wavelength = 2 * math.pi / freq
        if wavelength < context / high:
            factors.append(1.0)
        elif wavelength > context / low:
            factors.append(factor)
        else:
            smooth = (context / wavelength - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(factors, dtype=np.float32)


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
    for add, token_id in ((writer.add_bos_token_id, tokenizer.bos_id()), (writer.add_eos_token_id, tokenizer.eos_id()),
                          (writer.add_unk_token_id, tokenizer.unk_id()), (writer.add_pad_token_id, tokenizer.pad_id())):
        if token_id is not None and token_id >= 0:  # SentencePiece says -1 for a role no piece has
            add(token_id)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(bool(proto.normalizer_spec.add_dummy_prefix))


def bpe_pre_tokenizer(data: dict, where: str) -> str:
    """llama.cpp's name for a byte-level tokenizer.json's pre-tokenizer (it knows them by name only)."""
    pre = data.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    for step in steps:
        if step.get("type") == "Split":
            pattern = (step.get("pattern") or {}).get("Regex")
            for name, regex in BPE_PRE_TOKENIZERS.items():
                if pattern == regex:
                    return name
            raise ModelError(f"the tokenizer splits text with a regex llama.cpp does not know by name: {pattern!r}",
                             where=where, hint=f"known: {', '.join(BPE_PRE_TOKENIZERS)}; or export --format hf")
    if any(step.get("type") == "ByteLevel" and step.get("use_regex", True) for step in steps):
        return "gpt-2"
    raise ModelError("the tokenizer has no byte-level pre-tokenizer that llama.cpp knows", where=where,
                     hint="export --format hf instead")


def add_bpe_tokenizer(writer, tokenizer, source_dir: Path, hf: dict) -> None:
    """The vocabulary as llama.cpp's "gpt2" (byte-level BPE) tokenizer: every id up to the
    embedding's rows (NORMAL, CONTROL for special added tokens, USER_DEFINED for the others,
    UNUSED padding), the merges, the pre-tokenizer's name and the special ids."""
    where = Path(source_dir) / "tokenizer.json"
    data = json.loads(where.read_text())
    model = data.get("model", {})
    if model.get("type") != "BPE":
        raise ModelError(f"GGUF export writes byte-level BPE tokenizers, this one is {model.get('type')!r}",
                         where=str(where), hint="export --format hf instead")
    pre = bpe_pre_tokenizer(data, str(where))
    learnt = {index: token for token, index in model["vocab"].items()}
    added = {token["id"]: token for token in data.get("added_tokens", [])}
    tokens, types = [], []
    for index in range(int(hf["vocab_size"])):
        if index in added:
            tokens.append(added[index]["content"])
            types.append(3 if added[index].get("special") else 4)
        elif index in learnt:
            tokens.append(learnt[index])
            types.append(1)
        else:
            tokens.append(f"[PAD{index}]")
            types.append(5)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])])
    bos = tokenizer.bos_id()
    if bos is not None or hf.get("bos_token_id") is not None:
        writer.add_bos_token_id(bos if bos is not None else int(hf["bos_token_id"]))
    writer.add_eos_token_id(tokenizer.eos_id())
    writer.add_pad_token_id(tokenizer.pad_id())
    writer.add_add_bos_token(bos is not None)


def bpe_tokenizer_files(reader, where: Path) -> dict[str, bytes]:
    """tokenizer.json + tokenizer_config.json rebuilt from a "gpt2" GGUF vocabulary, with the
    pre-tokenizer its name stands for (and Llama 3's whole-word-first rule)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    pre = _text(reader, "tokenizer.ggml.pre")
    if pre not in BPE_PRE_TOKENIZERS and pre != "gpt-2":
        raise ModelError(f"GGUF pre-tokenizer {pre!r} is not one reasonlab reads", where=str(where),
                         hint=f"one of: {', '.join([*BPE_PRE_TOKENIZERS, 'gpt-2'])}")
    tokens = [bytes(t).decode("utf-8") for t in _field(reader, "tokenizer.ggml.tokens")]
    types = [int(t[0]) for t in _field(reader, "tokenizer.ggml.token_type")]
    merges = [tuple(bytes(m).decode("utf-8").split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges")]
    tokenizer = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                                     ignore_merges=pre == "llama-bpe"))
    if pre == "gpt-2":
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(BPE_PRE_TOKENIZERS[pre]), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types) if k == 3])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t, k in zip(tokens, types) if k == 4])
    fields = reader.fields

    def token(key: str) -> str | None:
        return tokens[_number(reader, key)] if key in fields else None

    add_bos = "tokenizer.ggml.add_bos_token" in fields and bool(_number(reader, "tokenizer.ggml.add_bos_token"))
    settings = {"bos_token": token("tokenizer.ggml.bos_token_id") if add_bos else None,
                "eos_token": token("tokenizer.ggml.eos_token_id"), "pad_token": token("tokenizer.ggml.padding_token_id")}
    if "tokenizer.chat_template" in fields:
        settings["chat_template"] = _text(reader, "tokenizer.chat_template")
    return {"tokenizer.json": tokenizer.to_str().encode("utf-8"),
            "tokenizer_config.json": json.dumps(settings, indent=2).encode("utf-8")}


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
