"""``judge = "local"``: a model preset sampled in-process with Tunix's sampler (greedy).

Options: ``preset`` (a model plugin name, default "gemma3-270m"), ``path``/``dtype`` as
in ``[model]``, ``max_tokens`` (128), ``max_prompt_tokens`` (512), ``batch_size`` (8).
The conversation is flattened to Gemma's chat turns. Suited to a bigger local Gemma
given by path; the embedded 270M base model is a weak judge (its unparsable replies are
counted as failures). Inside a run the judge model goes on the stage's ``judge`` role
mesh — its own device slice when the recipe sets ``[mesh.roles.judge]`` (G-RaR's split
mesh), else the stage's main mesh.
"""

from __future__ import annotations

import threading

from reasonlab import hookimpl


class LocalJudge:
    def __init__(self, options: dict):
        self.options = options
        self._bundle = None
        self._sampler = None
        self._lock = threading.Lock()  # one generation at a time on this model
        self.mesh = None

    def _load(self):
        from tunix.generate import sampler as sampler_lib

        from reasonlab.mesh import current_meshes, loading_onto, place_bundle
        from reasonlab.plugins import get_plugins
        from reasonlab.schema import ModelSpec

        spec = ModelSpec(preset=self.options.get("preset", "gemma3-270m"), path=self.options.get("path"),
                         dtype=self.options.get("dtype"))
        meshes = current_meshes()
        self.mesh = meshes.role("judge") if meshes is not None else None
        with loading_onto(self.mesh):
            self._bundle = get_plugins().registry("models").get(spec.preset)(spec)
        if self.mesh is not None:
            place_bundle(self._bundle, self.mesh)  # for presets that build their weights in place
        config = self._bundle.model.config
        self._sampler = sampler_lib.Sampler(self._bundle.model, self._bundle.tokenizer, sampler_lib.CacheConfig(
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
            if self._sampler is None:
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
            out = self._sampler(batch + [batch[-1]] * (size - len(batch)),
                                max_generation_steps=int(self.options.get("max_tokens", 128)),
                                max_prompt_length=limit, temperature=1.0, top_k=1, seed=0,
                                eos_tokens=self._bundle.stop_ids or None)
            for i, text in zip(fits[start: start + size], out.text):
                replies[i] = text
        return replies


@hookimpl
def register_judges(register):
    register("local", LocalJudge)
