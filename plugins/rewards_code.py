"""``code_tests``: run the ``<answer>`` code against the row's tests, sandboxed (MBPP-style).

Each completion runs under OS-level isolation (``plugins/_sandbox.py``: bubblewrap as user
nobody, no network, a read-only /usr as the file system, its own PIDs, resource limits, the
whole sandbox killed at ``timeout`` seconds), never in the learner's process. Every test
runs in a fresh fork of the answer code; the score is the share of tests that ran to their
end, counted by the parent from per-test nonces (nothing the code prints counts). A machine
without bubblewrap refuses to run model code: the run stops before training, unless the
recipe names ``isolation = "unsafe-none"``.

When the row has an ``entry_point`` and the answer does not define it, the row's prompt
(``prompt_column``, default "prompt") is put before the answer, as HumanEval defines a
program: prompt + completion + test + ``check(entry_point)``.

``mode = "syntax"`` only checks that the code compiles (no execution).
Options: ``tests_column`` (default "tests": a list of test snippets, or its JSON text),
``timeout`` (5 s), ``memory_mb`` (512), ``mode``, ``workers`` (parallel sandboxes, 2),
``isolation`` ("bubblewrap", or "unsafe-none"), ``prompt_column``.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

from reasonlab import hookimpl
from reasonlab.format import parse_completion

_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n?(.*?)```", re.DOTALL)  # keeps the first line's indentation


def extract_code(completion: str) -> str:
    answer = parse_completion(completion).answer or ""
    fenced = _FENCE.search(answer)
    code = fenced.group(1) if fenced else answer
    return code.strip("\n").rstrip() if code.strip() else ""  # indentation stays: a body's first line is indented


def _tests(value) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = [value]
    return [str(t) for t in value or []]


def program(answer: str, row_prompt: str | None, entry_point: str | None) -> str:
    """The code to run: the answer, after the row's prompt when the answer is only a body."""
    if entry_point and row_prompt and not re.search(rf"^\s*def\s+{re.escape(entry_point)}\b", answer, re.M):
        return row_prompt + as_body(answer)
    return answer


def as_body(code: str) -> str:
    """A function body, indented under the prompt's ``def``: a first line whose indentation was
    stripped gets the next lines' back, and a body written flush left is indented one level."""
    lines = code.split("\n")
    rest = [len(line) - len(line.lstrip()) for line in lines[1:] if line.strip()]
    if lines[0] == lines[0].lstrip() and rest and min(rest) > 0:
        lines[0] = " " * min(rest) + lines[0]
    if all(line == line.lstrip() for line in lines if line.strip()):
        lines = ["    " + line for line in lines]
    return "\n".join(lines)


def code_tests(prompts, completions, tests_column: str = "tests", timeout: float = 5.0, memory_mb: int = 512,
               mode: str = "tests", workers: int = 2, isolation: str = "bubblewrap", prompt_column: str = "prompt",
               **columns) -> list[float]:
    from reasonlab_plugins import _sandbox

    codes = [extract_code(c) for c in completions]
    if mode == "syntax":
        return [1.0 if code and _compiles(code) else 0.0 for code in codes]
    if mode != "tests":
        raise ValueError(f"mode must be 'tests' or 'syntax', got {mode!r}")
    all_tests = [_tests(t) for t in columns[tests_column]]
    entry_points = columns.get("entry_point") or [None] * len(codes)
    row_prompts = columns.get(prompt_column) or [None] * len(codes)

    def score(i: int) -> float:
        if not codes[i] or not all_tests[i]:
            return 0.0
        code = program(codes[i], row_prompts[i], entry_points[i])
        return _sandbox.run(code, all_tests[i], timeout, memory_mb, isolation).score

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(score, range(len(completions))))


def check_isolation(options: dict) -> None:
    """Before training: model code needs bubblewrap here, or the recipe's explicit unsafe mode."""
    from reasonlab.rewards import RewardError
    from reasonlab_plugins import _sandbox

    isolation = options.get("isolation", "bubblewrap")
    if options.get("mode") == "syntax":
        return
    if isolation == "unsafe-none":
        import sys

        print('warning: code_tests runs model-written code WITHOUT isolation (isolation = "unsafe-none")',
              file=sys.stderr)
        return
    why = _sandbox.why_unavailable()
    if why:
        raise RewardError(f"code_tests cannot isolate model-written code on this machine: {why}",
                          hint='install bubblewrap (apt-get install bubblewrap), or accept running model code '
                               'without isolation with options = { isolation = "unsafe-none" }')


code_tests.preflight = check_isolation


def _compiles(code: str) -> bool:
    try:
        compile(code, "<answer>", "exec")
        return True
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False


@hookimpl
def register_rewards(register):
    register("code_tests", code_tests, columns=["{tests_column}"])
