"""JAX meshes from the recipe's ``[mesh]`` (and a stage's ``mesh``), and placing a model on one.

reasonlab does not distribute anything itself: it builds ``jax.sharding.Mesh`` objects and
lets the models' own partition specs (Tunix annotates every weight with ``fsdp``/``tp``
axes), Tunix's trainers and XLA do the rest. Axes are ``Auto`` (Explicit axes break
Gemma's embedding gather).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from reasonlab.errors import RecipeError
from reasonlab.schema import DeviceSlice, MeshSpec

MODEL_AXES = ("fsdp", "tp")  # the axis names Tunix's models and trainers shard over


def _describe(shape: dict[str, int]) -> str:
    return " x ".join(f"{axis}={size}" for axis, size in shape.items())


def build_mesh(spec: DeviceSlice, where: str):
    """The mesh ``spec`` asks for; a clear error when it does not fit the devices there are."""
    import jax
    from jax.sharding import AxisType

    available = jax.devices()
    if spec.devices is not None:
        wrong = [i for i in spec.devices if i >= len(available)]
        if wrong:
            raise RecipeError(f"device indices {wrong} do not exist: this machine has {len(available)} "
                              f"device(s) (0..{len(available) - 1})", where=f"{where}.devices",
                              hint="list devices by their index in jax.devices(); on CPU, "
                                   "XLA_FLAGS=--xla_force_host_platform_device_count=N simulates N devices")
        if len(set(spec.devices)) != len(spec.devices):
            raise RecipeError("a device is listed twice", where=f"{where}.devices")
        devices = [available[i] for i in spec.devices]
    else:
        devices = available
    shape = dict(spec.shape) if spec.shape else {"fsdp": len(devices)}
    for axis in MODEL_AXES:
        shape.setdefault(axis, 1)
    if math.prod(shape.values()) != len(devices):
        source = f"the {len(devices)} listed in devices" if spec.devices is not None else \
            f"the {len(devices)} device(s) of this machine ({available[0].platform})"
        raise RecipeError(
            f"mesh shape {_describe(shape)} needs {math.prod(shape.values())} devices, not {source}",
            where=f"{where}.shape",
            hint="make the axis sizes multiply to the device count, or list the devices to use; on CPU, "
                 "XLA_FLAGS=--xla_force_host_platform_device_count=N simulates N devices")
    return jax.make_mesh(tuple(shape.values()), tuple(shape), axis_types=(AxisType.Auto,) * len(shape),
                         devices=devices)


@dataclass
class StageMeshes:
    """The main mesh of a stage and the mesh of each role placed apart from it."""

    main: Any
    roles: dict[str, Any] = field(default_factory=dict)

    def role(self, name: str):
        """The mesh of ``name`` (actor, reference, rollout, critic, judge); the main one by default."""
        return self.roles.get(name, self.main)

    @property
    def split(self) -> bool:
        return any(mesh != self.main for mesh in self.roles.values())


def stage_meshes(run_spec: MeshSpec, stage_spec: MeshSpec | None, where: str) -> StageMeshes:
    spec, where = (stage_spec, f"{where}.mesh") if stage_spec is not None else (run_spec, "mesh")
    return StageMeshes(build_mesh(spec, where),
                       {role: build_mesh(part, f"{where}.roles.{role}") for role, part in spec.roles.items()})


def run_meshes(recipe) -> dict[str, StageMeshes]:
    """Every enabled stage's meshes, checked against the devices (before any heavy work)."""
    return {s.name: stage_meshes(recipe.mesh, s.config.mesh, f"stages.{s.name}") for s in recipe.stages if s.enabled}


def place_on_mesh(module, mesh) -> None:
    """Reshard a Flax NNX module's variables onto ``mesh`` following their partition specs."""
    import jax
    from flax import nnx
    from jax.sharding import NamedSharding, PartitionSpec

    state = nnx.state(module)
    specs = nnx.get_partition_spec(state)
    shardings = jax.tree.map(lambda spec: NamedSharding(mesh, spec if spec is not None else PartitionSpec()),
                             specs, is_leaf=lambda x: x is None or isinstance(x, PartitionSpec))
    if mesh.is_multi_process:  # a process can only write its own devices' pieces
        import numpy as np

        def put(x, sharding):
            if x.sharding == sharding:
                return x
            if not x.is_fully_addressable:  # already global: let XLA reshard it
                return jax.device_put(x, sharding)
            host = np.asarray(jax.device_get(x))
            return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

        state = jax.tree.map(put, state, shardings)
    else:
        state = jax.device_put(state, shardings)
    nnx.update(module, state)


def place_bundle(bundle, mesh) -> None:
    """Put a ModelBundle's model (and its frozen backbone, when LoRA wraps one) on ``mesh``."""
    place_on_mesh(bundle.model, mesh)
    if bundle.base is not None:
        place_on_mesh(bundle.base, mesh)
