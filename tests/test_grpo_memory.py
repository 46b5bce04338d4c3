"""The GRPO stage keeps one backbone under LoRA: the reference shares the actor's frozen
weights through every step, and Tunix's per-step snapshot of the actor is not kept."""

from __future__ import annotations

import pytest

from reasonlab.mesh import stage_meshes
from reasonlab.modeling import apply_lora
from reasonlab.plugins import get_plugins
from reasonlab.progress import RunProgress
from reasonlab.schema import LoraSpec, MeshSpec, ModelSpec
from reasonlab.stage import StageContext
from reasonlab_plugins.models_tiny import load
from reasonlab_plugins.stage_grpo import GRPOConfig, GRPOStage

pytestmark = pytest.mark.slow


def buffers(model):
    import jax
    from flax import nnx

    frozen = nnx.All(nnx.Param, nnx.Not(nnx.LoRAParam))
    return [leaf.unsafe_buffer_pointer() for leaf in jax.tree.leaves(nnx.state(model, frozen))]


@pytest.mark.parametrize("reference", ["base", "initial"])
def test_reference_keeps_sharing_the_actors_backbone(tmp_path, monkeypatch, reference):
    from tunix.rl import rl_cluster

    clusters = []
    original_init = rl_cluster.RLCluster.__init__

    def remember(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        clusters.append(self)

    monkeypatch.setattr(rl_cluster.RLCluster, "__init__", remember)
    bundle = apply_lora(load(ModelSpec(preset="tiny")), LoraSpec(rank=4, alpha=8.0), seed=0)
    config = GRPOConfig(data={"source": "arithmetic", "options": {"n": 16}}, steps=3, batch_size=2,
                        num_generations=2, reference=reference, rewards=[{"name": "format_strict"}],
                        max_prompt_tokens=64, max_completion_tokens=16)
    ctx = StageContext(name="grpo", kind="grpo", config=config, recipe=None, model=bundle, dir=tmp_path, seed=0,
                       plugins=get_plugins(), log=lambda m, s: None, progress=RunProgress(False),
                       meshes=stage_meshes(MeshSpec(), None, "stages.grpo"))
    with ctx.meshes.main:
        result = GRPOStage().run(ctx)
    assert result.metrics["steps"] == 3
    (cluster,) = clusters
    reference_model = cluster.inference_worker.get_model("reference")
    # the train step returned new arrays for the whole actor; the reference follows them
    assert buffers(reference_model) == buffers(result.model.model)
    assert buffers(bundle.base) == buffers(result.model.model)  # the bundle's base model too
    assert cluster._anchor_policy_state is None
