"""``judge = "local"``: a model preset sampled in-process with Tunix's sampler (greedy).

Options: ``preset`` (a model plugin name, default "gemma3-270m"), ``path``/``dtype`` as
in ``[model]``, ``max_tokens`` (128), ``max_prompt_tokens`` (512), ``batch_size`` (8),
``scoring`` ("text" or "probabilities", below). The conversation is flattened to Gemma's
chat turns. Inside a run the judge model goes on the stage's ``judge`` role mesh — its own
device slice when the recipe sets ``[mesh.roles.judge]`` (G-RaR's split mesh), else the
stage's main mesh.

``scoring = "text"`` (default) generates a reply greedily, which the judge reward parses; a
small judge (the embedded 270M base model) mostly writes nothing parsable.
``scoring = "probabilities"`` (ours) never generates: the judge reward hands over the
reply's opening (e.g. ``{"score": ``) and the answers it allows (``1`` … ``10``, ``true`` /
``false``), and the judge returns the probability of each answer as the model's next
tokens, normalised over the answers (``choice_probabilities``). The reward turns those into
an expected score: never unparsable, continuous, and the same call for a 270M or a 12B
judge.
"""

from __future__ import annotations

import functools
import threading

from reasonlab import hookimpl


class LocalJudge:
    def __init__(self, options: dict, context=None):
        from reasonlab.rewards import RewardContext

        self.options = options
        self.context = context or RewardContext.standalone()
        self.scoring = options.get("scoring", "text")
        if self.scoring not in ("text", "probabilities"):
            raise ValueError(f'judge option scoring must be "text" or "probabilities", got {self.scoring!r}')
        self._bundle = None
        self._tunix_sampler = None
        self._lock = threading.Lock()  # one generation at a time on this model
        self.mesh = None

    def _load(self):
        from tunix.generate import sampler as sampler_lib

        from reasonlab.mesh import place_bundle
        from reasonlab.modeling import load_model
        from reasonlab.schema import ModelSpec

        spec = ModelSpec(preset=self.options.get("preset", "gemma3-270m"), path=self.options.get("path"),
                         dtype=self.options.get("dtype"))
        meshes = self.context.meshes
        self.mesh = meshes.role("judge") if meshes is not None else None
        self._bundle = load_model(self.context.plugins, spec, self.mesh)
        if self.mesh is not None:
            place_bundle(self._bundle, self.mesh)  # for presets that build their weights in place
        config = self._bundle.model.config
        self._tunix_sampler = sampler_lib.Sampler(self._bundle.model, self._bundle.tokenizer, sampler_lib.CacheConfig(
            cache_size=int(self.options.get("max_prompt_tokens", 512)) + int(self.options.get("max_tokens", 128)) + 8,
            num_layers=config.num_layers, num_kv_heads=config.num_kv_heads, head_dim=config.head_dim))

    @staticmethod
    def render(messages: list[dict]) -> str:
        turns = []
        for message in messages:
            role = "model" if message["role"] == "assistant" else "user"
            turns.append(f"<start_of_turn>{role}\n{message['content']}<end_of_turn>\n")
        return "".join(turns) + "<start_of_turn>model\n"

    def complete_many(self, conversations: list[list[dict]]) -> list[str | None]:
        import contextlib

        with self._lock:
            if self._bundle is None:
                self._load()
            with self.mesh or contextlib.nullcontext():  # the mesh context is per thread: enter it here
                return self._generate(conversations)

    def _generate(self, conversations: list[list[dict]]) -> list[str | None]:
        size = int(self.options.get("batch_size", 8))
        limit = int(self.options.get("max_prompt_tokens", 512))
        prompts = [self.render(c) for c in conversations]
        # a prompt over the budget gets no verdict (None: a counted failure), never a truncated one
        fits = [i for i, p in enumerate(prompts) if len(self._bundle.tokenizer.encode(p)) + 1 <= limit]
        replies: list[str | None] = [None] * len(prompts)
        for start in range(0, len(fits), size):
            batch = [prompts[i] for i in fits[start: start + size]]
            out = self._tunix_sampler(batch + [batch[-1]] * (size - len(batch)),
                                max_generation_steps=int(self.options.get("max_tokens", 128)),
                                max_prompt_length=limit, temperature=1.0, top_k=1, seed=0,
                                eos_tokens=self._bundle.stop_ids or None)
            for i, text in zip(fits[start: start + size], out.text):
                replies[i] = text
        return replies


    # -- scoring = "probabilities" ----------------------------------------------------------
    def choice_probabilities(self, conversations: list[list[dict]], opening: str,
                             choices: list[str]) -> list[list[float] | None]:
        """For each conversation, P(each choice) as the reply's continuation of ``opening``,
        normalised over ``choices`` (None where the prompt exceeds ``max_prompt_tokens``).

        A choice of several tokens gets the product of its tokens' probabilities; a choice
        that is the start of a longer one ("1" of "10") also needs what follows it not to be
        that longer choice's next token. One forward pass per distinct proper prefix of the
        choices' tokens (digits 1-10: two)."""
        import contextlib

        with self._lock:
            if self._bundle is None:
                self._load()
            with self.mesh or contextlib.nullcontext():
                return self._choice_probabilities(conversations, opening, choices)

    def _choice_probabilities(self, conversations, opening, choices):

        tokenizer = self._bundle.tokenizer
        limit = int(self.options.get("max_prompt_tokens", 512))
        encoded = [tokenizer.encode(c) for c in choices]
        prefixes = sorted({tuple(t[:i]) for t in encoded for i in range(len(t))}, key=len)
        prompts = [self.render(c) + opening for c in conversations]
        ids = [self._with_bos(tokenizer.encode(p)) for p in prompts]
        fits = [i for i, p in enumerate(ids) if len(p) + max(map(len, encoded)) <= limit]
        rows = [(i, prefix) for i in fits for prefix in prefixes]
        needed = sorted({t for prefix in prefixes for t in self._next_tokens(prefix, encoded)})
        probs = {}
        size = int(self.options.get("batch_size", 8))
        for start in range(0, len(rows), size):
            batch = rows[start:start + size]
            dist = self._next_token_probs([ids[i] + list(prefix) for i, prefix in batch], needed)
            for (i, prefix), row in zip(batch, dist):
                probs[(i, prefix)] = dict(zip(needed, row))
        out: list[list[float] | None] = [None] * len(conversations)
        for i in fits:
            scores = []
            for tokens in encoded:
                p = 1.0
                for k, token in enumerate(tokens):
                    p *= probs[(i, tuple(tokens[:k]))][token]
                longer = self._next_tokens(tuple(tokens), encoded)  # choices that continue this one
                if longer:
                    p *= max(0.0, 1.0 - sum(probs[(i, tuple(tokens))][t] for t in longer))
                scores.append(p)
            total = sum(scores)
            out[i] = [s / total for s in scores] if total > 0 else [1.0 / len(scores)] * len(scores)
        return out

    @staticmethod
    def _next_tokens(prefix: tuple, encoded: list[list[int]]) -> set[int]:
        return {t[len(prefix)] for t in encoded if len(t) > len(prefix) and tuple(t[:len(prefix)]) == prefix}

    def _with_bos(self, ids: list[int]) -> list[int]:
        bos = self._bundle.tokenizer.bos_id()
        return [bos, *ids] if bos is not None and (not ids or ids[0] != bos) else list(ids)

    def _next_token_probs(self, sequences: list[list[int]], tokens: list[int]):
        """softmax(next-token logits) at the end of each sequence, for ``tokens`` only. Rows are
        padded to the batch size and widths to a multiple of 64, so XLA compiles a few shapes."""
        import jax.numpy as jnp
        import numpy as np
        from flax import nnx

        size = int(self.options.get("batch_size", 8))
        width = -(-max(map(len, sequences)) // 64) * 64
        padded = np.zeros((size, width), dtype=np.int32)  # left padding: the last position is real
        mask = np.zeros((size, width), dtype=bool)  # explicit: id 0 is a real token in some vocabularies (Qwen)
        for row, seq in enumerate(sequences):
            padded[row, width - len(seq):] = seq
            mask[row, width - len(seq):] = True
        padded[len(sequences):, -1] = padded[0, -1]  # filler rows: one real token each
        mask[len(sequences):, -1] = True
        graphdef, state = nnx.split(self._bundle.model)
        probs = _last_position_probs(graphdef, state, jnp.asarray(padded), jnp.asarray(mask),
                                     jnp.asarray(tokens, dtype=jnp.int32))
        return np.asarray(probs)[: len(sequences)]


def _last_position_probs(graphdef, state, tokens, mask, wanted):
    return _jitted_last_position_probs()(graphdef, state, tokens, mask, wanted)


@functools.cache
def _jitted_last_position_probs():
    import jax
    import jax.numpy as jnp
    from flax import nnx
    from tunix.sft import utils as sft_utils

    from reasonlab import logprobs

    @jax.jit
    def probs(graphdef, state, tokens, mask, wanted):
        model = nnx.merge(graphdef, state)
        positions = sft_utils.build_positions_from_mask(mask)
        attention = sft_utils.make_causal_attn_mask(mask)
        if logprobs.supported(model):
            hidden = logprobs.final_hidden_states(model, tokens, positions, attention)[:, -1]
            logits = jnp.dot(hidden, model.embedder.input_embedding.value.T, preferred_element_type=jnp.float32)
        else:
            logits = model(tokens, positions, None, attention)[0][:, -1].astype(jnp.float32)
        return jax.nn.softmax(logits, axis=-1)[:, wanted]

    return probs


@hookimpl
def register_judges(register):
    register("local", LocalJudge)
