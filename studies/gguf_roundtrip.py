"""Does a trained embedded model survive GGUF export? Greedy text before and after.

    python studies/gguf_roundtrip.py RUN_DIR OUT [--quant q8_0] [--n 5] [--tokens 96]

Takes the run's last finished model (Gemma-3-270M with its LoRA), writes it as GGUF with
``reasonlab export``'s own exporter, reads the file back through the embedded model's GGUF path
(``reasonlab_plugins._gguf.convert`` + Tunix's loader, in the run's dtype) and decodes the first
``--n`` prompts of the run's last eval stage greedily with both. Writes OUT/gguf_roundtrip.md
(each prompt: equal or the first differing token) and OUT/gguf_roundtrip.json, with the CPU kind.
"""

from __future__ import annotations

import argparse
import json
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--quant", default="q8_0")
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=96)
    args = parser.parse_args(argv)

    from reasonlab import xla_defaults

    xla_defaults.apply()
    import dataclasses

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
    config = dataclasses.replace(backbone.config, param_dtype=dtype)
    model = with_last_token_prefill(params_safetensors.create_model_from_safe_tensors(
        str(args.out / "read_back"), config, dtype=dtype))
    after = greedy(ModelBundle(model=model, tokenizer=bundle.tokenizer, preset=bundle.preset, stop_ids=bundle.stop_ids))

    rows = []
    for prompt, a, b in zip(prompts, before, after):
        ta, tb = bundle.tokenizer.encode(a), bundle.tokenizer.encode(b)
        first = next((i for i, (x, y) in enumerate(zip(ta, tb)) if x != y), None if len(ta) == len(tb) else min(len(ta), len(tb)))
        rows.append({"prompt": prompt, "reasonlab": a, "gguf": b, "equal": a == b, "first_difference": first})
    result = {"run": str(args.run), "stage": stage, "quant": args.quant, "dtype": str(dtype), "cpu": cpu_kind(),
              "gguf_bytes": gguf_path.stat().st_size, "equal": sum(r["equal"] for r in rows), "n": len(rows),
              "rows": rows}
    (args.out / "gguf_roundtrip.json").write_text(json.dumps(result, indent=2))
    lines = [f"# GGUF {args.quant} round trip of {args.run} (stage {stage})", "",
             f"CPU: {result['cpu']}; dtype {dtype}; {result['equal']}/{len(rows)} greedy continuations equal "
             f"({args.tokens} tokens); file {result['gguf_bytes'] / 1e6:.0f} MB", "",
             "| # | equal | first differing token | reasonlab | read back from GGUF |", "|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        cut = (lambda t: t[:120].replace("\n", " ").replace("|", "\\|"))
        lines.append(f"| {i} | {'yes' if r['equal'] else 'no'} | {r['first_difference'] if not r['equal'] else ''} "
                     f"| {cut(r['reasonlab'])} | {cut(r['gguf'])} |")
    (args.out / "gguf_roundtrip.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
