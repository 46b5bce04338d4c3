"""LoRA training through the SFT stage, and orbax save/restore of trainable state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reasonlab.modeling import apply_lora, restore_trainable, save_trainable
from reasonlab.plugins import get_plugins
from reasonlab.progress import RunProgress
from reasonlab.schema import LoraSpec, ModelSpec
from reasonlab.stage import StageContext
from reasonlab_plugins.models_tiny import load as load_tiny
from reasonlab_plugins.stage_sft import SFTConfig, SFTStage

pytestmark = pytest.mark.slow


def leaves(model, kind):
    import jax
    from flax import nnx

    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, kind))]


def make_ctx(tmp_path: Path, bundle, config, logged):
    return StageContext(name="sft", kind="sft", config=config, recipe=None, model=bundle, dir=tmp_path, seed=0,
                        plugins=get_plugins(), log=lambda m, s: logged.append((s, m)), progress=RunProgress(False))


def test_lora_sft_trains_only_adapters_and_roundtrips(tmp_path):
    from flax import nnx

    bundle = apply_lora(load_tiny(ModelSpec(preset="tiny")), LoraSpec(rank=4, alpha=8.0), seed=0)
    assert bundle.lora
    base_before = leaves(bundle.base, nnx.Param)
    lora_before = leaves(bundle.model, nnx.LoRAParam)
    assert lora_before, "qwix added no LoRA params"
    config = SFTConfig(data={"source": "arithmetic", "options": {"n": 32}}, steps=4, batch_size=4,
                       learning_rate=1e-2, max_prompt_tokens=96, max_completion_tokens=64)
    logged = []
    result = SFTStage().run(make_ctx(tmp_path, bundle, config, logged))
    assert result.metrics["dropped_overlength"] == 0
    assert any("train/loss" in m for _, m in logged)
    lora_after = leaves(result.model.model, nnx.LoRAParam)
    assert any(not np.array_equal(a, b) for a, b in zip(lora_before, lora_after)), "LoRA params did not move"
    assert all(np.array_equal(a, b) for a, b in zip(base_before, leaves(bundle.base, nnx.Param))), "backbone changed"
    assert (tmp_path / "checkpoints").exists()

    save_trainable(result.model, tmp_path / "final")
    fresh = apply_lora(load_tiny(ModelSpec(preset="tiny")), LoraSpec(rank=4, alpha=8.0), seed=1)
    restored = restore_trainable(fresh, tmp_path / "final")
    for a, b in zip(lora_after, leaves(restored.model, nnx.LoRAParam)):
        np.testing.assert_array_equal(a, b)


def test_over_long_rows_are_dropped_and_counted(tmp_path):
    bundle = load_tiny(ModelSpec(preset="tiny"))
    config = SFTConfig(data={"source": "arithmetic", "options": {"n": 16, "max_ops": 3}}, steps=1, batch_size=2,
                       max_prompt_tokens=56, max_completion_tokens=64)
    logged = []
    result = SFTStage().run(make_ctx(tmp_path, bundle, config, logged))
    dropped = next(m["data/dropped_overlength"] for _, m in logged if "data/dropped_overlength" in m)
    assert 0 < dropped < 16 and result.metrics["dropped_overlength"] == dropped


def test_last_token_prefill_gives_the_same_logits_and_samples():
    """The presets' Gemma 3 projects only the last prefill position onto the vocabulary,
    also under LoRA (qwix wraps ``__call__``; Tunix's sampler must still see the option)."""
    import inspect

    import jax.numpy as jnp
    from tunix.generate import sampler as sampler_lib
    from tunix.models.gemma3 import model as gemma3_model

    bundle = apply_lora(load_tiny(ModelSpec(preset="tiny")), LoraSpec(rank=4, alpha=8.0), seed=0)
    model = bundle.model
    assert "decode_only_last_token" in inspect.signature(model.__call__).parameters
    tokens = jnp.asarray([[5, 9, 14, 3, 22, 7]] * 2)
    positions = jnp.broadcast_to(jnp.arange(6), tokens.shape)
    mask = jnp.tril(jnp.ones((6, 6), bool))[None].repeat(2, 0)
    full, _ = model(tokens, positions, None, mask)
    last, _ = model(tokens, positions, None, mask, decode_only_last_token=True)
    assert last.shape == (2, 1, full.shape[-1])
    np.testing.assert_allclose(last, full[:, -1:], rtol=1e-5, atol=1e-5)

    def greedy(transformer, last_only):
        cache = sampler_lib.CacheConfig(cache_size=64, num_layers=2, num_kv_heads=1, head_dim=32)
        sampler = sampler_lib.Sampler(transformer, bundle.tokenizer, cache)
        assert sampler._supports_decode_only_last_token == last_only
        return sampler(["2 + 3 =", "7 * 6 equals"], max_generation_steps=8, temperature=0.0).tokens

    assert greedy(model, True)  # the LoRA model keeps the option through qwix's wrapper
    ours = greedy(bundle.base, True)
    bundle.base.__class__ = gemma3_model.Gemma3  # Tunix's own class: full-sequence prefill
    assert [t.tolist() for t in greedy(bundle.base, False)] == [t.tolist() for t in ours]


def test_rows_in_order_beyond_the_steps_are_reported(tmp_path):
    """A curriculum (order = "as_is") longer than steps x batch_size: its last rows are never
    trained on, and the stage says so (a warning and data/unseen_rows), instead of nothing."""
    from reasonlab.data import Budgeted

    class Printed(list):
        def print(self, text):
            self.append(text)

    for order, unseen in (("as_is", 10), ("shuffle", None)):
        config = SFTConfig(data={"source": "arithmetic", "order": order, "options": {"n": 16}}, steps=3, batch_size=2)
        logged, printed = [], Printed()
        ctx = make_ctx(tmp_path, load_tiny(ModelSpec(preset="tiny")), config, logged)
        ctx.progress = printed
        ctx.training_data(config.data, ["question"], lambda rows: Budgeted(rows, 0), nothing_left="none", hint="")
        found = [m["data/unseen_rows"] for _, m in logged if "data/unseen_rows" in m]
        assert found == ([unseen] if unseen else [])
        assert bool(printed) == bool(unseen) and (not printed or "the last 10" in printed[0])
