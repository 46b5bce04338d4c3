"""Serve tests/judge_server.py's OpenAI-protocol server from its own process (for benchmarks):
prints its URL, then serves until stdin closes. Usage: python judge_server_process.py LATENCY"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from judge_server import JudgeServer  # noqa: E402

if __name__ == "__main__":
    with JudgeServer(lambda messages: '{"score": 5}', latency=float(sys.argv[1])) as server:
        print(server.url, flush=True)
        sys.stdin.read()
