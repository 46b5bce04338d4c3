"""Every private Tunix/JAX attribute reasonlab leans on — the one module that touches them —
and the versions it was written for. There is no public way to do these things; each must be
re-checked when pyproject.toml's pin of JAX, Flax or Tunix moves. Other modules (core and
plugins alike) call the functions and base classes below, never the private names:
``tests/test_private_api.py`` fails when one of them disappears from the installed packages,
when one is used anywhere else, or when a new ``jax._src`` import appears; ``check_versions()``
(the runner's preflight, before anything trains) stops a run on versions nobody has checked
them against. Imports are lazy: the light commands never load JAX or Tunix through here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

WRITTEN_FOR = {"jax": "0.10.2", "flax": "0.12.8", "google-tunix": "0.1.7"}
ALLOW_ENV = "REASONLAB_ALLOW_UNCHECKED_VERSIONS"


@dataclass(frozen=True)
class PrivateUse:
    owner: str  # "module" or "module:Class"
    name: str  # the private attribute
    where: str  # who uses it, and why
    instance: bool = False  # set in __init__ (so it shows in the source, not on the class)


ROPE_FAMILIES = ("qwen3", "llama3")  # Tunix 0.1.7 families whose rotary embedding ignores the config
USES = [
    PrivateUse("jax._src.compiler", "_cache_read", "cache_read/set_cache_read: compile_cache hands JAX prefetched executables"),
    PrivateUse("jax._src.compilation_cache", "get_executable_and_time", "load_cached_executable: compile_cache's prefetch"),
    PrivateUse("jax._src.xla_bridge", "get_backend", "backend: the backend compile_cache loads executables onto"),
    PrivateUse("jax._src.lib", "xla_client", "load_cached_executable: CompileOptions and DeviceList of a recorded program"),
    PrivateUse("jax._src.monitoring", "_scalar_listeners", "remove_scalar_listener: tunix_bridge's metrics listener"),
    PrivateUse("jax._src.dispatch", "BACKEND_COMPILE_EVENT", "COMPILE_EVENT: memory's release after each compilation"),
    PrivateUse("tunix.sft.checkpoint_manager:CheckpointManager", "_checkpoint_manager",
               "orbax_manager: tunix_bridge asks orbax whether a step saves, to write its metrics first", instance=True),
    PrivateUse("tunix.sft.peft_trainer:PeftTrainer", "_write_train_metrics",
               "write_held_back_metrics: the step Tunix holds back, written before a checkpoint"),
    PrivateUse("tunix.sft.dpo.dpo_trainer:DPOTrainer", "_aux_metrics_to_log",
               "log_more_aux_metrics: stage_preference logs chosen/rejected lengths", instance=True),
    PrivateUse("tunix.rl.rl_cluster:RLCluster", "_log_metrics", "RLClusterBase: rollout records numbered from 1"),
    PrivateUse("tunix.rl.rl_cluster:RLCluster", "_buffered_train_metrics",
               "RLClusterBase.write_buffered_metrics: before a checkpoint", instance=True),
    PrivateUse("tunix.rl.rl_cluster:RLCluster", "_backbone_sharing_map",
               "RLClusterBase.reference_shares_backbone", instance=True),
    PrivateUse("tunix.rl.rl_cluster:RLCluster", "_anchor_policy_state",
               "RLClusterBase.drop_anchor_snapshot: no second copy of the weights", instance=True),
    PrivateUse("tunix.rl.grpo.grpo_learner:GRPOLearner", "_generate_and_compute_advantage",
               "GRPOLearnerBase.prepare_batch: masking and dynamic sampling see each rolled-out batch"),
    PrivateUse("tunix.models.gemma3.params_safetensors", "_get_key_and_transform_mapping",
               "hf_key_mapping: export writes Gemma 3 weights back under the names and layouts Tunix loads"),
    PrivateUse("tunix.models.gemma.params_safetensors", "_get_key_and_transform_mapping",
               "hf_key_mapping: export writes Gemma 2 weights back under the names and layouts Tunix loads"),
    *(PrivateUse(f"tunix.models.{family}.params", "_get_key_and_transform_mapping",
                 f"hf_key_mapping: export writes {family} weights back under the names and layouts Tunix loads")
      for family in ("qwen2", "qwen3", "llama3")),
    PrivateUse("tunix.generate.sampler:Sampler", "_prefill_fn",
               "shared_prompt_sampler: each distinct prompt of a GRPO group prefilled once"),
    PrivateUse("tunix.generate.sampler:Sampler", "_sample",
               "shared_prompt_sampler: the first token sampled for every row after the shared prefill"),
    PrivateUse("tunix.generate.sampler:Sampler", "_compiled_prefill_fn",
               "shared_prompt_sampler: the grouped or the plain prefill, per call", instance=True),
    PrivateUse("tunix.rl.rollout.vanilla_rollout:VanillaRollout", "_sampler",
               "share_prompt_prefill: the rollout's sampler is the shared-prompt one", instance=True),
    PrivateUse("tunix.models.gemma3.model:Gemma3", "__call__",
               "reclass: the class of Tunix's Gemma3 instance is swapped for a last-position prefill"),
    *(PrivateUse(f"tunix.models.{family}.model", "apply_rope",
                 "route_rope: the module function its Attention calls with the default rope_theta (1e6) and no "
                 "rope_scaling; routed to the checkpoint's (plugins/_rope.py)") for family in ROPE_FAMILIES),
    *(PrivateUse(f"tunix.models.{family}.model:Attention", "block",
                 "reclass: attention that tells the routed apply_rope its checkpoint's settings")
      for family in ROPE_FAMILIES),
]

# the private names above, as other modules would spell them (the test greps for these)
PRIVATE_NAMES = sorted({u.name for u in USES if u.name.startswith("_") and u.name != "__call__"} | {"jax._src"})
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"  # jax._src.dispatch.BACKEND_COMPILE_EVENT


# -- JAX -------------------------------------------------------------------------------------
def cache_read():
    """JAX's persistent-cache read: ``(module_name, cache_key, compile_options, backend,
    executable_devices) -> (executable, compile_time) | (None, None)``."""
    from jax._src import compiler

    return compiler._cache_read


def set_cache_read(read) -> None:
    from jax._src import compiler

    compiler._cache_read = read


def backend():
    from jax._src import xla_bridge

    return xla_bridge.get_backend()


def load_cached_executable(key: str, serialized_options: bytes, device_ids: list[int], backend):
    """What JAX's cache holds for ``key``, compiled for these options and devices."""
    from jax._src import compilation_cache
    from jax._src.lib import xla_client

    options = xla_client.CompileOptions.ParseFromString(serialized_options)
    by_id = {device.id: device for device in backend.devices()}
    devices = xla_client.DeviceList(tuple(by_id[i] for i in device_ids))
    return compilation_cache.get_executable_and_time(key, options, backend, devices)


def remove_scalar_listener(listener) -> None:
    """Unregister a ``jax.monitoring`` scalar listener (the public module cannot ask whether one is)."""
    from jax._src import monitoring

    if listener in monitoring._scalar_listeners:
        monitoring._scalar_listeners.remove(listener)


# -- Tunix -----------------------------------------------------------------------------------
def orbax_manager(checkpoint_manager):
    """The orbax CheckpointManager inside Tunix's, or None when checkpointing is off."""
    return checkpoint_manager._checkpoint_manager


def write_held_back_metrics(trainer) -> None:
    """Tunix writes a step's train metrics one step late; a second call writes the step it holds back."""
    trainer._write_train_metrics()


def log_more_aux_metrics(trainer, aggregations: dict) -> None:
    """Make a DPO trainer log more of its loss's aux values (name -> aggregation over micro-batches)."""
    trainer._aux_metrics_to_log.update(aggregations)


def hf_key_mapping(params_safetensors_module, config) -> dict:
    """The Hugging Face name -> (nnx path, (permute, reshape)) table a Tunix family's safetensors
    loader applies (``params_safetensors_module``: e.g. ``tunix.models.gemma3.params_safetensors``),
    so an exporter inverts exactly what the loader does."""
    return params_safetensors_module._get_key_and_transform_mapping(config)


def reclass(instance, cls):
    """The same object (same parameters, nothing copied) as an instance of ``cls``, a subclass
    of its class that changes behaviour only: for models Tunix's loaders build themselves."""
    assert isinstance(instance, cls.__mro__[1]), (type(instance), cls)
    instance.__class__ = cls
    return instance


def route_rope(family: str, router) -> None:
    """Replace the ``apply_rope`` that Tunix's ``family`` Attention calls (by module global name,
    with neither the config's rope_theta nor any rope_scaling) with ``router(original)``, once
    per process. The router must behave as the original for models that did not opt in."""
    import importlib

    assert family in ROPE_FAMILIES, family
    module = importlib.import_module(f"tunix.models.{family}.model")
    if not getattr(module.apply_rope, "routed_by_reasonlab", False):
        routed = router(module.apply_rope)
        routed.routed_by_reasonlab = True
        module.apply_rope = routed


def attention_class(family: str):
    """Tunix's Attention class of a family (what ``reclass`` subclasses for ``route_rope``)."""
    import importlib

    return importlib.import_module(f"tunix.models.{family}.model").Attention


def rl_cluster_base():
    """Tunix's RLCluster with the private parts reasonlab changes behind public names:
    rollout metrics numbered from 1 (like the actor's steps and our records; Tunix counts
    from 0), ``write_buffered_metrics()``, ``reference_shares_backbone()`` and
    ``drop_anchor_snapshot()``."""
    import dataclasses

    from tunix.rl import rl_cluster as rl_cluster_lib

    class RLClusterBase(rl_cluster_lib.RLCluster):
        def _log_metrics(self, metrics_buffer):
            super()._log_metrics(dataclasses.replace(metrics_buffer, global_steps=metrics_buffer.global_steps + 1))

        def write_buffered_metrics(self) -> None:
            for buffer in self._buffered_train_metrics:
                self._log_metrics(buffer)
            self._buffered_train_metrics.clear()

        def reference_shares_backbone(self) -> bool:
            role = rl_cluster_lib.Role
            return role.REFERENCE in self._backbone_sharing_map[role.ACTOR]

        def drop_anchor_snapshot(self) -> None:
            """The old-policy snapshot taken after each weight sync (read only with μ > 1)."""
            self._anchor_policy_state = None

    return RLClusterBase


def shared_prompt_sampler(sampler, group_size: int):
    """The same Tunix sampler (its weights, compiled programs and state untouched) with a
    prefill that runs each distinct prompt once when a call's prompts come as GRPO groups (each prompt
    ``group_size`` times in a row, as the learner repeats them), then repeats the prompt's
    KV cache and last logits for its rows before the first token is sampled per row. Rows
    of a transformer never mix, so every row sees the cache a full prefill gives it; the
    decode and all sampling are Tunix's. Any other call (ungrouped prompts, beam search,
    logits kept, images, echo) takes Tunix's own prefill."""
    import dataclasses

    import jax
    import jax.numpy as jnp
    from tunix.generate import sampler as sampler_lib

    class SharedPromptSampler(sampler_lib.Sampler):
        def group_prompts(self, group_size: int) -> None:
            self.group_size = group_size
            self._plain_prefill = self._compiled_prefill_fn
            self._grouped_prefill = jax.jit(self._prefill_once_per_group, donate_argnums=(1,),
                                            static_argnames=("echo",))

        def __call__(self, input_strings, *args, **kwargs):
            grouped = self.group_size > 1 and is_grouped(list(input_strings), self.group_size)
            self._compiled_prefill_fn = self._grouped_prefill if grouped else self._plain_prefill
            return super().__call__(input_strings, *args, **kwargs)

        def _prefill_once_per_group(self, params, state, images=None, echo=True):
            if (images is not None or echo or state.sampling_mode == "beam_search"
                    or state.logits_buffer is not None):
                return sampler_lib.Sampler._prefill_fn(self, params, state, images, echo)
            group = self.group_size

            def first_rows(x):
                return x[::group]

            def sample_for_every_row(logits, cache, eos, sampler_state):
                del sampler_state  # the reduced one: only its cache changed in the prefill
                cache = jax.tree.map(lambda x: jnp.repeat(x, group, axis=0), cache)
                return sampler_lib.Sampler._sample(self, jnp.repeat(logits, group, axis=0), eos, cache,
                                                   dataclasses.replace(state, cache=cache))

            reduced = dataclasses.replace(
                state, token_buffer=first_rows(state.token_buffer), positions=first_rows(state.positions),
                done=first_rows(state.done), cache=jax.tree.map(first_rows, state.cache),
                logprobs_buffer=None if state.logprobs_buffer is None else first_rows(state.logprobs_buffer))
            self._sample = sample_for_every_row  # seen by the parent's prefill while this traces
            try:
                return sampler_lib.Sampler._prefill_fn(self, params, reduced, images, echo)
            finally:
                del self._sample

    def is_grouped(prompts: list, group: int) -> bool:
        return len(prompts) % group == 0 and prompts == [p for p in prompts[::group] for _ in range(group)]

    sampler = reclass(sampler, SharedPromptSampler)
    sampler.group_prompts(group_size)
    return sampler


def share_prompt_prefill(rollout, group_size: int) -> bool:
    """Turn a Tunix vanilla rollout's sampler into ``shared_prompt_sampler``'s (the same
    object); False (nothing changed) for any other engine or a group of one."""
    from tunix.rl.rollout import vanilla_rollout

    if type(rollout) is not vanilla_rollout.VanillaRollout or group_size < 2:
        return False
    shared_prompt_sampler(rollout._sampler, group_size)
    return True


def grpo_learner_base():
    """Tunix's GRPOLearner with one public hook: ``prepare_batch(training_input, mode)`` turns
    a batch of prompts into the TrainExample the actor trains on; by default
    ``roll_out(training_input, mode)`` (Tunix's rollout, rewards and advantages), which a
    subclass may call more than once (dynamic sampling) or post-process (masking)."""
    from tunix.rl import rl_cluster as rl_cluster_lib
    from tunix.rl.grpo import grpo_learner

    class GRPOLearnerBase(grpo_learner.GRPOLearner):
        def _generate_and_compute_advantage(self, training_input, mode=rl_cluster_lib.Mode.TRAIN):
            return self.prepare_batch(training_input, mode)

        def prepare_batch(self, training_input, mode):
            return self.roll_out(training_input, mode)

        def roll_out(self, training_input, mode):
            return grpo_learner.GRPOLearner._generate_and_compute_advantage(self, training_input, mode)

    return GRPOLearnerBase


def package_versions(packages) -> dict[str, str | None]:
    """Each installed package's version (None when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def installed_versions() -> dict[str, str | None]:
    return package_versions(WRITTEN_FOR)


def check_versions() -> None:
    """Stop on JAX/Flax/Tunix versions the private uses above were not checked against."""
    from reasonlab.errors import ReasonlabError

    if os.environ.get(ALLOW_ENV):
        return
    other = {p: v for p, v in installed_versions().items() if v != WRITTEN_FOR[p]}
    if other:
        found = ", ".join(f"{p} {v or 'missing'} (written for {WRITTEN_FOR[p]})" for p, v in other.items())
        raise ReasonlabError(f"untested versions: {found}", where="reasonlab/private_api.py",
                             hint=f"install the pinned versions (pip install -e .), or re-check every entry of "
                                  f"reasonlab/private_api.py on them (tests/test_private_api.py) and set {ALLOW_ENV}=1")
