"""Helpers shared by the benchmark scripts: timing and a JSON result next to the script."""

from __future__ import annotations

import json
import platform
import time
from datetime import date
from pathlib import Path


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def write_result(name: str, result: dict) -> Path:
    out = Path(__file__).parent / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    payload = {"date": date.today().isoformat(), "machine": platform.platform(), "processor": platform.processor(),
               **result}
    out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {out}")
    return out
