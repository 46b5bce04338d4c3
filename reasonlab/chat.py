"""A model's chat template: how a prompt (and the recipe's system prompt) becomes the turns
the model was instruction-tuned on.

Two kinds, one call (``template.render(user, system)``):

- ``ChatTemplate.jinja(source, ...)``: the template a checkpoint ships (Hugging Face's
  ``tokenizer_config.json`` ``chat_template``, or a GGUF's ``tokenizer.chat_template``),
  rendered with jinja2's sandbox the way ``transformers`` renders it (``messages``,
  ``add_generation_prompt = True``, ``bos_token``/``eos_token``, ``raise_exception``). The
  template's leading BOS text is dropped: reasonlab puts the BOS *token id* in front of every
  prompt itself, and the text would tokenize to a second one.
- ``ChatTemplate.turns(format)``: a format string with ``{user}`` (the system prompt, which
  such templates have no place for, opens the user turn) — a preset's built-in fallback.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class ChatTemplate:
    source: str
    kind: str = "turns"  # "turns" (a format string with {user}) or "jinja"
    bos_token: str = ""
    eos_token: str = ""

    @classmethod
    def turns(cls, fmt: str) -> "ChatTemplate":
        return cls(fmt, "turns")

    @classmethod
    def jinja(cls, source: str, bos_token: str = "", eos_token: str = "") -> "ChatTemplate":
        template = cls(source, "jinja", bos_token, eos_token)
        template._compiled()  # a template that does not parse is refused when the model loads
        return template

    def _compiled(self):
        return _compile(self.source)

    def render(self, user: str, system: str | None = None) -> str:
        if self.kind == "turns":
            return self.source.format(user=f"{system}\n\n{user}" if system else user)
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        text = self._compiled().render(messages=messages, add_generation_prompt=True, bos_token=self.bos_token,
                                       eos_token=self.eos_token)
        return text.removeprefix(self.bos_token) if self.bos_token else text


@functools.lru_cache(maxsize=16)
def _compile(source: str):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        from reasonlab.errors import ModelError

        raise ModelError(f"the model's chat template refused the prompt: {message}",
                         hint="set data.chat = false for plain prompts")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(source)
