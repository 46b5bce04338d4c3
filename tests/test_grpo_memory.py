"""The GRPO stage keeps one backbone under LoRA: the reference shares the actor's frozen
weights through every step, and Tunix's per-step snapshot of the actor is not kept."""

from __future__ import annotations

import pytest

from conftest import run_tiny_grpo

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
    bundle, result = run_tiny_grpo(tmp_path, num_generations=2, reference=reference)
    assert result.metrics["steps"] == 3
    (cluster,) = clusters
    reference_model = cluster.inference_worker.get_model("reference")
    # the train step returned new arrays for the whole actor; the reference follows them
    assert buffers(reference_model) == buffers(result.model.model)
    assert buffers(bundle.base) == buffers(result.model.model)  # the bundle's base model too
    assert cluster._anchor_policy_state is None
