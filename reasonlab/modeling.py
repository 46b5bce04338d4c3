"""The model a run carries from stage to stage, LoRA, and orbax save/restore.

Heavy imports (JAX, Flax, qwix, orbax) happen inside functions so the CLI's
light commands never load them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ModelBundle:
    """A Flax NNX model and its tokenizer.

    ``model`` is what trains (LoRA-wrapped when the recipe asks for LoRA); ``base``
    is the frozen backbone under the LoRA, shared as the reference model.
    The tokenizer has ``encode``, ``decode``, ``bos_id``, ``eos_id``, ``pad_id``
    (Tunix's TokenizerAdapter contract); ``bos_id()`` may be None (Qwen has no BOS): prompts
    then start without one (``with_bos``).
    """

    model: Any
    tokenizer: Any
    preset: str
    stop_ids: list[int] = field(default_factory=list)
    base: Any = None
    source_dir: Path | None = None  # HF-format safetensors the weights came from (for export)
    # an instruction-tuned model's turns around a user message, "...{user}...": prompts are
    # wrapped in it unless the data says ``chat = false`` (base models have none)
    chat_template: Any = None  # reasonlab.chat.ChatTemplate (or a format string with {user}); None: plain prompts
    # which modules LoRA wraps by default (a qwix module-path regex): the preset knows its architecture
    lora_modules: str | None = None

    @property
    def lora(self) -> bool:
        return self.base is not None


@dataclass(frozen=True)
class ModelContext:
    """What the core hands a model loader that takes a ``context`` parameter: the mesh to load
    its weights onto (so a model too big for one device is never gathered on one)."""

    mesh: Any = None

    def load_mesh(self):
        return self.mesh if self.mesh is not None else single_device_mesh()


def with_bos(tokenizer, ids: list[int]) -> list[int]:
    """``ids`` after the tokenizer's BOS, for a family that has one (Qwen's tokenizers have none)."""
    bos = tokenizer.bos_id()
    return [bos, *ids] if bos is not None else list(ids)


def load_model(plugins, spec, mesh=None) -> "ModelBundle":
    """The model preset ``spec.preset``, loaded onto ``mesh`` when its loader takes a context
    (a loader written without one loads where it likes: one device)."""
    from reasonlab.plugins import takes_context

    load = plugins.registry("models").get(spec.preset)
    return load(spec, context=ModelContext(mesh)) if takes_context(load) else load(spec)


def single_device_mesh():
    """A (fsdp=1, tp=1) mesh with Auto axes (Explicit axes break Gemma's embedding gather)."""
    import jax
    from jax.sharding import AxisType

    return jax.make_mesh((1, 1), ("fsdp", "tp"), axis_types=(AxisType.Auto, AxisType.Auto), devices=jax.devices()[:1])


def apply_lora(bundle: ModelBundle, spec, seed: int) -> ModelBundle:
    """Wrap the model's projections in LoRA adapters (qwix); the backbone stays shared."""
    import qwix
    from flax import nnx

    from reasonlab.errors import RecipeError

    modules = spec.modules or bundle.lora_modules
    if not modules:
        raise RecipeError(f"model preset {bundle.preset!r} names no default LoRA modules", where="model.lora.modules",
                          hint="give a regex of the module paths to wrap, e.g. \".*q_proj|.*v_proj\"")
    provider = qwix.LoraProvider(module_path=modules, rank=spec.rank, alpha=float(spec.alpha))
    lora_model = qwix.apply_lora_to_model(bundle.model, provider, rngs=nnx.Rngs(seed), **bundle.model.get_model_input())
    return ModelBundle(lora_model, bundle.tokenizer, bundle.preset, bundle.stop_ids, base=bundle.model,
                       source_dir=bundle.source_dir, chat_template=bundle.chat_template, lora_modules=modules)


def share_backbone(source, *followers) -> None:
    """Point each follower's frozen (non-LoRA) weights at ``source``'s arrays. Tunix's train
    steps return fresh arrays for every parameter, the frozen backbone included, so a model
    that shared the backbone before a step (``bundle.base``, a GRPO reference) would keep
    the old arrays alive: a second copy of the model."""
    from flax import nnx

    frozen = nnx.state(source, nnx.All(nnx.Param, nnx.Not(nnx.LoRAParam)))
    for follower in followers:
        if follower is not None and follower is not source:
            nnx.update(follower, frozen)


def _trainable_state(bundle: ModelBundle):
    from flax import nnx

    return nnx.state(bundle.model, nnx.LoRAParam if bundle.lora else nnx.Param)


def save_trainable(bundle: ModelBundle, path: Path) -> None:
    """Write the trainable parameters (LoRA or full) as an orbax checkpoint at ``path``."""
    import orbax.checkpoint as ocp
    from flax import nnx

    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(Path(path).absolute(), nnx.to_pure_dict(_trainable_state(bundle)))
        checkpointer.wait_until_finished()


def restore_trainable(bundle: ModelBundle, path: Path) -> ModelBundle:
    """Load parameters written by ``save_trainable`` into the bundle's model."""
    import jax
    import orbax.checkpoint as ocp
    from flax import nnx

    state = _trainable_state(bundle)
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, nnx.to_pure_dict(state))
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(Path(path).absolute(), target)
    nnx.replace_by_pure_dict(state, restored)
    nnx.update(bundle.model, state)
    return bundle
