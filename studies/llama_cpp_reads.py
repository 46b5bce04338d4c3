"""llama.cpp runs our GGUF export: greedy continuations and tokenisation, through llama-cpp-python.

Runs in an environment where ``llama-cpp-python`` is installed (it builds llama.cpp from source:
a C/C++ compiler and cmake; README "Use your model"). ``studies/gguf_roundtrip.py
--llama-cpp-python PY`` calls it. Reads one JSON object on stdin::

    {"gguf": FILE, "prompts": [[ids]], "tokens": N, "stop_ids": [ids], "texts": [str]}   # greedy
    {"gguf": FILE, "logits_of": [ids], "texts": [str]}                                   # logits

and prints ``{"versions": ..., "greedy": [[ids]] and "seconds" or "logits": [[floats]], "tokens": [[ids]]}``:
per prompt the new tokens without the stop token (temperature 0: llama.cpp's greedy sampler,
no repeat penalty), or the logits at every position of ``logits_of``; and per text llama.cpp's
own tokenisation of it from the file's vocabulary (with the BOS the file asks for, control
tokens parsed). Prompt ids go in directly, so the continuation checks the
weights and the architecture; the tokenisation checks the vocabulary metadata on its own.
"""

import json
import os
import sys
import time

import llama_cpp


def greedy(model, ids: list[int], tokens: int, stop_ids: list[int]) -> list[int]:
    out = []
    for token in model.generate(ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
        if token in stop_ids or len(out) == tokens:
            break
        out.append(token)
    return out


def main() -> None:
    job = json.load(sys.stdin)
    logits_of = job.get("logits_of")
    context = len(logits_of) if logits_of else max(len(p) for p in job["prompts"]) + job["tokens"]
    model = llama_cpp.Llama(model_path=job["gguf"], n_ctx=context + 8, n_threads=os.cpu_count() or 1, seed=0,
                            logits_all=bool(logits_of), verbose=False)
    result = {"versions": {"llama_cpp_python": llama_cpp.__version__},
              "tokens": [model.tokenize(t.encode("utf-8"), add_bos=True, special=True) for t in job.get("texts", [])]}
    if logits_of:
        model.eval(logits_of)
        result["logits"] = model.scores[: len(logits_of)].tolist()
    else:
        start = time.perf_counter()
        result["greedy"] = [greedy(model, p, job["tokens"], job["stop_ids"]) for p in job["prompts"]]
        result["seconds"] = time.perf_counter() - start  # prefill and decode of all prompts, one at a time
    print(json.dumps(result))


if __name__ == "__main__":
    main()
