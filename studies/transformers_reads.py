"""transformers reads our exports: greedy continuations or logits from an HF folder and a GGUF file.

Runs in a separate environment with torch and transformers (benchmarks/README.md: the ``trl``
extra's environment). ``studies/gguf_roundtrip.py --transformers-python PY`` and
tests/test_presets_hf.py (where ``REASONLAB_TRANSFORMERS_PYTHON`` names such a Python) call it.
Reads one JSON object on stdin::

    {"hf": DIR, "gguf": FILE or null, "prompts": [[ids]], "tokens": N, "stop_ids": [ids]}   # greedy
    {"hf": DIR, "gguf": FILE or null, "logits_of": [ids]}                                   # logits

and prints ``{"versions": ..., "hf": ..., "gguf": ...}``: per prompt the new tokens without the
stop token, or the logits at every position of ``logits_of``. Ids go in directly, so what is
checked is the weights and the architecture, not transformers' tokenizer conversion. float32.
"""

import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM


def greedy(model, prompts: list[list[int]], tokens: int, stop_ids: list[int]) -> list[list[int]]:
    out = []
    with torch.no_grad():
        for ids in prompts:  # one at a time: no padding, so nothing differs but the weights
            generated = model.generate(torch.tensor([ids]), max_new_tokens=tokens, do_sample=False,
                                       eos_token_id=stop_ids or None, pad_token_id=stop_ids[0] if stop_ids else 0)
            new = generated[0, len(ids):].tolist()
            cut = next((i for i, t in enumerate(new) if t in stop_ids), len(new))
            out.append(new[:cut])
    return out


def answer(model, job: dict):
    if "logits_of" in job:
        with torch.no_grad():
            return model(torch.tensor([job["logits_of"]])).logits[0].tolist()
    return greedy(model, job["prompts"], job["tokens"], job["stop_ids"])


def main() -> None:
    job = json.load(sys.stdin)
    result = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__}}
    model = AutoModelForCausalLM.from_pretrained(job["hf"], dtype=torch.float32).eval()
    result["hf"] = answer(model, job)
    if job.get("gguf"):
        path = Path(job["gguf"])
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
        result["gguf"] = answer(model, job)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
