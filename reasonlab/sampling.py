"""Batched generation with Tunix's sampler, for stages that sample (eval, preference pairs)."""

from __future__ import annotations


class Generator:
    """Fixed batch and prompt shapes, so XLA compiles the sampler once per stage."""

    def __init__(self, bundle, max_prompt_tokens: int, max_completion_tokens: int, batch_size: int = 8):
        from tunix.generate import sampler as sampler_lib

        self.bundle = bundle
        self.max_prompt_tokens, self.max_completion_tokens, self.batch_size = (
            max_prompt_tokens, max_completion_tokens, batch_size)
        config = bundle.model.config
        self.sampler = sampler_lib.Sampler(
            bundle.model, bundle.tokenizer,
            sampler_lib.CacheConfig(cache_size=max_prompt_tokens + max_completion_tokens + 8,
                                    num_layers=config.num_layers, num_kv_heads=config.num_kv_heads,
                                    head_dim=config.head_dim))

    def __call__(self, prompts: list[str], temperature: float, top_k: int | None, seed: int,
                 top_p: float | None = None) -> tuple[list[str], list[bool]]:
        """Completions and, for each, whether it hit the token budget without a stop token.

        ``top_k = 1`` is greedy. Otherwise we always pass a ``top_p`` (1.0 = off): Tunix's
        sampler samples only in its top-p mode and silently decodes greedily when given a
        top_k alone.
        """
        if top_k != 1 and top_p is None:
            top_p = 1.0
        texts, truncated = [], []
        size = self.batch_size
        for start in range(0, len(prompts), size):
            batch = prompts[start: start + size]
            padded = batch + [batch[-1]] * (size - len(batch))
            out = self.sampler(padded, max_generation_steps=self.max_completion_tokens,
                               max_prompt_length=self.max_prompt_tokens, temperature=temperature, top_k=top_k,
                               top_p=top_p, seed=seed + start, eos_tokens=self.bundle.stop_ids or None)
            texts += out.text[: len(batch)]
            truncated += [len(t) >= self.max_completion_tokens for t in out.tokens[: len(batch)]]
        return texts, truncated
