"""Reward throughput on 10k realistic completions (one core), and the judge path's overlap.

Targets: >= 5,000 completions/s for format, process and TF-IDF on one core; the judge
path (200 ms server latency, 64 completions, concurrency 16) within 1.2x the ideal time.
Run: python benchmarks/rewards.py
"""

import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import write_result  # noqa: E402

from reasonlab_plugins.datasets_arithmetic import generate  # noqa: E402
from reasonlab_plugins.rewards_answer import answer_match  # noqa: E402
from reasonlab_plugins.rewards_format import format_strict  # noqa: E402
from reasonlab_plugins.rewards_math import math_equiv  # noqa: E402
from reasonlab_plugins.rewards_process import checkpoints  # noqa: E402
from reasonlab_plugins.rewards_tfidf import tfidf_relevance  # noqa: E402

rng = random.Random(0)
rows = generate(n=2000, seed=3)
prompts, completions, golds, marks = [], [], [], []
for i in range(10_000):
    row = rows[i % len(rows)]
    answer = row["answer"] if rng.random() < 0.6 else str(int(row["answer"]) + 1)
    text = f"<reasoning>{row['reasoning']}</reasoning><answer>{answer}</answer>"
    if rng.random() < 0.2:
        text = text.replace("<answer>", "")
    prompts.append(row["question"])
    completions.append(text)
    golds.append(row["answer"])
    marks.append(row["checkpoints"])

cases = {
    "format_strict": lambda n: format_strict(prompts[:n], completions[:n]),
    "answer_match": lambda n: answer_match(prompts[:n], completions[:n], answer=golds[:n]),
    "checkpoints": lambda n: checkpoints(prompts[:n], completions[:n], checkpoints=marks[:n]),
    # per GRPO batch: 8 completions (2 prompts x 4) and 64 (16 prompts x 4); the vocabulary is fitted per batch
    "tfidf_relevance/8": lambda n: [tfidf_relevance(prompts[i:i + 8], completions[i:i + 8]) for i in range(0, n, 8)],
    "tfidf_relevance/64": lambda n: [tfidf_relevance(prompts[i:i + 64], completions[i:i + 64]) for i in range(0, n, 64)],
    "math_equiv": lambda n: math_equiv(prompts[:n], completions[:n], answer=golds[:n]),
}
sizes = {"math_equiv": 500}
results = {}
for name, fn in cases.items():
    n = sizes.get(name, 10_000)
    fn(min(n, 16))  # warm up (the math worker starts here)
    start = time.perf_counter()
    fn(n)
    rate = n / (time.perf_counter() - start)
    results[name] = rate
    target = "" if name in ("answer_match", "math_equiv") else ("  OK" if rate >= 5000 else "  UNDER 5,000/s")
    print(f"{name:16s} {rate:10.0f} completions/s{target}")

import subprocess  # noqa: E402

from reasonlab_plugins.judges_openai import OpenAIJudge  # noqa: E402

# The server runs in its own process: in-process, its threads share the client's GIL, and a
# profile showed the client idle in epoll for 2/3 of the time, waiting on that server.
server = subprocess.Popen([sys.executable, str(Path(__file__).parent / "judge_server_process.py"), "0.2"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
try:
    url = server.stdout.readline().strip()
    judge = OpenAIJudge({"base_url": url, "model": "bench", "cache": False, "concurrency": 16})
    judge.complete_many([[{"role": "user", "content": "warm"}]])
    start = time.perf_counter()
    judge.complete_many([[{"role": "user", "content": f"c{i}"}] for i in range(64)])
    elapsed = time.perf_counter() - start
finally:
    server.stdin.close()
    server.wait()
ideal = 64 / 16 * 0.2
print(f"judge path: {elapsed:.3f} s for 64 at concurrency 16 (ideal {ideal:.2f} s) -> x{elapsed / ideal:.2f} "
      f"{'OK' if elapsed <= 1.2 * ideal else 'OVER 1.2x'}")
write_result("rewards", {"completions_per_second": results, "judge_seconds": elapsed, "judge_ideal_seconds": ideal,
                         "judge_ratio": elapsed / ideal})
