"""reasonlab's overhead over raw Tunix: the same SFT steps, once via `reasonlab run` and once
via a plain script calling Tunix's PeftTrainer directly — on the tiny model (default, full
fine-tuning) or the embedded Gemma-3-270M (third argument ``gemma3-270m``: LoRA rank 8).

Compares steady-state seconds per step (compilation excluded: steps 11..N), interleaving
ROUNDS runs of each and taking medians: on a shared 2-core VM one run varies by ~10 %.
Target <= 1.03. Run: python benchmarks/overhead.py [steps] [rounds] [tiny|gemma3-270m]
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import compare_interleaved, load_bundle

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 200
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
PRESET = sys.argv[3] if len(sys.argv) > 3 else "tiny"
EMBEDDED = PRESET != "tiny"
WARM = 2 if EMBEDDED else 10
LEARNING_RATE = 1e-4 if EMBEDDED else 3e-3
RECIPE = f"""
[recipe]
name = "overhead"
[model]
preset = "{PRESET}"
lora = {"{ rank = 8, alpha = 16.0 }" if EMBEDDED else "false"}
[[stages]]
name = "sft"
kind = "sft"
data = {{ source = "arithmetic", options = {{ n = 256 }} }}
steps = {STEPS}
batch_size = 8
learning_rate = {LEARNING_RATE}
max_prompt_tokens = 96
max_completion_tokens = 64
"""


def through_reasonlab() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp) / "overhead.toml"
        recipe.write_text(RECIPE)
        subprocess.run([sys.executable, "-m", "reasonlab", "run", str(recipe), "--no-progress", "--runs-dir", tmp],
                       check=True, capture_output=True, env={**os.environ, "WANDB_MODE": "disabled"})
        metrics = next(Path(tmp, "overhead").iterdir()) / "metrics.jsonl"
        times = {r["step"]: r["time"] for r in map(json.loads, metrics.read_text().splitlines()) if "train/loss" in r}
    return (times[STEPS] - times[WARM]) / (STEPS - WARM)


def through_tunix() -> float:
    import optax
    from tunix.sft import hooks, peft_trainer
    from tunix.sft import utils as sft_utils

    from reasonlab_plugins.datasets_arithmetic import generate

    bundle = load_bundle(PRESET)
    tok = bundle.tokenizer
    rows = generate(n=256)
    rng = np.random.default_rng(0)
    stamps = {}

    class Clock(hooks.TrainingHooks):
        def on_train_start(self, t): ...
        def on_train_end(self, t): ...
        def on_train_step_start(self, t): ...
        def on_eval_step_start(self, t): ...
        def on_eval_step_end(self, t, loss): ...

        def on_train_step_end(self, t, step, loss):
            stamps[step] = time.time()

    def batches():
        for _ in range(STEPS):
            tokens = np.zeros((8, 160), np.int32)
            mask = np.zeros((8, 160), np.int32)
            for i, r in enumerate(rng.choice(rows, 8)):
                p = [tok.bos_id(), *tok.encode("Question: " + r["question"] + "\n")][:96]
                c = [*tok.encode(f"<reasoning>{r['reasoning']}</reasoning><answer>{r['answer']}</answer>"),
                     tok.eos_id()][:64]
                tokens[i, : len(p) + len(c)] = p + c
                mask[i, len(p): len(p) + len(c)] = 1
            yield peft_trainer.TrainingInput(input_tokens=tokens, input_mask=mask)

    def loss_fn(model, input_tokens, input_mask, positions, attention_mask):
        import jax
        import jax.numpy as jnp

        logits, _ = model(input_tokens, positions, None, attention_mask)
        logits = logits[:, :-1].astype(jnp.float32)  # as reasonlab's cross_entropy loss
        picked = jnp.take_along_axis(logits, input_tokens[:, 1:, None], axis=-1)[..., 0]
        m = input_mask[:, 1:]
        return jnp.sum((jax.nn.logsumexp(logits, -1) - picked) * m) / jnp.maximum(m.sum(), 1)

    def inputs(x):
        pad = x.input_tokens != 0
        return {"input_tokens": x.input_tokens, "input_mask": x.input_mask,
                "positions": sft_utils.build_positions_from_mask(pad), "attention_mask": sft_utils.make_causal_attn_mask(pad)}

    import orbax.checkpoint as ocp

    # the same Tunix features reasonlab turns on: an orbax checkpoint manager (saving at the end)
    ckpt = tempfile.mkdtemp()
    trainer = peft_trainer.PeftTrainer(bundle.model, optax.adamw(LEARNING_RATE),
                                       peft_trainer.TrainingConfig(eval_every_n_steps=STEPS + 1, max_steps=STEPS,
                                                                   checkpoint_root_directory=ckpt,
                                                                   checkpointing_options=ocp.CheckpointManagerOptions(
                                                                       save_interval_steps=STEPS, max_to_keep=2),
                                                                   pbar_description=None))
    trainer.with_gen_model_input_fn(inputs).with_loss_fn(loss_fn).with_training_hooks(Clock())
    trainer.train(batches())
    return (stamps[STEPS - 1] - stamps[WARM - 1]) / (STEPS - WARM)


if __name__ == "__main__":
    compare_interleaved(f"overhead_{PRESET}" if EMBEDDED else "overhead",
                        f"{PRESET} SFT, {STEPS} steps of 8x160 tokens", through_reasonlab, through_tunix, ROUNDS, STEPS)
