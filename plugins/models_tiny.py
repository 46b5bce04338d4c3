"""``preset = "tiny"``: a random-init Gemma3 of two layers and a byte-level BPE
tokenizer trained in-process on the bundled generators' text (arithmetic, dilemmas, code
tasks, open questions), so every bundled source's traces are short enough for a two-layer
model to learn in a test's budget. Builds in about a second; for tests.

Token ids: pad 0, bos 1, eos 2; the four format tags are single tokens.
"""

from __future__ import annotations

import functools

from reasonlab import hookimpl
from reasonlab_plugins.models_checkpoint import GEMMA_LORA_MODULES

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
TAGS = ["<reasoning>", "</reasoning>", "<answer>", "</answer>"]
VOCAB_SIZE = 1024


class BPETokenizer:
    """A ``tokenizers.Tokenizer`` behind Tunix's tokenizer contract."""

    def __init__(self, tokenizer):
        self._tok = tokenizer

    def encode(self, text: str, **_) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids, **_) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=True)

    def bos_id(self) -> int:
        return 1

    def eos_id(self) -> int:
        return 2

    def pad_id(self) -> int:
        return 0

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()


def _corpus():
    from reasonlab.data import DEFAULT_TEMPLATE
    from reasonlab.format import format_target
    from reasonlab_plugins.datasets_arithmetic import generate
    from reasonlab_plugins.datasets_bundled import code_tasks, dilemmas, open_questions

    rows = [*generate(n=400, seed=12345)]
    for more in (dilemmas, code_tasks, open_questions):
        rows += more(n=64, seed=12345)
    for row in rows:
        yield DEFAULT_TEMPLATE.format(question=row["question"]) + format_target(row["reasoning"], row["answer"])
    yield "".join(chr(c) for c in range(32, 127))


@functools.lru_cache(maxsize=1)
def build_tokenizer() -> BPETokenizer:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.add_tokens([AddedToken(t, normalized=False) for t in TAGS])
    return BPETokenizer(tok)


def model_config(num_embed: int):
    import jax.numpy as jnp
    from tunix.models.gemma3.model import ModelConfig

    return ModelConfig(num_layers=2, num_embed=num_embed, embed_dim=64, hidden_dim=128, num_heads=2, head_dim=32,
                       num_kv_heads=1, sliding_window_size=128, param_dtype=jnp.float32)


def load(spec):
    from flax import nnx

    from reasonlab.modeling import ModelBundle
    from reasonlab_plugins._gemma3 import Gemma3

    tokenizer = build_tokenizer()
    num_embed = max(VOCAB_SIZE, tokenizer.vocab_size + 4)
    model = Gemma3(model_config(num_embed), rngs=nnx.Rngs(0))
    return ModelBundle(model=model, tokenizer=tokenizer, preset="tiny", stop_ids=[tokenizer.eos_id()],
                       lora_modules=GEMMA_LORA_MODULES)


@hookimpl
def register_models(register):
    register("tiny", load)
