"""Write a trained Tunix model back in the Hugging Face layout it was loaded from.

The weights go out under the names, shapes and layouts the family's Tunix safetensors
loader reads (its own table, inverted: ``reasonlab.private_api.hf_key_mapping``), so what
loads is what was trained. LoRA adapters are folded into the weights they adapt (from
qwix's own einsum of each adapter, so no layout is assumed); a full fine-tune writes its
weights as they are. Tensors the loader skips (a multimodal checkpoint's vision tower, tied
heads) are copied unchanged from the source checkpoint. Weights are written in float32.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from reasonlab.errors import ModelError

# the path -> array of the model's fused tensors for one loader target ("tmp.layers.0.attn.q"):
# a family whose loader fuses tensors after mapping them says how to take them apart again
Unfuse = Callable[[str, dict], np.ndarray]


def merged_params(model, lora_scale: float | None) -> dict[str, np.ndarray]:
    """Every parameter of ``model`` (float32) by its nnx path, e.g. ``layers.0.mlp.up_proj.kernel``,
    with each LoRA adapter's update (``lora_scale`` = alpha / rank) added to its weight."""
    from flax import nnx

    params, adapters, modules = {}, {}, {}
    for path, value in nnx.iter_graph(model):
        key = ".".join(map(str, path))
        if isinstance(value, nnx.LoRAParam):
            adapters[key] = np.asarray(value.value, dtype=np.float32)
        elif isinstance(value, nnx.Param):
            params[key] = np.asarray(value.value, dtype=np.float32)
        elif isinstance(value, nnx.Module):
            modules[key] = value
    for a_key in (k for k in adapters if k.endswith("_lora_a")):
        weight_key = a_key.removesuffix("_lora_a")
        module_key, _, weight_name = weight_key.rpartition(".")
        if lora_scale is None:
            raise ModelError(f"the model has LoRA adapters ({a_key}) but the recipe names no LoRA rank/alpha")
        delta = lora_delta(modules[module_key], weight_name, adapters[a_key], adapters[weight_key + "_lora_b"],
                           params[weight_key].shape)
        params[weight_key] = params[weight_key] + lora_scale * delta
    return params


def lora_delta(module, weight_name: str, a: np.ndarray, b: np.ndarray, shape) -> np.ndarray:
    """The change to ``module.<weight_name>`` that adapters ``a``, ``b`` make (before the scale)."""
    adapter_einsum = getattr(module, f"{weight_name}_lora_einsum_str", None)
    if adapter_einsum:  # qwix's einsum "x,A,B->y" beside the module's own "x,W->y"
        _, a_axes, b_axes = adapter_einsum.split("->")[0].split(",")
        weight_axes = module.einsum_str.split("->")[0].split(",")[1]
        return np.einsum(f"{a_axes},{b_axes}->{weight_axes}", a, b)
    if a.ndim == 2 and b.ndim == 2:  # dot_general (nnx.Linear): kernel (in, out) = a (in, r) @ b (r, out)
        return (a @ b).reshape(shape)
    raise ModelError(f"cannot fold the LoRA adapter of {type(module).__name__}.{weight_name} "
                     f"(a {a.shape}, b {b.shape}) into its weight", hint="export a full fine-tune, or report this")


def hf_tensors(params: dict[str, np.ndarray], source_dir: Path, mapping: dict,
               unfuse: Unfuse | None = None) -> dict[str, np.ndarray]:
    """The source checkpoint's tensors, each replaced by the model's current value."""
    from safetensors import safe_open
    from tunix.utils.torch_utils import torch_key_to_jax_key

    files = sorted(Path(source_dir).glob("*.safetensors"))
    if not files:
        raise ModelError("export needs the safetensors the model was loaded from", where=str(source_dir))
    out = {}
    for file in files:
        with safe_open(str(file), framework="numpy") as reader:
            for name in reader.keys():
                shape = tuple(reader.get_slice(name).get_shape())
                try:
                    target, transform = torch_key_to_jax_key(mapping, name)
                except ValueError:  # the loader skips it: keep it as it came
                    target, transform = None, None
                if target is None or target.startswith("unused"):
                    out[name] = reader.get_tensor(name)
                    continue
                value = unfuse(target, params) if target.startswith("tmp.") and unfuse else params.get(target)
                if value is None:
                    raise ModelError(f"the model has no parameter {target!r} for the checkpoint's {name!r}",
                                     where=str(file))
                out[name] = to_hf_layout(value, transform, shape, name)
    return out


def to_hf_layout(value: np.ndarray, transform, shape: tuple, name: str) -> np.ndarray:
    """Undo the loader's ``transpose(permute)`` then ``reshape``: back to the checkpoint's shape."""
    permute, _ = transform or (None, None)
    stored = tuple(shape[i] for i in permute) if permute else shape
    if value.size != int(np.prod(stored)):
        raise ModelError(f"{name}: the model's tensor has shape {value.shape}, the checkpoint's {shape}")
    value = value.reshape(stored)
    if permute:
        value = value.transpose(np.argsort(permute))
    return np.ascontiguousarray(value, dtype=np.float32)


def write_checkpoint(out: Path, tensors: dict[str, np.ndarray], source_dir: Path, config: dict | None = None) -> None:
    """``out/model.safetensors`` + the source's other files (config, tokenizer); ``config`` is
    written as config.json only where the source has none."""
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors.tmp"), metadata={"format": "pt"})
    os.replace(out / "model.safetensors.tmp", out / "model.safetensors")
    for path in Path(source_dir).iterdir():
        if path.is_file() and not path.name.startswith("model.safetensors") and path.suffix != ".safetensors":
            shutil.copy(path, out / path.name)
    if config is not None and not (out / "config.json").exists():
        (out / "config.json").write_text(json.dumps(config, indent=2))
