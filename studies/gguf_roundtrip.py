"""Does a trained embedded model survive GGUF export? Greedy text before and after.

    python studies/gguf_roundtrip.py RUN_DIR OUT [--quant q8_0] [--n 5] [--tokens 96]
        [--transformers-python PY] [--llama-cpp-python PY]

Takes the run's last finished model (Gemma-3-270M with its LoRA), writes it as GGUF with
``reasonlab export``'s own exporter, reads the file back through the embedded model's GGUF path
(``reasonlab_plugins._gguf.convert`` + Tunix's loader, in the run's dtype) and decodes the first
``--n`` prompts of the run's last eval stage greedily with both. Writes OUT/gguf_roundtrip.md
(each prompt: equal or the first differing token) and OUT/gguf_roundtrip.json, with the CPU kind.

With ``--transformers-python PY`` (an environment with torch and transformers, e.g. the ``trl``
extra's), the model is also exported as HF safetensors, and transformers decodes the same
prompt ids greedily from that folder and from the GGUF file (studies/transformers_reads.py,
float32): a check of both files by a reader that is not ours. With ``--llama-cpp-python PY``
(an environment with llama-cpp-python), llama.cpp itself runs the GGUF file greedily on the
same prompt ids and tokenises the prompt texts from the file's vocabulary
(studies/llama_cpp_reads.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def eval_prompts(run_dir: Path, n: int) -> list[str]:
    folders = sorted((run_dir / "stages").glob("*/samples.jsonl"), key=lambda p: p.stat().st_mtime)
    if not folders:
        raise SystemExit(f"{run_dir}: no eval stage wrote samples.jsonl; its prompts are what we decode")
    lines = folders[-1].read_text(encoding="utf-8").splitlines()
    prompts = list(dict.fromkeys(json.loads(line)["prompt"] for line in lines))
    return prompts[:n]


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """The ids Tunix's sampler feeds: the encoding with one BOS in front where the family has one."""
    ids = list(tokenizer.encode(prompt))
    bos = tokenizer.bos_id()
    return [bos, *ids] if bos and (not ids or ids[0] != bos) else ids


def read_elsewhere(python: str, script: str, job: dict) -> dict:
    """Run ``studies/SCRIPT`` (a reader that is not ours) under another Python on one JSON job."""
    done = subprocess.run([python, str(Path(__file__).parent / script)], input=json.dumps(job),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{python} studies/{script} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def first_difference(a: list[int], b: list[int]) -> int | None:
    """The index of the first token where two continuations differ; None when they are equal."""
    index = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
    return index if index is not None or len(a) == len(b) else min(len(a), len(b))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--quant", default="q8_0")
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--transformers-python", help="a Python with torch + transformers: check the files there too")
    parser.add_argument("--llama-cpp-python", help="a Python with llama-cpp-python: run the GGUF in llama.cpp too")
    args = parser.parse_args(argv)

    from reasonlab import xla_defaults

    xla_defaults.apply()
    import dataclasses

    import jax.numpy as jnp
    from tunix.models.gemma3 import params_safetensors

    from reasonlab.machine import cpu_kind
    from reasonlab.modeling import ModelBundle
    from reasonlab.plugins import get_plugins
    from reasonlab.runs import load_run_model
    from reasonlab.sampling import Generator
    from reasonlab_plugins._gemma3 import with_last_token_prefill
    from reasonlab_plugins._gguf import convert

    plugins = get_plugins()
    recipe, bundle, stage = load_run_model(args.run, plugins)
    prompts = eval_prompts(args.run, args.n)
    budget = max(len(bundle.tokenizer.encode(p)) for p in prompts) + 1

    def greedy(model_bundle):
        texts, _ = Generator(model_bundle, budget, args.tokens, batch_size=len(prompts))(prompts, 1.0, 1, 0)
        return texts

    before = greedy(bundle)
    exporter = plugins.registry("models").info(recipe.model.preset)["export"]
    exporter(bundle, args.out, recipe.model.lora or None, format="gguf", quant=args.quant)
    gguf_path = args.out / f"model-{args.quant}.gguf"
    convert(gguf_path, args.out / "read_back")
    backbone = bundle.base if bundle.lora else bundle.model
    dtype = backbone.embedder.input_embedding.get_value().dtype  # the run's: bf16 or float32

    def reloaded(folder: Path, as_dtype):
        config = dataclasses.replace(backbone.config, param_dtype=as_dtype)
        model = with_last_token_prefill(params_safetensors.create_model_from_safe_tensors(
            str(folder), config, dtype=as_dtype))
        return ModelBundle(model=model, tokenizer=bundle.tokenizer, preset=bundle.preset, stop_ids=bundle.stop_ids)

    after = greedy(reloaded(args.out / "read_back", dtype))

    rows = []
    for prompt, a, b in zip(prompts, before, after):
        first = first_difference(bundle.tokenizer.encode(a), bundle.tokenizer.encode(b))
        rows.append({"prompt": prompt, "reasonlab": a, "gguf": b, "equal": a == b, "first_difference": first})
    result = {"run": str(args.run), "stage": stage, "quant": args.quant, "dtype": str(dtype), "cpu": cpu_kind(),
              "gguf_bytes": gguf_path.stat().st_size, "equal": sum(r["equal"] for r in rows), "n": len(rows),
              "rows": rows}
    # other readers are compared in float32 on both sides, so a difference is the file's or the
    # reader's, not bf16 rounding
    ids = [prompt_ids(bundle.tokenizer, p) for p in prompts]
    stop_ids = list(bundle.stop_ids or [])
    ours = {"gguf": greedy(reloaded(args.out / "read_back", jnp.float32))} if (
        args.transformers_python or args.llama_cpp_python) else {}
    if args.llama_cpp_python:
        theirs = read_elsewhere(args.llama_cpp_python, "llama_cpp_reads.py",
                                {"gguf": str(gguf_path), "prompts": ids, "tokens": args.tokens,
                                 "stop_ids": stop_ids, "texts": prompts})
        for row, text, new_ids, ours_ids, theirs_ids in zip(rows, ours["gguf"], theirs["greedy"], ids,
                                                            theirs["tokens"]):
            row["reasonlab_f32_gguf"], row["llama_cpp"] = text, bundle.tokenizer.decode(new_ids)
            row["llama_cpp_first_difference"] = first_difference(bundle.tokenizer.encode(text), new_ids)
            row["llama_cpp_same_tokens"] = ours_ids == theirs_ids
        result["llama_cpp"] = {"versions": theirs["versions"], "seconds": theirs["seconds"],
                               "new_tokens": sum(map(len, theirs["greedy"])),
                               "same_tokens": sum(r["llama_cpp_same_tokens"] for r in rows),
                               "equal": sum(r["llama_cpp"] == r["reasonlab_f32_gguf"] for r in rows),
                               "equal_to_reasonlab_run_dtype": sum(r["llama_cpp"] == r["reasonlab"] for r in rows)}
    if args.transformers_python:
        exporter(bundle, args.out / "hf", recipe.model.lora or None)
        ours["hf"] = greedy(reloaded(args.out / "hf", jnp.float32))
        theirs = read_elsewhere(args.transformers_python, "transformers_reads.py",
                                {"hf": str(args.out / "hf"), "gguf": str(gguf_path), "prompts": ids,
                                 "tokens": args.tokens, "stop_ids": stop_ids})
        result["transformers"] = {"versions": theirs["versions"], "dtype": "float32"}
        for kind in ("hf", "gguf"):
            for row, text, new_ids in zip(rows, ours[kind], theirs[kind]):
                row[f"reasonlab_f32_{kind}"], row[f"transformers_{kind}"] = text, bundle.tokenizer.decode(new_ids)
                row[f"transformers_{kind}_first_difference"] = first_difference(bundle.tokenizer.encode(text), new_ids)
            result["transformers"][f"{kind}_equal"] = sum(
                r[f"transformers_{kind}"] == r[f"reasonlab_f32_{kind}"] for r in rows)
    (args.out / "gguf_roundtrip.json").write_text(json.dumps(result, indent=2))
    lines = [f"# GGUF {args.quant} round trip of {args.run} (stage {stage})", "",
             f"CPU: {result['cpu']}; dtype {dtype}; {result['equal']}/{len(rows)} greedy continuations equal "
             f"({args.tokens} tokens); file {result['gguf_bytes'] / 1e6:.0f} MB", "",
             "| # | equal | first differing token | reasonlab | read back from GGUF |", "|---|---|---|---|---|"]

    def cut(text):
        return text[:120].replace("\n", " ").replace("|", "\\|")

    for i, r in enumerate(rows):
        lines.append(f"| {i} | {'yes' if r['equal'] else 'no'} | {r['first_difference'] if not r['equal'] else ''} "
                     f"| {cut(r['reasonlab'])} | {cut(r['gguf'])} |")
    if "transformers" in result:
        t = result["transformers"]
        lines += ["", f"transformers {t['versions']['transformers']} (torch {t['versions']['torch']}, float32) "
                  f"decoding the same prompt ids, against reasonlab in float32 on the same file: HF export "
                  f"{t['hf_equal']}/{len(rows)} equal, GGUF {t['gguf_equal']}/{len(rows)}", "",
                  "| # | HF: first differing token | GGUF: first differing token | transformers from GGUF |",
                  "|---|---|---|---|"]
        for i, r in enumerate(rows):
            hf, gguf = (r[f"transformers_{k}_first_difference"] for k in ("hf", "gguf"))
            lines.append(f"| {i} | {'equal' if hf is None else hf} | {'equal' if gguf is None else gguf} "
                         f"| {cut(r['transformers_gguf'])} |")
    if "llama_cpp" in result:
        t = result["llama_cpp"]
        lines += ["", f"llama.cpp (llama-cpp-python {t['versions']['llama_cpp_python']}, greedy) running the GGUF "
                  f"file on the same prompt ids, against reasonlab in float32 on the file read back: "
                  f"{t['equal']}/{len(rows)} equal ({t['equal_to_reasonlab_run_dtype']}/{len(rows)} against the "
                  f"run's {dtype}); llama.cpp's tokenisation of the prompt texts equals ours in "
                  f"{t['same_tokens']}/{len(rows)}; {t['new_tokens']} tokens in {t['seconds']:.1f} s, one prompt at a time", "",
                  "| # | first differing token | same prompt tokens | llama.cpp |", "|---|---|---|---|"]
        for i, r in enumerate(rows):
            first = r["llama_cpp_first_difference"]
            lines.append(f"| {i} | {'equal' if first is None else first} | "
                         f"{'yes' if r['llama_cpp_same_tokens'] else 'no'} | {cut(r['llama_cpp'])} |")
    (args.out / "gguf_roundtrip.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
