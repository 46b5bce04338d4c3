"""On-policy distillation (``kind = "on_policy_distill"``): the tiny student samples, a tiny
teacher scores each sampled token, and the student's reverse KL to the teacher falls.

The teacher is the tiny architecture and tokenizer from another seed, its embedding scaled
up so its next-token distributions are sharp (a random tiny model's are nearly uniform, and
two nearly uniform models already agree). It comes as a third-party plugin (--plugins-dir).
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from conftest import read_metrics, reasonlab, run_dir_of, tiny_recipe

TEACHER = '''
from reasonlab import hookimpl


def load(spec):
    from flax import nnx

    from reasonlab.modeling import ModelBundle
    from reasonlab_plugins._gemma3 import Gemma3
    from reasonlab_plugins.models_tiny import GEMMA_LORA_MODULES, VOCAB_SIZE, build_tokenizer, model_config

    tokenizer = build_tokenizer()
    model = Gemma3(model_config(max(VOCAB_SIZE, tokenizer.vocab_size + 4)), rngs=nnx.Rngs(7))
    embedding = model.embedder.input_embedding
    embedding.value = embedding.value * 12.0  # sharper logits: a teacher with opinions
    return ModelBundle(model=model, tokenizer=tokenizer, preset="tiny_teacher", stop_ids=[tokenizer.eos_id()],
                       lora_modules=GEMMA_LORA_MODULES)


def load_other_tokenizer(spec):  # the same architecture behind a character-level tokenizer
    bundle = load(spec)

    class Characters:  # a wrapper: the student's tokenizer object is not touched
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def encode(self, text):
            return [3 + ord(c) % 200 for c in text]

    bundle.tokenizer = Characters(bundle.tokenizer)
    return bundle


@hookimpl
def register_models(register):
    register("tiny_teacher", load)
    register("tiny_other_tokenizer", load_other_tokenizer)
'''

STAGE = '''
[[stages]]
name = "distill"
kind = "on_policy_distill"
teacher = {{ preset = "{teacher}" }}
data = {{ source = "arithmetic", options = {{ n = 32 }} }}
steps = 16
batch_size = 4
num_generations = 2
learning_rate = 1e-2
max_prompt_tokens = 96
max_completion_tokens = 16
rollout_log_every = 8
'''


def run_distill(tmp_path, teacher):
    """The distill stage with ``teacher`` (a preset of TEACHER's plugin) as a tiny recipe: the
    finished process and the runs folder."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "teacher.py").write_text(textwrap.dedent(TEACHER))
    recipe = tmp_path / "opd.toml"
    recipe.write_text(tiny_recipe("opd", STAGE.format(teacher=teacher), seed=3))
    runs = tmp_path / "runs"
    result = reasonlab("--plugins-dir", plugins, "run", recipe, "--no-progress", "--runs-dir", runs,
                       env={"WANDB_MODE": "disabled"})
    return result, runs


@pytest.mark.slow
def test_the_students_reverse_kl_to_the_teacher_falls(tmp_path):
    result, runs = run_distill(tmp_path, "tiny_teacher")
    assert result.returncode == 0, result.stderr[-3000:]
    run = run_dir_of(runs, "opd")
    kl = [r["train/distill/reverse_kl"] for r in read_metrics(run) if "train/distill/reverse_kl" in r]
    assert len(kl) == 16
    first, last = np.mean(kl[:5]), np.mean(kl[-5:])
    # ~0.4 nats per token at the start; a sign error would push it up, no update would leave it
    assert last < first - 0.15 and last < 0.5 * first, kl
    assert (run / "stages/distill/rollouts.jsonl").exists()


def test_a_teacher_with_another_tokenizer_is_refused(tmp_path):
    from reasonlab_plugins.stage_distill_onpolicy import same_tokenizer
    from reasonlab_plugins.models_tiny import build_tokenizer

    class Other:
        vocab_size = build_tokenizer().vocab_size

        @staticmethod
        def encode(text):
            return [ord(c) for c in text]

    assert same_tokenizer(build_tokenizer(), build_tokenizer())
    assert not same_tokenizer(build_tokenizer(), Other())


@pytest.mark.slow
def test_a_teacher_with_another_tokenizer_stops_the_run_with_the_key(tmp_path):
    """End to end: the stage refuses the teacher before its first step (exit 2, key path,
    no traceback), and the run stays resumable with another teacher."""
    import json

    result, runs = run_distill(tmp_path, "tiny_other_tokenizer")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "stages.distill.teacher" in result.stderr and "does not share the student's tokenizer" in result.stderr
    assert "Traceback" not in result.stderr
    run = run_dir_of(runs, "opd")
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "failed" and state["resumable"] is True
    assert not [r for r in read_metrics(run) if "train/actor/loss" in r]  # not one step trained
