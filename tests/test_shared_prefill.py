"""A GRPO rollout prefills each prompt once for its group (``GRPOConfig.shared_prefill``)
and samples exactly the tokens Tunix's own sampler samples."""

from __future__ import annotations

import pytest

from conftest import run_tiny_grpo
from reasonlab import private_api
from reasonlab.schema import ModelSpec
from reasonlab_plugins.models_tiny import load

pytestmark = pytest.mark.slow

PROMPTS = ["What is 2 + 3?", "Name a colour.", "What is 7 * 6? Think first."]


def samplers(bundle):
    from tunix.generate import sampler as sampler_lib

    config = bundle.model.config
    cache = sampler_lib.CacheConfig(cache_size=64, num_layers=config.num_layers, num_kv_heads=config.num_kv_heads,
                                    head_dim=config.head_dim)
    return (sampler_lib.Sampler(bundle.model, bundle.tokenizer, cache),
            private_api.shared_prompt_sampler(sampler_lib.Sampler(bundle.model, bundle.tokenizer, cache), 4))


@pytest.mark.parametrize("sampling", [{"top_k": 1, "top_p": None}, {"top_k": 50, "top_p": 0.9},
                                      {"top_k": None, "top_p": 1.0}])
def test_grouped_prompts_sample_the_same_tokens_as_tunix(sampling):
    import numpy as np

    bundle = load(ModelSpec(preset="tiny"))
    plain, shared = samplers(bundle)
    grouped = [p for p in PROMPTS for _ in range(4)]
    kwargs = dict(max_generation_steps=24, max_prompt_length=32, temperature=0.9, seed=5, echo=False,
                  pad_output=False, return_logprobs=True, **sampling)
    ours, theirs = shared(grouped, **kwargs), plain(grouped, **kwargs)
    assert [list(t) for t in ours.tokens] == [list(t) for t in theirs.tokens]
    for a, b in zip(ours.logprobs, theirs.logprobs):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    if sampling["top_k"] != 1:  # the rows of a group were sampled independently
        assert len({tuple(t) for t in ours.tokens[:4]}) > 1
    # prompts that are not in groups of 4 take Tunix's own prefill, and still agree
    mixed = PROMPTS + PROMPTS[:1]
    assert [list(t) for t in shared(mixed, **kwargs).tokens] == [list(t) for t in plain(mixed, **kwargs).tokens]


def run_grpo(tmp_path, shared_prefill: bool, monkeypatch) -> tuple[list, list]:
    taken = []
    original = private_api.share_prompt_prefill
    monkeypatch.setattr(private_api, "share_prompt_prefill",
                        lambda *args: taken.append(original(*args)) or taken[-1])
    records = []
    directory = tmp_path / str(shared_prefill)
    directory.mkdir()
    run_tiny_grpo(directory, log=lambda metrics, step: records.append((step, metrics)), num_generations=4,
                  reference="base", temperature=0.9, top_k=50, top_p=0.9, shared_prefill=shared_prefill)
    numbers = sorted((step, key, round(float(value), 5)) for step, metrics in records for key, value in metrics.items()
                     if key.startswith(("train/rewards", "train/completions", "train/loss", "train/actor/entropy"))
                     and isinstance(value, (int, float)))
    return taken, numbers


def test_a_grpo_stage_trains_the_same_with_the_shared_prefill(tmp_path, monkeypatch):
    taken, shared = run_grpo(tmp_path, True, monkeypatch)
    assert taken == [True]  # the vanilla rollout got the shared-prompt sampler
    taken, plain = run_grpo(tmp_path, False, monkeypatch)
    assert taken == [False]
    assert shared and shared == plain
