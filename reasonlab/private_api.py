"""Every private Tunix/JAX attribute reasonlab leans on, in one list, and the versions it was
written for. There is no public way to do these things; each must be re-checked when
pyproject.toml's pin of JAX, Flax or Tunix moves. ``tests/test_private_api.py`` fails when
one of them disappears from the installed packages, and ``check_versions()`` (the runner's
preflight, before anything trains) stops a run on versions nobody has checked them against.
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


USES = [
    PrivateUse("jax._src.compiler", "_cache_read", "compile_cache: wrapped to hand JAX prefetched executables"),
    PrivateUse("jax._src.compilation_cache", "get_executable_and_time", "compile_cache: loads a cached executable"),
    PrivateUse("jax._src.xla_bridge", "get_backend", "compile_cache: the backend to load executables onto"),
    PrivateUse("jax._src.lib", "xla_client", "compile_cache: CompileOptions and DeviceList of a recorded program"),
    PrivateUse("jax._src.monitoring", "_scalar_listeners", "tunix_bridge: unregisters the scalar listener it added"),
    PrivateUse("jax._src.dispatch", "BACKEND_COMPILE_EVENT", "memory: the compile-time event it listens to"),
    PrivateUse("tunix.sft.checkpoint_manager:CheckpointManager", "_checkpoint_manager",
               "tunix_bridge: asks orbax whether a step saves, to write its metrics first", instance=True),
    PrivateUse("tunix.sft.peft_trainer:PeftTrainer", "_write_train_metrics",
               "tunix_bridge: writes the step Tunix holds back before a checkpoint"),
    PrivateUse("tunix.sft.dpo.dpo_trainer:DPOTrainer", "_aux_metrics_to_log",
               "stage_preference: logs chosen/rejected lengths", instance=True),
    PrivateUse("tunix.rl.rl_cluster:RLCluster", "_log_metrics", "stage_grpo: numbers rollout records from 1"),
    PrivateUse("tunix.rl.rl_cluster:RLCluster", "_buffered_train_metrics",
               "stage_grpo: flushes buffered metrics before a checkpoint", instance=True),
    PrivateUse("tunix.rl.rl_cluster:RLCluster", "_backbone_sharing_map",
               "stage_grpo: whether the reference shares the actor's backbone", instance=True),
    PrivateUse("tunix.rl.rl_cluster:RLCluster", "_anchor_policy_state",
               "stage_grpo: dropped after each weight sync (no anchor copy)", instance=True),
    PrivateUse("tunix.models.gemma3.model:Gemma3", "__call__",
               "_gemma3: the class of Tunix's Gemma3 instance is swapped for a last-position prefill"),
]


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
